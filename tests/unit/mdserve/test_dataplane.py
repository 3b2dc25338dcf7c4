from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
import pytest

from mdserve.dataplane import DataPlane, bind_inputs
from mdserve.errors import (
    MissingField,
    NotReady,
    UnknownModel,
    UnknownOutput,
    UnknownRequestId,
    WrongDatatype,
    WrongShape,
)
from mdserve.feedback import FeedbackStore
from mdserve.metrics import ServerMetrics
from mdserve.runtimes.base import TensorSpec
from mdserve.runtimes.sklearn import SklearnModel

pytestmark = pytest.mark.unit

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.9, 3.1, 5.4, 2.1]


def plane(model: SklearnModel | None) -> DataPlane:
    dataplane = DataPlane("iris", "1", ServerMetrics("iris", "1", "canary", "3"), FeedbackStore(10))
    if model is not None:
        dataplane.install(model)
    return dataplane


def infer(
    dataplane: DataPlane, body: dict[str, Any], request_id: str = "r1", version: str | None = None
) -> Any:
    raw, _ = asyncio.run(dataplane.infer_v2("iris", version, orjson.dumps(body), None, request_id))
    return orjson.loads(raw)


def v2_body(rows: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "any", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}], **extra}


def test_v2_predicts_classes_matching_sklearn(iris_model: SklearnModel) -> None:
    response = infer(plane(iris_model), v2_body([SETOSA, VIRGINICA]))
    (output,) = response["outputs"]
    assert output["name"] == "predict" and output["shape"] == [2]
    expected = iris_model.estimator.predict(np.array([SETOSA, VIRGINICA])).tolist()
    assert output["data"] == expected == [0, 2]
    assert response["model_name"] == "iris" and response["model_version"] == "1" and response["id"] == "r1"


def test_v2_predict_proba_on_request(iris_model: SklearnModel) -> None:
    response = infer(plane(iris_model), v2_body([SETOSA], outputs=[{"name": "predict_proba"}]))
    (output,) = response["outputs"]
    assert output["name"] == "predict_proba" and output["shape"] == [1, 3]
    assert abs(sum(output["data"]) - 1.0) < 1e-9


def test_v2_errors_are_typed(iris_model: SklearnModel) -> None:
    dataplane = plane(iris_model)
    with pytest.raises(WrongShape, match=r"expects \[-1, 4\]"):
        infer(dataplane, {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]})
    with pytest.raises(UnknownOutput, match="predict_proba"):
        infer(dataplane, v2_body([SETOSA], outputs=[{"name": "nope"}]))
    with pytest.raises(UnknownModel, match="serves 'iris'"):
        asyncio.run(dataplane.infer_v2("other", None, b"{}", None, "r"))
    with pytest.raises(UnknownModel, match="version '7'"):
        infer(dataplane, v2_body([SETOSA]), version="7")
    assert infer(dataplane, v2_body([SETOSA]), version="1")["outputs"][0]["data"] == [0]


def test_not_ready_until_a_model_is_installed() -> None:
    with pytest.raises(NotReady):
        infer(plane(None), v2_body([SETOSA]))


def test_v1_instances_inputs_and_signature(iris_model: SklearnModel) -> None:
    dataplane = plane(iris_model)
    rows = orjson.loads(
        asyncio.run(dataplane.predict_v1("iris", None, b'{"instances": [[5.1,3.5,1.4,0.2]]}', "a"))
    )
    assert rows == {"predictions": [0]}
    body = orjson.dumps({"inputs": [VIRGINICA], "signature_name": "predict_proba"})
    columns = orjson.loads(asyncio.run(dataplane.predict_v1("iris", None, body, "b")))
    assert len(columns["outputs"][0]) == 3 and np.argmax(columns["outputs"][0]) == 2
    with pytest.raises(WrongDatatype):
        asyncio.run(dataplane.predict_v1("iris", None, b'{"instances": [["a","b","c","d"]]}', "c"))


def test_feedback_scores_once_and_counts(iris_model: SklearnModel) -> None:
    dataplane = plane(iris_model)
    infer(dataplane, v2_body([SETOSA, VIRGINICA]), request_id="two-rows")
    result = orjson.loads(dataplane.feedback("iris", None, b'{"request_id": "two-rows", "truth": [0, 1]}'))
    assert result["results"][0] == {
        "request_id": "two-rows",
        "status": "scored",
        "correct": 1,
        "incorrect": 1,
    }
    registry = dataplane.metrics.registry
    labels = {"model": "iris", "version": "1", "variant": "canary", "revision": "3"}
    assert registry.get_sample_value("mdserve_feedback_total", {**labels, "outcome": "correct"}) == 1
    assert registry.get_sample_value("mdserve_feedback_total", {**labels, "outcome": "incorrect"}) == 1
    assert registry.get_sample_value("mdserve_predictions_total", {**labels, "class": "2"}) == 1
    with pytest.raises(UnknownRequestId):
        dataplane.feedback("iris", None, b'{"request_id": "two-rows", "truth": [0, 1]}')
    # A list answers per item, even a list of one (the router sends its per-variant parts as lists).
    listed = orjson.loads(dataplane.feedback("iris", None, b'[{"request_id": "two-rows", "truth": [0, 1]}]'))
    assert listed == {"results": [{"request_id": "two-rows", "status": "unknown"}]}


def test_feedback_accepts_the_v2_body_id_too(iris_model: SklearnModel) -> None:
    dataplane = plane(iris_model)
    response = infer(dataplane, v2_body([VIRGINICA], id="client-7"), request_id="header-id")
    assert response["id"] == "client-7"
    result = orjson.loads(dataplane.feedback("iris", None, b'{"request_id": "client-7", "truth": 2}'))
    assert result["results"][0]["correct"] == 1


def test_invalid_feedback_counts_nothing_and_keeps_the_prediction(iris_model: SklearnModel) -> None:
    dataplane = plane(iris_model)
    infer(dataplane, v2_body([SETOSA]), request_id="one")
    with pytest.raises(Exception, match="truth has 2 values"):
        dataplane.feedback("iris", None, b'[{"request_id": "one", "truth": [0, 1]}]')
    with pytest.raises(MissingField):
        dataplane.feedback("iris", None, b'{"request_id": "one"}')
    assert (
        orjson.loads(dataplane.feedback("iris", None, b'{"request_id": "one", "truth": 0.0}'))["results"][0][
            "correct"
        ]
        == 1
    )


def test_regression_feedback_accumulates_errors(regression_model: SklearnModel) -> None:
    dataplane = DataPlane("iris", "1", ServerMetrics("iris", "1", "d", "0"), FeedbackStore(10))
    dataplane.install(regression_model)
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [0.0, 0.0, 0.0]}]}
    raw, _ = asyncio.run(dataplane.infer_v2("iris", None, orjson.dumps(body), None, "reg"))
    predicted = orjson.loads(raw)["outputs"][0]["data"][0]
    assert predicted == pytest.approx(3.0)
    dataplane.feedback("iris", None, b'{"request_id": "reg", "truth": 5.0}')
    labels = {"model": "iris", "version": "1", "variant": "d", "revision": "0"}
    registry = dataplane.metrics.registry
    assert registry.get_sample_value("mdserve_feedback_abs_error_sum", labels) == pytest.approx(2.0)
    assert registry.get_sample_value("mdserve_feedback_squared_error_sum", labels) == pytest.approx(4.0)
    assert registry.get_sample_value("mdserve_feedback_regression_total", labels) == 1
    assert registry.get_sample_value("mdserve_prediction_value_count", labels) == 1


def test_bind_inputs_by_name_for_multi_input_models() -> None:
    specs = [TensorSpec("a", "FP32", (-1, 2)), TensorSpec("b", "INT64", (-1,))]
    bound = bind_inputs(specs, {"a": np.ones((3, 2)), "b": np.arange(3)})
    assert bound["a"].dtype == np.float32 and bound["b"].dtype == np.int64
    with pytest.raises(MissingField, match="'b' is missing"):
        bind_inputs(specs, {"a": np.ones((3, 2))})
    with pytest.raises(WrongShape, match="unknown input"):
        bind_inputs(specs, {"a": np.ones((3, 2)), "b": np.arange(3), "c": np.arange(3)})
    with pytest.raises(WrongDatatype, match="floats"):
        bind_inputs(specs, {"a": np.ones((3, 2)), "b": np.ones(3)})


def test_without_micro_batching_small_batches_run_directly(iris_model: SklearnModel) -> None:
    dataplane = DataPlane(
        "iris", "1", ServerMetrics("iris", "1", "d", "0"), FeedbackStore(10), micro_batching=False
    )
    dataplane.install(iris_model)
    assert infer(dataplane, v2_body([SETOSA, VIRGINICA]))["outputs"][0]["data"] == [0, 2]
    assert dataplane.batcher is not None and dataplane.batcher.calls == 0
