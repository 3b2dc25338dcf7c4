"""Convert a loaded model and check it: shared by the CLI and start-up quantization."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdserve.detect import Artifact
from mdserve.quantize.convert import ConversionError, sklearn_to_onnx, tensorflow_to_tflite
from mdserve.quantize.report import Report, compare
from mdserve.runtimes.base import Array, Model


@dataclass(frozen=True)
class Converted:
    """The converted model, in memory and serialized, with its report when a sample was given."""

    model: Model
    """The converted runtime, ready to serve."""
    content: bytes
    """Serialized model (.tflite or .onnx)."""
    suffix: str
    """File suffix for `content`."""
    report: Report | None
    """Comparison with the original on the sample."""
    note: str = ""
    """Why the result is not what the mode asked for (e.g. nothing was quantizable)."""


def artifact_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def convert_and_check(
    artifact: Artifact,
    original: Model,
    mode: str,
    features: Array | None,
    labels: Array | None,
    min_agreement: float,
    tolerance: float = 1e-3,
) -> Converted:
    """Convert `original` (loaded from `artifact`) and, given sample rows, refuse the result when
    its agreement with the original is below `min_agreement` (ConversionError)."""
    if artifact.format == "tensorflow":
        from mdserve.runtimes.tensorflow import TensorFlowModel
        from mdserve.runtimes.tflite import TFLiteModel

        assert isinstance(original, TensorFlowModel)
        note = ""
        if artifact.path.is_dir():
            content = tensorflow_to_tflite(artifact.path, mode, features)
        else:
            with tempfile.TemporaryDirectory() as scratch:
                # Keras 3 exports a SavedModel with a serving_default signature.
                keras_model: Any = original.trackable
                keras_model.export(scratch, verbose=False)
                content = tensorflow_to_tflite(Path(scratch), mode, features)
        converted: Model = TFLiteModel(content, source=f"{artifact.path.name} ({mode})")
        suffix = ".tflite"
    elif artifact.format == "sklearn":
        from mdserve.runtimes.onnx import OnnxModel
        from mdserve.runtimes.sklearn import SklearnModel

        assert isinstance(original, SklearnModel)
        n_features = max(original.info.inputs[0].shape[1], 1)
        features_for_shape = features if features is not None else np.zeros((1, n_features))
        content, note = sklearn_to_onnx(original.estimator, mode, features_for_shape)
        converted = OnnxModel(content, source=f"{artifact.path.name} ({mode})")
        suffix = ".onnx"
    else:
        raise ConversionError(
            f"{artifact.format} models cannot be quantized here; quantize the original model"
        )
    report = None
    if features is not None:
        report = compare(
            original,
            converted,
            mode,
            artifact_size(artifact.path),
            len(content),
            features,
            labels,
            tolerance,
            note,
        )
        if report.agreement < min_agreement:
            raise ConversionError(
                f"refusing the {mode} conversion: agreement {report.agreement:.4f} "
                f"with the original is below "
                f"the required {min_agreement:.4f}\n{report.render()}"
            )
    return Converted(converted, content, suffix, report, note)
