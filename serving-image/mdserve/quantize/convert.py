"""The conversions themselves. Each returns the serialized model (bytes) and never writes files."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mdserve.runtimes.base import Array

TF_MODES = ("float32", "dynamic", "float16", "int8")
SKLEARN_MODES = ("float32", "dynamic", "int8")


class ConversionError(ValueError):
    """The conversion is impossible or refused; the message says why."""


def tensorflow_to_tflite(saved_model: Path, mode: str, calibration: Array | None) -> bytes:
    """Convert a SavedModel's serving signature to TFLite (Keras files are exported first).
    float32: plain; dynamic: int8 weights; float16: fp16 weights; int8: full-integer kernels
    calibrated on `calibration` rows (float I/O is kept so clients do not change)."""
    import tensorflow as tf

    if mode not in TF_MODES:
        raise ConversionError(f"mode {mode!r} is not one of {', '.join(TF_MODES)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        if calibration is None or len(calibration) == 0:
            raise ConversionError("int8 quantization needs a representative sample (--sample)")
        signature = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
        _, kwargs = signature.structured_input_signature
        if len(kwargs) != 1:
            raise ConversionError("int8 calibration supports single-input models")
        ((input_name, spec),) = kwargs.items()
        rows = calibration[:500].astype(spec.dtype.as_numpy_dtype)

        def representative() -> Iterator[dict[str, Array]]:
            for row in rows:
                yield {input_name: row[np.newaxis, ...]}

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        return bytes(converter.convert())
    except Exception as exc:
        raise ConversionError(f"TFLite conversion ({mode}) failed: {type(exc).__name__}: {exc}") from exc


#: Operators ONNX Runtime's dynamic quantizer rewrites; a graph without them stays float.
_QUANTIZABLE_OPS = {"MatMul", "Gemm", "Conv", "Gather", "Attention", "LSTM", "EmbedLayerNormalization"}


def sklearn_to_onnx(estimator: Any, mode: str, sample: Array) -> tuple[bytes, str]:
    """Convert an estimator with skl2onnx (float32 inputs; class probabilities as a plain tensor).
    dynamic/int8 then apply ONNX Runtime dynamic int8 quantization to MatMul/Gemm weights —
    which does not apply to graphs without them (tree ensembles, the ai.onnx.ml linear ops):
    those are returned unquantized, and the second value says so."""
    import onnx
    from skl2onnx import to_onnx

    if mode not in SKLEARN_MODES:
        raise ConversionError(
            f"mode {mode!r} is not available for sklearn; use one of {', '.join(SKLEARN_MODES)}"
        )
    steps = getattr(estimator, "steps", None)
    final = steps[-1][1] if steps else estimator
    options = {id(final): {"zipmap": False}} if hasattr(final, "classes_") else None
    try:
        proto = to_onnx(estimator, sample[:1].astype(np.float32), options=options, target_opset=None)
    except Exception as exc:
        raise ConversionError(f"skl2onnx cannot convert {type(estimator).__name__}: {exc}") from exc
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "class_labels", ",".join(str(c) for c in classes)
    content: bytes = proto.SerializeToString()
    if mode == "float32":
        return content, ""
    if not any(
        node.op_type in _QUANTIZABLE_OPS and node.domain in ("", "ai.onnx") for node in proto.graph.node
    ):
        ops = sorted({node.op_type for node in proto.graph.node})
        return content, f"no int8-quantizable operators in {ops}: kept float32"
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch) / "model.onnx", Path(scratch) / "model.int8.onnx"
        source.write_bytes(content)
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        except Exception as exc:
            raise ConversionError(f"ONNX dynamic quantization failed: {type(exc).__name__}: {exc}") from exc
        quantized = onnx.load(str(target))
        return bytes(quantized.SerializeToString()), ""
