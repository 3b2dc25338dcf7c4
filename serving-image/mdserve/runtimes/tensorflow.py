"""TensorFlow SavedModel (its serving signature) and Keras `.keras`/`.h5` files (wrapped in a
`tf.function`). Both are called directly: `model.predict` costs tens of milliseconds per call."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
    v2_datatype,
)

SIGNATURE = "serving_default"


def _spec(name: str, tf_spec: Any) -> TensorSpec:
    shape = tuple(-1 if d is None else int(d) for d in tf_spec.shape.as_list())
    return TensorSpec(name, v2_datatype(np.dtype(tf_spec.dtype.as_numpy_dtype)), shape)


def primary_targets(task: Task, primary: Array | None) -> Array | None:
    """Per-row class (arg-max) or value of a neural model's first output."""
    if primary is None:
        return None
    if task is Task.CLASSIFICATION:
        return argmax_labels(primary, ())
    if task is Task.REGRESSION:
        return np.asarray(primary, dtype=np.float64).reshape(primary.shape[0], -1)[:, 0]
    return None


class TensorFlowModel(Model):
    """A concrete function taking named tensors and returning a dict of named tensors."""

    def __init__(
        self,
        call: Callable[..., Mapping[str, Any]],
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        keep_alive: object,
        source: str,
        concrete: Any,
    ) -> None:
        import tensorflow as tf

        self._tf = tf
        self._call = call
        self.trackable = keep_alive  # owns the variables the function captures
        self.concrete = concrete
        """The concrete function, for conversion to TFLite."""
        primary = outputs[0]
        task = task_from_output_shape(primary.shape)
        self.info = ModelInfo(
            format="tensorflow",
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            default_outputs=tuple(spec.name for spec in outputs),
            task=task,
            extra={"source": source},
        )

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        tf = self._tf
        result = self._call(**{name: tf.convert_to_tensor(value) for name, value in inputs.items()})
        return {name: result[name].numpy() for name in outputs}

    def targets(self, outputs: Mapping[str, Array]) -> Array | None:
        return primary_targets(self.info.task, outputs.get(self.info.outputs[0].name))


def _load_saved_model(path: Path) -> TensorFlowModel:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    signatures = getattr(loaded, "signatures", {})
    if SIGNATURE not in signatures:
        raise ModelLoadError(
            f"SavedModel at {path} has no {SIGNATURE!r} signature (found {sorted(signatures)})"
        )
    function = signatures[SIGNATURE]
    _, kwargs = function.structured_input_signature
    inputs = [_spec(name, spec) for name, spec in kwargs.items()]
    outputs = [_spec(name, spec) for name, spec in function.structured_outputs.items()]
    return TensorFlowModel(function, inputs, outputs, loaded, "saved_model", function)


def _load_keras(path: Path) -> TensorFlowModel:
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(str(path), compile=False)
    names = [tensor.name for tensor in model.inputs]
    specs = [
        tf.TensorSpec(tensor.shape, tensor.dtype, name=name)
        for tensor, name in zip(model.inputs, names, strict=True)
    ]
    output_names = [f"output_{i}" for i in range(len(model.outputs))]

    @tf.function(input_signature=specs)  # type: ignore[misc,untyped-decorator]
    def serve(*tensors: Any) -> dict[str, Any]:
        result = model(list(tensors) if len(tensors) > 1 else tensors[0], training=False)
        values = result if isinstance(result, (list, tuple)) else [result]
        return dict(zip(output_names, values, strict=True))

    concrete = serve.get_concrete_function()

    def call(**named: Any) -> Mapping[str, Any]:
        return concrete(*[named[name] for name in names])  # type: ignore[no-any-return]

    inputs = [_spec(name, spec) for name, spec in zip(names, specs, strict=True)]
    outputs = [_spec(name, spec) for name, spec in concrete.structured_outputs.items()]
    return TensorFlowModel(call, inputs, outputs, model, "keras", concrete)


def load_tensorflow(path: Path) -> TensorFlowModel:
    """Load a SavedModel directory or a Keras file."""
    try:
        if path.is_dir():
            return _load_saved_model(path)
        return _load_keras(path)
    except ModelLoadError:
        raise
    except Exception as exc:  # TF raises many unrelated types for corrupt artifacts
        raise ModelLoadError(
            f"cannot load TensorFlow model {path.name}: {type(exc).__name__}: {exc}"
        ) from exc
