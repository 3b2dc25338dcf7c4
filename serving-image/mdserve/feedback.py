"""Ground truth for earlier predictions: a bounded memory of request ids and pure scoring."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from mdserve.errors import BadRequest, MissingField
from mdserve.runtimes.base import Array, Task


@dataclass(frozen=True)
class FeedbackItem:
    """One `{"request_id": ..., "truth": ...}` object of a feedback request."""

    request_id: str
    """The request id of the prediction being scored (the `x-request-id` of its response)."""
    truth: Any
    """The true label or value, or a list of them for a multi-row request."""


@dataclass(frozen=True)
class Score:
    """How one scored request contributes to the online quality counters."""

    correct: int = 0
    """Classification rows whose prediction matched the truth."""
    incorrect: int = 0
    """Classification rows whose prediction did not match."""
    abs_error: float = 0.0
    """Regression: sum of |prediction - truth| over the rows."""
    squared_error: float = 0.0
    """Regression: sum of (prediction - truth)² over the rows."""
    regression_rows: int = 0
    """Regression rows scored."""


class FeedbackStore:
    """Remembers the per-row predictions of the last `capacity` requests (LRU) so that truth sent
    later can be scored. Each request id can be scored once. Safe to use from several threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, Array] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, request_id: str, targets: Array) -> None:
        if self.capacity == 0:
            return
        with self._lock:
            self._entries[request_id] = targets
            self._entries.move_to_end(request_id)
            if len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def take(self, request_id: str) -> Array | None:
        with self._lock:
            return self._entries.pop(request_id, None)

    def __len__(self) -> int:
        return len(self._entries)


def parse_feedback(payload: Any) -> list[FeedbackItem]:
    """Validate a feedback body: one object or a non-empty list of objects."""
    raw_items = payload if isinstance(payload, list) else [payload]
    if not raw_items:
        raise MissingField("feedback list is empty")
    items = []
    for index, raw in enumerate(raw_items):
        where = f"feedback[{index}]" if isinstance(payload, list) else "feedback"
        if not isinstance(raw, dict):
            raise BadRequest(f"{where} must be an object with 'request_id' and 'truth'")
        request_id = raw.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise MissingField(f"{where}.request_id must be a non-empty string")
        if "truth" not in raw or raw["truth"] is None:
            raise MissingField(f"{where}.truth is required")
        items.append(FeedbackItem(request_id, raw["truth"]))
    return items


def _label(value: Any) -> str:
    # JSON clients often send 1.0 for the class 1.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _rows(truth: Any, rows: int, request_id: str) -> list[Any]:
    values = truth if isinstance(truth, list) else [truth]
    if len(values) != rows:
        raise BadRequest(
            f"request {request_id!r:.64} predicted {rows} rows but truth has {len(values)} values"
        )
    return values


def score(task: Task, predicted: Array, truth: Any, request_id: str) -> Score:
    """Compare remembered predictions with the truth. Raises `BadRequest` for a row-count or type
    mismatch so nothing is counted from a malformed feedback item."""
    values = _rows(truth, len(predicted), request_id)
    if task is Task.CLASSIFICATION:
        if any(isinstance(v, (list, dict)) for v in values):
            raise BadRequest(f"truth for {request_id!r:.64} must be labels, not nested values")
        matches = sum(_label(t) == p for t, p in zip(values, predicted.tolist(), strict=True))
        return Score(correct=matches, incorrect=len(values) - matches)
    if task is Task.REGRESSION:
        try:
            actual = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise BadRequest(f"truth for {request_id!r:.64} must be numbers") from None
        if actual.ndim != 1 or not np.isfinite(actual).all():
            raise BadRequest(f"truth for {request_id!r:.64} must be finite numbers, one per row")
        error = predicted.astype(np.float64) - actual
        return Score(
            abs_error=float(np.abs(error).sum()),
            squared_error=float(np.square(error).sum()),
            regression_rows=len(values),
        )
    raise BadRequest("this model's outputs are neither classes nor numbers: feedback is not supported")
