"""TFLite flat buffers (the quantized variants). Interpreters are not thread-safe, so each thread
gets its own. Models with a signature (everything our quantizer writes) are called through the
signature runner, which keeps the original tensor names and resizes the batch dimension."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from mdserve.errors import ModelLoadError
from mdserve.runtimes.base import Array, Model, ModelInfo, TensorSpec, task_from_output_shape, v2_datatype
from mdserve.runtimes.tensorflow import SIGNATURE, primary_targets


def _interpreter_class() -> Any:
    """LiteRT's interpreter when installed (tf.lite.Interpreter is deprecated), else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter
    return Interpreter


def _quantized(detail: Mapping[str, Any]) -> bool:
    scale = detail.get("quantization", (0.0, 0))[0]
    return bool(scale) and np.dtype(detail["dtype"]).kind in "iu"


def _spec(name: str, detail: Mapping[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature")
    shape = signature if signature is not None and len(signature) else detail["shape"]
    dims = tuple(int(d) for d in shape)
    if dims:
        dims = (-1, *dims[1:])
    # Quantized I/O is exposed as float and (de)quantized here, so clients send what they always sent.
    dtype = np.dtype(np.float32) if _quantized(detail) else np.dtype(detail["dtype"])
    return TensorSpec(name, v2_datatype(dtype), dims)


class _Runner:
    """One thread's interpreter: via the signature runner, or the raw tensor API when the
    model carries no signature."""

    def __init__(self, interpreter_class: Any, content: bytes) -> None:
        self.interpreter = interpreter_class(model_content=content, num_threads=1)
        signatures = self.interpreter.get_signature_list()
        self.signature = (
            self.interpreter.get_signature_runner(SIGNATURE if SIGNATURE in signatures else None)
            if signatures
            else None
        )
        if self.signature is None:
            self.interpreter.allocate_tensors()
        self.batch: int | None = None

    def input_details(self) -> dict[str, Any]:
        if self.signature is not None:
            return dict(self.signature.get_input_details())
        return {d["name"].split(":")[0]: d for d in self.interpreter.get_input_details()}

    def output_details(self) -> dict[str, Any]:
        if self.signature is not None:
            return dict(self.signature.get_output_details())
        return {d["name"].split(":")[0]: d for d in self.interpreter.get_output_details()}

    def run(self, inputs: Mapping[str, Array], in_details: Mapping[str, Any]) -> dict[str, Array]:
        if self.signature is not None:
            return dict(self.signature(**inputs))
        batch = next(iter(inputs.values())).shape[0]
        if self.batch != batch:
            for detail in in_details.values():
                self.interpreter.resize_tensor_input(
                    detail["index"], [batch, *list(detail["shape"])[1:]], strict=False
                )
            self.interpreter.allocate_tensors()
            self.batch = batch
        for name, detail in in_details.items():
            self.interpreter.set_tensor(detail["index"], inputs[name])
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(d["index"]) for name, d in self.output_details().items()}


class TFLiteModel(Model):
    """Runs a `.tflite` model with `tf.lite.Interpreter`."""

    def __init__(self, content: bytes, source: str = "tflite") -> None:
        self._interpreter_class = _interpreter_class()
        self._content = content
        self._local = threading.local()
        runner = self._runner()
        self._in = runner.input_details()
        self._out = runner.output_details()
        outputs = [_spec(name, d) for name, d in self._out.items()]
        self.info = ModelInfo(
            format="tflite",
            inputs=tuple(_spec(name, d) for name, d in self._in.items()),
            outputs=tuple(outputs),
            default_outputs=tuple(spec.name for spec in outputs),
            task=task_from_output_shape(outputs[0].shape),
            extra={"source": source},
        )

    def _runner(self) -> _Runner:
        runner: _Runner | None = getattr(self._local, "runner", None)
        if runner is None:
            runner = _Runner(self._interpreter_class, self._content)
            self._local.runner = runner
        return runner

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        prepared = {}
        for name, detail in self._in.items():
            value = inputs[name]
            if _quantized(detail):
                scale, zero_point = detail["quantization"]
                value = np.round(value / scale + zero_point)
            prepared[name] = np.ascontiguousarray(value, dtype=detail["dtype"])
        raw = self._runner().run(prepared, self._in)
        result: dict[str, Array] = {}
        for name in outputs:
            value = np.asarray(raw[name])
            detail = self._out[name]
            if _quantized(detail):
                scale, zero_point = detail["quantization"]
                value = (value.astype(np.float32) - zero_point) * scale
            result[name] = value
        return result

    def targets(self, outputs: Mapping[str, Array]) -> Array | None:
        return primary_targets(self.info.task, outputs.get(self.info.outputs[0].name))


def load_tflite(path: Path) -> TFLiteModel:
    try:
        return TFLiteModel(path.read_bytes(), source=path.name)
    except Exception as exc:
        raise ModelLoadError(f"cannot load TFLite model {path.name}: {type(exc).__name__}: {exc}") from exc
