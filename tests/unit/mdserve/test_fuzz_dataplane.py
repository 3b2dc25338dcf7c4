"""Fuzz the whole request path (parsing, binding, the real sklearn model): every body either
predicts or raises a typed 4xx error, and the data plane keeps answering afterwards."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdserve.dataplane import DataPlane
from mdserve.errors import MdserveError
from mdserve.feedback import FeedbackStore
from mdserve.metrics import ServerMetrics
from mdserve.runtimes.sklearn import SklearnModel

pytestmark = pytest.mark.unit

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
rows = st.lists(st.lists(numbers, min_size=0, max_size=5), min_size=0, max_size=4)
v2_bodies = st.fixed_dictionaries(
    {
        "inputs": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["input-0", "x", ""]),
                    "shape": st.lists(st.integers(0, 5), max_size=3),
                    "datatype": st.sampled_from(["FP32", "FP64", "FP16", "INT64", "INT8", "BOOL", "BYTES"]),
                    "data": st.one_of(rows, st.lists(numbers, max_size=20)),
                }
            ),
            max_size=2,
        )
    },
    optional={
        "outputs": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["predict", "predict_proba", "x"])})
        )
    },
)
v1_bodies = st.one_of(
    st.fixed_dictionaries(
        {"instances": st.one_of(rows, st.lists(st.dictionaries(st.text(max_size=2), numbers)))}
    ),
    st.fixed_dictionaries({"inputs": st.one_of(rows, st.dictionaries(st.text(max_size=2), rows))}),
)


@pytest.fixture(scope="module")
def dataplane(iris_model: SklearnModel) -> DataPlane:
    plane = DataPlane("iris", "1", ServerMetrics("iris", "1", "d", "0"), FeedbackStore(50))
    plane.install(iris_model)
    return plane


def run(plane: DataPlane, protocol: str, body: Any) -> None:
    raw = json.dumps(body).encode()
    try:
        if protocol == "v2":
            asyncio.run(plane.infer_v2("iris", None, raw, None, "fuzz"))
        else:
            asyncio.run(plane.predict_v1("iris", None, raw, "fuzz"))
    except MdserveError as error:
        assert 400 <= error.status < 500, error.message


@settings(max_examples=150, deadline=None)
@given(body=v2_bodies)
def test_fuzzed_v2_requests(dataplane: DataPlane, body: Any) -> None:
    run(dataplane, "v2", body)


@settings(max_examples=100, deadline=None)
@given(body=v1_bodies)
def test_fuzzed_v1_requests(dataplane: DataPlane, body: Any) -> None:
    run(dataplane, "v1", body)
    ok = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    asyncio.run(dataplane.predict_v1("iris", None, json.dumps(ok).encode(), "after"))
