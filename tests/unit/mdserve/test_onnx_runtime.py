from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mdserve.detect import Artifact
from mdserve.errors import ModelLoadError
from mdserve.quantize.convert import ConversionError, sklearn_to_onnx
from mdserve.quantize.pipeline import convert_and_check
from mdserve.runtimes.base import Task
from mdserve.runtimes.onnx import OnnxModel, load_onnx
from mdserve.runtimes.sklearn import SklearnModel

pytestmark = pytest.mark.unit


def test_converted_classifier_agrees_with_sklearn(
    iris_model: SklearnModel, iris: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]
) -> None:
    features, _ = iris
    content, note = sklearn_to_onnx(iris_model.estimator, "float32", features)
    assert note == ""
    model = OnnxModel(content)
    assert model.info.task is Task.CLASSIFICATION
    assert model.info.class_labels == ("0", "1", "2")
    result = model.predict({"X": features.astype(np.float32)}, ["label", "probabilities"])
    assert result["probabilities"].shape == (150, 3)
    expected = iris_model.estimator.predict(features)
    assert np.mean(result["label"] == expected) > 0.99
    targets = model.targets(result)
    assert targets is not None
    assert targets.tolist() == [str(v) for v in result["label"].tolist()]


def test_dynamic_int8_on_a_graph_without_matmul_says_so(iris_model: SklearnModel, iris_file: Path) -> None:
    features = np.random.default_rng(0).normal(5, 1, size=(30, 4))
    converted = convert_and_check(Artifact("sklearn", iris_file), iris_model, "int8", features, None, 0.0)
    assert converted.report is not None and "kept float32" in converted.report.note


def test_agreement_threshold_refuses_a_bad_conversion(regression_model: SklearnModel, tmp_path: Path) -> None:
    # float32 ONNX differs from float64 sklearn by ~1e-7: a tolerance of 1e-12 must make it disagree.
    artifact = Artifact("sklearn", tmp_path / "model.joblib")
    artifact.path.write_bytes(b"x")
    features = np.random.default_rng(1).normal(size=(20, 3)) * 1000
    with pytest.raises(ConversionError, match="refusing the float32 conversion"):
        convert_and_check(artifact, regression_model, "float32", features, None, 0.99, tolerance=1e-12)
    ok = convert_and_check(artifact, regression_model, "float32", features, None, 0.99, tolerance=1e-3)
    assert ok.report is not None and ok.report.agreement == 1.0


def test_corrupt_onnx_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="cannot load ONNX"):
        load_onnx(path)


def test_dynamic_int8_quantizes_an_mlp_and_reports_accuracy(
    iris: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]], tmp_path: Path
) -> None:
    import onnx
    from sklearn.neural_network import MLPClassifier

    features, labels = iris
    estimator = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(features, labels)
    artifact = Artifact("sklearn", tmp_path / "mlp.joblib")
    artifact.path.write_bytes(b"stand-in: only its size is reported")
    original = SklearnModel(estimator)
    converted = convert_and_check(artifact, original, "int8", features, labels, 0.9)
    assert converted.note == "" and converted.suffix == ".onnx"
    assert converted.report is not None and converted.report.agreement >= 0.9
    assert converted.report.original_metric is not None and converted.report.converted_metric is not None
    names = {node.op_type for node in onnx.load_from_string(converted.content).graph.node}
    assert names & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}, names
