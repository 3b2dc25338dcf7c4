"""Prometheus metrics of one served model. Label values come only from settings and fixed sets,
so cardinality stays bounded whatever clients send."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

from mdserve.errors import ERROR_KINDS, ERROR_STATUSES
from mdserve.feedback import Score
from mdserve.runtimes.base import Array

disable_created_metrics()  # type: ignore[no-untyped-call]

BASE_LABELS = ("model", "version", "variant", "revision")
PROTOCOLS = ("v2", "v1", "feedback", "other")
#: Protocols whose requests the canary analysis counts (success rate, latency).
INFERENCE_PROTOCOLS = ("v2", "v1")
#: From 100 µs (a small sklearn model in-process) to 10 s (a cold TF graph on a loaded node).
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Regression outputs: symmetric decades; the histogram's _sum/_count give the mean exactly.
VALUE_BUCKETS = (-1000.0, -100.0, -10.0, -1.0, -0.1, 0.0, 0.1, 1.0, 10.0, 100.0, 1000.0)
OTHER_CLASS = "other"


class ServerMetrics:
    """All metrics in a private registry (several apps can coexist in one test process)."""

    def __init__(
        self,
        model: str,
        version: str,
        variant: str,
        revision: str,
        max_class_labels: int = 100,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        base = (model, version, variant, revision)
        self._base = base
        self._max_class_labels = max_class_labels
        self._known_classes: set[str] = set()
        r = self.registry
        self.requests = Counter(
            "mdserve_requests",
            "Requests by protocol and HTTP status code.",
            [*BASE_LABELS, "protocol", "code"],
            registry=r,
        )
        self.duration = Histogram(
            "mdserve_request_duration_seconds",
            "Time from request start to response sent.",
            [*BASE_LABELS, "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "mdserve_inflight_requests", "Requests being processed.", BASE_LABELS, registry=r
        )
        self.errors = Counter("mdserve_errors", "Errors by kind.", [*BASE_LABELS, "kind"], registry=r)
        self.load_seconds = Gauge(
            "mdserve_model_load_seconds",
            "Time to fetch, verify, load and warm up the model.",
            BASE_LABELS,
            registry=r,
        )
        self.ready = Gauge(
            "mdserve_model_ready", "1 once the model is loaded and warmed up.", BASE_LABELS, registry=r
        )
        self.info = Info("mdserve_model", "Format and origin of the served model.", BASE_LABELS, registry=r)
        self.predictions = Counter(
            "mdserve_predictions", "Predicted classes (rows).", [*BASE_LABELS, "class"], registry=r
        )
        self.prediction_value = Histogram(
            "mdserve_prediction_value",
            "Regression outputs (rows).",
            BASE_LABELS,
            buckets=VALUE_BUCKETS,
            registry=r,
        )
        self.feedback = Counter(
            "mdserve_feedback",
            "Scored classification rows by outcome.",
            [*BASE_LABELS, "outcome"],
            registry=r,
        )
        # Exposed under the exact contract names, which a Counter would suffix with _total; they only grow.
        self.feedback_abs_error = Gauge(
            "mdserve_feedback_abs_error_sum",
            "Sum of |prediction - truth| (monotonic).",
            BASE_LABELS,
            registry=r,
        )
        self.feedback_squared_error = Gauge(
            "mdserve_feedback_squared_error_sum",
            "Sum of squared errors (monotonic).",
            BASE_LABELS,
            registry=r,
        )
        self.feedback_regression = Counter(
            "mdserve_feedback_regression", "Scored regression rows.", BASE_LABELS, registry=r
        )
        self._duration_by_protocol = {p: self.duration.labels(*base, p) for p in PROTOCOLS}
        self._errors_by_kind = {k: self.errors.labels(*base, k) for k in ERROR_KINDS}
        # Every code an inference request can end with exists at 0 from start-up: Prometheus' increase()
        # cannot see a series' first sample, so a lazily created 5xx series would hide the first error
        # burst from the canary analysis, and an absent one reads as "no data" instead of "no errors".
        self._requests_by_key: dict[tuple[str, int], Counter] = {
            (p, code): self.requests.labels(*base, p, str(code))
            for p in INFERENCE_PROTOCOLS
            for code in (200, *ERROR_STATUSES)
        }
        self.inflight_child = self.inflight.labels(*base)
        self._value_child = self.prediction_value.labels(*base)
        self._correct = self.feedback.labels(*base, "correct")
        self._incorrect = self.feedback.labels(*base, "incorrect")
        self._abs_child = self.feedback_abs_error.labels(*base)
        self._sq_child = self.feedback_squared_error.labels(*base)
        self._reg_rows_child = self.feedback_regression.labels(*base)
        self._class_children: dict[str, Counter] = {}
        self.ready.labels(*base).set(0)

    def declare_classes(self, labels: Sequence[str]) -> None:
        """Pre-create class series (so a never-predicted class reads 0, not absent)."""
        for label in labels[: self._max_class_labels]:
            self._known_classes.add(label)
            self._class_child(label)

    def _class_child(self, label: str) -> Counter:
        child = self._class_children.get(label)
        if child is None:
            if label not in self._known_classes and len(self._class_children) >= self._max_class_labels:
                label = OTHER_CLASS
                child = self._class_children.get(label)
                if child is not None:
                    return child
            child = self.predictions.labels(*self._base, label)
            self._class_children[label] = child
        return child

    def observe_request(self, protocol: str, code: int, seconds: float) -> None:
        key = (protocol, code)
        child = self._requests_by_key.get(key)
        if child is None:
            child = self.requests.labels(*self._base, protocol, str(code))
            self._requests_by_key[key] = child
        child.inc()
        self._duration_by_protocol[protocol].observe(seconds)

    def observe_error(self, kind: str) -> None:
        self._errors_by_kind.get(kind, self._errors_by_kind["internal"]).inc()

    def observe_classes(self, labels: Array) -> None:
        if len(labels) == 1:
            self._class_child(labels[0]).inc()
            return
        values, counts = np.unique(labels.astype(str), return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            self._class_child(value).inc(count)

    def observe_values(self, values: Array) -> None:
        for value in values.tolist():
            self._value_child.observe(value)

    def observe_score(self, result: Score) -> None:
        if result.correct:
            self._correct.inc(result.correct)
        if result.incorrect:
            self._incorrect.inc(result.incorrect)
        if result.regression_rows:
            self._abs_child.inc(result.abs_error)
            self._sq_child.inc(result.squared_error)
            self._reg_rows_child.inc(result.regression_rows)

    def model_loaded(self, seconds: float, details: dict[str, str]) -> None:
        self.load_seconds.labels(*self._base).set(seconds)
        self.info.labels(*self._base).info(details)
        self.ready.labels(*self._base).set(1)

    def model_unready(self) -> None:
        self.ready.labels(*self._base).set(0)
