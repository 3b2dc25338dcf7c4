"""Original vs converted on held-out rows: size, latency per row, agreement and accuracy."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mdserve.feedback import _label
from mdserve.runtimes.base import Array, Model, Task, numpy_dtype

_SINGLE_ROW_CALLS = 200


@dataclass(frozen=True)
class Report:
    """What a conversion changed, measured on the sample."""

    mode: str
    """Conversion mode (float32, dynamic, float16, int8)."""
    rows: int
    """Held-out rows compared."""
    original_bytes: int
    """Size of the original artifact."""
    converted_bytes: int
    """Size of the converted model."""
    original_ms_per_row_batch: float
    """Original: milliseconds per row when the whole sample is one batch."""
    converted_ms_per_row_batch: float
    """Converted: the same."""
    original_ms_single_row: float
    """Original: median milliseconds of a one-row call."""
    converted_ms_single_row: float
    """Converted: the same."""
    agreement: float
    """Fraction of rows where both predict the same class (or values within the tolerance)."""
    original_metric: float | None
    """Accuracy (classification) or mean absolute error (regression) against labels, if given."""
    converted_metric: float | None
    """The same for the converted model."""
    metric_name: str
    """accuracy or mae."""
    note: str = ""
    """Caveat from the converter, e.g. that nothing was quantizable."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        def row(name: str, ours: float, theirs: float, digits: int) -> str:
            return f"  {name:22}{ours:>14.{digits}f}{theirs:>14.{digits}f}"

        lines = [
            f"quantization report ({self.mode}, {self.rows} held-out rows)",
            f"  {'':22}{'original':>14}{'converted':>14}",
            row("size (bytes)", self.original_bytes, self.converted_bytes, 0),
            row("ms/row (batch)", self.original_ms_per_row_batch, self.converted_ms_per_row_batch, 5),
            row("ms (single row, p50)", self.original_ms_single_row, self.converted_ms_single_row, 4),
        ]
        if self.original_metric is not None and self.converted_metric is not None:
            delta = self.converted_metric - self.original_metric
            lines.append(
                row(self.metric_name, self.original_metric, self.converted_metric, 5)
                + f"  (delta {delta:+.5f})"
            )
        lines.append(f"  agreement: {self.agreement:.5f}")
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


def _inputs(model: Model, rows: Array) -> dict[str, Array]:
    (spec,) = model.info.inputs
    return {spec.name: rows.astype(numpy_dtype(spec.datatype))}


def _timed(model: Model, rows: Array) -> tuple[Array | None, float, float]:
    outputs = list(model.info.default_outputs)
    model.predict(_inputs(model, rows[:1]), outputs)  # first call allocates
    start = time.perf_counter()
    result = model.predict(_inputs(model, rows), outputs)
    per_row = (time.perf_counter() - start) * 1000 / len(rows)
    singles = []
    for row in rows[:_SINGLE_ROW_CALLS]:
        one = _inputs(model, row[np.newaxis, ...])
        start = time.perf_counter()
        model.predict(one, outputs)
        singles.append((time.perf_counter() - start) * 1000)
    return model.targets(result), per_row, float(np.median(singles))


def compare(
    original: Model,
    converted: Model,
    mode: str,
    original_bytes: int,
    converted_bytes: int,
    features: Array,
    labels: Array | None,
    tolerance: float,
    note: str = "",
) -> Report:
    """Run both models on `features` and measure. `tolerance` is relative, for regression."""
    if len(original.info.inputs) != 1:
        raise ValueError("the quantization report supports single-input models")
    ours, original_batch, original_single = _timed(original, features)
    theirs, converted_batch, converted_single = _timed(converted, features)
    task = original.info.task
    if ours is None or theirs is None:
        raise ValueError("the model has no class or value output to compare")
    if task is Task.CLASSIFICATION:
        agreement = float(np.mean(ours.astype(str) == theirs.astype(str)))
    else:
        a, b = ours.astype(np.float64), theirs.astype(np.float64)
        agreement = float(np.mean(np.abs(a - b) <= tolerance * np.maximum(1.0, np.abs(a))))
    metric_name = "accuracy" if task is Task.CLASSIFICATION else "mae"
    original_metric = converted_metric = None
    if labels is not None:
        if task is Task.CLASSIFICATION:
            truth = np.asarray([_label(v) for v in labels.tolist()], dtype=object)
            original_metric = float(np.mean(ours.astype(str) == truth))
            converted_metric = float(np.mean(theirs.astype(str) == truth))
        else:
            truth_values = labels.astype(np.float64)
            original_metric = float(np.mean(np.abs(ours.astype(np.float64) - truth_values)))
            converted_metric = float(np.mean(np.abs(theirs.astype(np.float64) - truth_values)))
    return Report(
        mode=mode,
        rows=len(features),
        original_bytes=original_bytes,
        converted_bytes=converted_bytes,
        original_ms_per_row_batch=original_batch,
        converted_ms_per_row_batch=converted_batch,
        original_ms_single_row=original_single,
        converted_ms_single_row=converted_single,
        agreement=agreement,
        original_metric=original_metric,
        converted_metric=converted_metric,
        metric_name=metric_name,
        note=note,
    )
