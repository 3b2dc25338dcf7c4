from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdserve import codec
from mdserve.errors import BadJson, BadRequest, MdserveError, MissingField, WrongDatatype, WrongShape

pytestmark = pytest.mark.unit


def v2(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def test_decodes_flat_and_nested_data_to_the_declared_shape_and_dtype() -> None:
    flat = codec.decode_v2_request(
        v2({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]})
    )
    nested = codec.decode_v2_request(
        v2({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]})
    )
    for request in (flat, nested):
        assert request.inputs["x"].dtype == np.float32
        assert request.inputs["x"].tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    ("body", "error", "fragment"),
    [
        (b"", BadJson, "empty"),
        (b"{nope", BadJson, "not valid JSON"),
        (b"[1, 2]", BadRequest, "JSON object"),
        (b"{}", MissingField, "'inputs'"),
        (v2({"shape": [1], "datatype": "FP32", "data": [1]}), MissingField, "name"),
        (v2({"name": "x", "datatype": "FP32", "data": [1]}), MissingField, "shape"),
        (v2({"name": "x", "shape": [1], "datatype": "FP33", "data": [1]}), WrongDatatype, "FP33"),
        (v2({"name": "x", "shape": [1], "datatype": "FP32"}), MissingField, "data"),
        (v2({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}), WrongShape, "needs 4"),
        (
            v2({"name": "x", "shape": [1, 2], "datatype": "FP32", "data": ["a", "b"]}),
            WrongDatatype,
            "strings",
        ),
        (v2({"name": "x", "shape": [2], "datatype": "INT64", "data": [1.5, 2]}), WrongDatatype, "float"),
        (v2({"name": "x", "shape": [1], "datatype": "INT8", "data": [300]}), WrongDatatype, "range"),
        (v2({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3]]}), WrongShape, "ragged"),
        (v2({"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}), WrongShape, "non-negative"),
    ],
)
def test_malformed_v2_requests_raise_a_4xx_naming_the_problem(
    body: bytes, error: type[MdserveError], fragment: str
) -> None:
    with pytest.raises(error) as raised:
        codec.decode_v2_request(body)
    assert 400 <= raised.value.status < 500
    assert fragment in raised.value.message


def test_binary_tensor_extension_round_trip() -> None:
    values = np.arange(8, dtype=np.float32).reshape(2, 4)
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    )
    request = codec.decode_v2_request(header + values.tobytes(), json_length=len(header))
    assert np.array_equal(request.inputs["x"], values)
    assert request.outputs == (codec.RequestedOutput("y", True),)
    body, json_length = codec.encode_v2_response("m", "1", "id", {"y": values}, {"y": True})
    assert json_length is not None
    tensor = orjson.loads(body[:json_length])["outputs"][0]
    assert tensor["parameters"]["binary_data_size"] == 32
    assert np.array_equal(np.frombuffer(body[json_length:], dtype=np.float32).reshape(2, 4), values)


def test_binary_size_mismatch_is_a_shape_error() -> None:
    header = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 4}}]}
    )
    with pytest.raises(WrongShape, match="needs 8 bytes"):
        codec.decode_v2_request(header + b"\0" * 4, json_length=len(header))


def test_v1_instances_and_inputs_forms() -> None:
    rows = codec.decode_v1_request(b'{"instances": [[1, 2], [3, 4]]}')
    assert rows.inputs == {"": [[1, 2], [3, 4]]} and not rows.columnar
    named = codec.decode_v1_request(b'{"instances": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}')
    assert named.inputs == {"a": [1, 3], "b": [2, 4]}
    columns = codec.decode_v1_request(b'{"inputs": {"a": [1, 3]}, "signature_name": "predict_proba"}')
    assert columns.columnar and columns.signature_name == "predict_proba"
    with pytest.raises(MissingField, match="exactly one"):
        codec.decode_v1_request(b'{"instances": [[1]], "inputs": [[1]]}')
    with pytest.raises(BadRequest, match="same input names"):
        codec.decode_v1_request(b'{"instances": [{"a": 1}, {"b": 2}]}')


def test_v1_responses() -> None:
    out = np.array([0, 2])
    assert orjson.loads(codec.encode_v1_response({"y": out}, columnar=False)) == {"predictions": [0, 2]}
    assert orjson.loads(codec.encode_v1_response({"y": out}, columnar=True)) == {"outputs": [0, 2]}
    both = orjson.loads(codec.encode_v1_response({"y": out, "z": np.array([1.5, 2.5])}, columnar=False))
    assert both == {"predictions": [{"y": 0, "z": 1.5}, {"y": 2, "z": 2.5}]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
tensors = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=4), st.integers()),
        "shape": st.one_of(st.lists(st.integers(min_value=-1, max_value=4), max_size=3), json_values),
        "datatype": st.sampled_from(["FP32", "INT64", "BOOL", "BYTES", "UINT8", "FP16", "nope"]),
        "data": json_values,
        "parameters": st.one_of(st.none(), st.fixed_dictionaries({"binary_data_size": st.integers(-2, 40)})),
    },
)


@settings(max_examples=150, deadline=None)
@given(
    payload=st.one_of(
        json_values,
        st.fixed_dictionaries({"inputs": st.lists(tensors, max_size=3)}, optional={"outputs": json_values}),
    ),
    tail=st.binary(max_size=40),
    use_binary=st.booleans(),
)
def test_fuzzed_v2_bodies_either_decode_or_raise_a_4xx(payload: Any, tail: bytes, use_binary: bool) -> None:
    header = json.dumps(payload).encode()  # stdlib: also emits integers beyond 64 bits
    body = header + tail if use_binary else header
    try:
        request = codec.decode_v2_request(body, json_length=len(header) if use_binary else None)
    except MdserveError as error:
        assert 400 <= error.status < 500
        return
    for name, array in request.inputs.items():
        assert isinstance(name, str)
        assert isinstance(array, np.ndarray)


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=64))
def test_fuzzed_raw_bytes_never_escape_as_unexpected_exceptions(raw: bytes) -> None:
    for decode in (codec.decode_v2_request, codec.decode_v1_request):
        try:
            decode(raw)
        except MdserveError as error:
            assert 400 <= error.status < 500
