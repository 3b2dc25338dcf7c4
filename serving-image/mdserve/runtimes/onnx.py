"""ONNX Runtime, mainly for sklearn models converted by skl2onnx (outputs `label`, `probabilities`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdserve.errors import ModelLoadError
from mdserve.runtimes.base import (
    Array,
    Model,
    ModelInfo,
    Task,
    TensorSpec,
    argmax_labels,
    task_from_output_shape,
)

_ORT_TYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(int8)": "INT8",
    "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


def _spec(arg: Any) -> TensorSpec | None:
    datatype = _ORT_TYPES.get(arg.type)
    if datatype is None:
        return None  # e.g. ZipMap's seq(map(...)): not a tensor; convert with zipmap=False instead
    shape = tuple(d if isinstance(d, int) else -1 for d in (arg.shape or []))
    return TensorSpec(arg.name, datatype, shape)


class OnnxModel(Model):
    """An `onnxruntime.InferenceSession` (thread-safe for concurrent `run`)."""

    def __init__(self, content: bytes, source: str = "onnx") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # small models: threads cost more than they save
        self.session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        inputs = [s for s in (_spec(a) for a in self.session.get_inputs()) if s is not None]
        outputs = [s for s in (_spec(a) for a in self.session.get_outputs()) if s is not None]
        if not inputs or not outputs:
            raise ModelLoadError("the ONNX model has no tensor inputs or outputs this server can use")
        names = [spec.name for spec in outputs]
        if "label" in names:
            task = Task.CLASSIFICATION if "probabilities" in names else Task.REGRESSION
            self._primary = "label"
        elif "variable" in names:  # skl2onnx regressors
            task, self._primary = Task.REGRESSION, "variable"
        else:
            task, self._primary = task_from_output_shape(outputs[0].shape), outputs[0].name
        meta = self.session.get_modelmeta().custom_metadata_map
        labels = tuple(meta.get("class_labels", "").split(",")) if meta.get("class_labels") else ()
        self.info = ModelInfo(
            format="onnx",
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            default_outputs=(self._primary,),
            task=task,
            class_labels=labels,
            extra={"source": source},
        )

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        values = self.session.run(list(outputs), dict(inputs))
        return {name: np.asarray(value) for name, value in zip(outputs, values, strict=True)}

    def targets(self, outputs: Mapping[str, Array]) -> Array | None:
        primary = outputs.get(self._primary)
        if primary is None:
            return None
        if self.info.task is Task.CLASSIFICATION:
            if self._primary == "label":
                return primary.reshape(-1).astype(str).astype(object)
            return argmax_labels(primary, self.info.class_labels)
        if self.info.task is Task.REGRESSION:
            return np.asarray(primary, dtype=np.float64).reshape(primary.shape[0], -1)[:, 0]
        return None


def load_onnx(path: Path) -> OnnxModel:
    try:
        return OnnxModel(path.read_bytes(), source=path.name)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load ONNX model {path.name}: {type(exc).__name__}: {exc}") from exc
