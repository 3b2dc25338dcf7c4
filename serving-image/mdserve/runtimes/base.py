"""The contract every runtime implements: metadata about tensors, and a synchronous predict."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.generic]


class Task(enum.Enum):
    """What the model's primary output means; drives model-aware metrics and feedback scoring."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    OTHER = "other"


@dataclass(frozen=True)
class TensorSpec:
    """Name, V2 datatype and shape of one model input or output."""

    name: str
    """Tensor name as used in V2 `inputs[].name` / `outputs[].name`."""
    datatype: str
    """V2 datatype, e.g. `FP32`, `INT64`, `BYTES`."""
    shape: tuple[int, ...]
    """Shape with -1 for any size (the first dimension is the batch)."""


@dataclass(frozen=True)
class ModelInfo:
    """Static facts about a loaded model that the data plane and metrics need."""

    format: str
    """Runtime format: sklearn, tensorflow, tflite or onnx."""
    inputs: tuple[TensorSpec, ...]
    """Inputs the model accepts, in signature order."""
    outputs: tuple[TensorSpec, ...]
    """Outputs the model can return."""
    default_outputs: tuple[str, ...]
    """Outputs returned when the request names none."""
    task: Task
    """Whether predictions are classes, numbers, or neither."""
    class_labels: tuple[str, ...] = ()
    """Known class labels (classification), in the model's order; empty if unknown."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Free-form details shown in metadata (e.g. estimator class)."""


class Model(ABC):
    """A loaded model. `predict` is synchronous and may be called from several threads
    unless `thread_safe` is False, in which case the caller serialises calls."""

    info: ModelInfo
    thread_safe: bool = True

    @abstractmethod
    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        """Run the model on named, validated inputs and return the requested outputs by name."""

    @abstractmethod
    def targets(self, outputs: Mapping[str, Array]) -> Array | None:
        """One prediction per row for metrics and feedback: class labels (as str) for classification,
        floats for regression, None when the task is OTHER or the needed output was not computed."""

    def warmup_inputs(self) -> dict[str, Array]:
        """A small valid input batch used for the start-up warm-up inference."""
        batch: dict[str, Array] = {}
        for spec in self.info.inputs:
            shape = tuple(1 if dim < 0 else dim for dim in spec.shape) or (1,)
            batch[spec.name] = np.zeros(shape, dtype=numpy_dtype(spec.datatype))
        return batch


_V2_TO_NUMPY: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
_NUMPY_TO_V2: dict[str, str] = {v: k for k, v in _V2_TO_NUMPY.items()}
V2_DATATYPES: tuple[str, ...] = tuple(_V2_TO_NUMPY)


def numpy_dtype(datatype: str) -> np.dtype[np.generic]:
    """The numpy dtype for a V2 datatype (BYTES → object)."""
    return np.dtype(_V2_TO_NUMPY[datatype])


def v2_datatype(dtype: np.dtype[np.generic]) -> str:
    """The V2 datatype for a numpy dtype; strings and objects map to BYTES."""
    if dtype.kind in ("U", "S", "O"):
        return "BYTES"
    return _NUMPY_TO_V2.get(dtype.name, "BYTES")


def argmax_labels(scores: Array, class_labels: Sequence[str]) -> Array:
    """Row-wise arg-max of a score matrix as string labels (index when labels are unknown)."""
    matrix = np.asarray(scores)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    indices = matrix.reshape(matrix.shape[0], -1).argmax(axis=1)
    if class_labels and len(class_labels) == matrix.shape[-1]:
        labels = np.asarray(class_labels, dtype=object)
        picked: Array = np.asarray(labels[indices])
        return picked
    as_text: Array = indices.astype(str).astype(object)
    return as_text


def task_from_output_shape(shape: tuple[int, ...]) -> Task:
    """Guess the task of a neural model from its primary output: [batch, k>1] scores are classes."""
    if len(shape) == 2 and shape[1] > 1:
        return Task.CLASSIFICATION
    if len(shape) <= 1 or (len(shape) == 2 and shape[1] == 1):
        return Task.REGRESSION
    return Task.OTHER
