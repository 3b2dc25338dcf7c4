"""Side-by-side figures of the variants of an A/B test: requests/s, error rate, latency p50/p99 and online
accuracy from feedback, per variant. PromQL builders and parsing are pure; `measure` is the thin edge.

The queries reuse the analysis checks' selectors and metric names (checks.py): series are selected by
`namespace` and `revision` (the revision hash covers the variant's name), and only inference traffic
(`protocol` v1/v2) counts. Requests are counted from the latency histogram's `_count`, which the model server
creates at start-up (so the first burst of a fresh series is not lost); errors are the `code=~"5.."` part of
`mdserve_requests_total`.

"No data" is `None`, never 0: an empty answer (no such series) or an undefined ratio (no requests, no
feedback) reads None; a series that exists but did not move in the window reads 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from modeldeploy.analysis.checks import INFERENCE, increase, latency_quantile, selector
from modeldeploy.analysis.duration import promql_range
from modeldeploy.analysis.runner import Querier
from modeldeploy.prometheus import ProviderError, QueryResult, is_number

QUERY_KEYS = ("requests", "rate", "errors", "p50", "p99", "scored", "correct")


@dataclass(frozen=True)
class VariantRef:
    """One arm of the test: what is measured."""

    name: str
    """Variant name (`variant` label)."""
    revision: str
    """Revision serving the variant's traffic (`revision` label)."""
    weight: int = 0
    """Configured percent of unmatched traffic (reported, not queried)."""


@dataclass(frozen=True)
class VariantFigures:
    """The measured figures of one variant; None where there is no data."""

    name: str
    revision: str
    weight: int
    requests_per_second: float | None
    error_rate: float | None
    latency_p50: float | None
    latency_p99: float | None
    accuracy: float | None
    feedback: int | None

    def to_status(self) -> dict[str, object]:
        """camelCase status entry; figures without data are left out (an absent field means no data)."""
        out: dict[str, object] = {"name": self.name, "revision": self.revision, "weight": self.weight}
        for key, value in (
            ("requestsPerSecond", self.requests_per_second),
            ("errorRate", self.error_rate),
            ("latencyP50", self.latency_p50),
            ("latencyP99", self.latency_p99),
            ("accuracy", self.accuracy),
            ("feedback", self.feedback),
        ):
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class FiguresRun:
    """Every variant's figures at one instant, or the first provider error (then no figures)."""

    at: datetime
    window: str
    variants: tuple[VariantFigures, ...] = ()
    error: ProviderError | None = None


def queries(namespace: str, ref: VariantRef, window_seconds: float) -> dict[str, str]:
    """The named PromQL queries of one variant over a window."""
    w = promql_range(window_seconds)
    inference = selector(namespace, ref.revision, INFERENCE)
    errors = selector(namespace, ref.revision, f'{INFERENCE},code=~"5.."')
    feedback = selector(namespace, ref.revision)
    correct = selector(namespace, ref.revision, 'outcome="correct"')
    return {
        "requests": increase("mdserve_request_duration_seconds_count", inference, w),
        "rate": f"sum(rate(mdserve_request_duration_seconds_count{inference}[{w}]))",
        "errors": increase("mdserve_requests_total", errors, w),
        "p50": latency_quantile(0.5, inference, w),
        "p99": latency_quantile(0.99, inference, w),
        "scored": increase("mdserve_feedback_total", feedback, w),
        "correct": increase("mdserve_feedback_total", correct, w),
    }


def _value(result: QueryResult) -> float | None:
    """The value of an aggregate; None for an empty vector or a NaN/Inf (e.g. a quantile of no requests)."""
    if not result.samples:
        return None
    value = sum(s.value for s in result.samples)
    return value if is_number(value) else None


def _significant(value: float | None, digits: int = 3) -> float | None:
    """Rounded to `digits` significant digits, so a status write follows a real change, not float noise."""
    if value is None or value == 0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _fraction(part: float | None, whole: float | None) -> float | None:
    if whole is None or whole <= 0:
        return None
    return round(min(1.0, max(0.0, (part or 0.0) / whole)), 4)


def parse(ref: VariantRef, results: Mapping[str, QueryResult]) -> VariantFigures:
    """The figures of one variant from the answers to `queries` (which must all have succeeded)."""
    values = {key: _value(results[key]) for key in QUERY_KEYS}
    requests, scored = values["requests"], values["scored"]
    return VariantFigures(
        name=ref.name,
        revision=ref.revision,
        weight=ref.weight,
        requests_per_second=_significant(values["rate"]),
        # Errors without a 5xx series yet are 0 of the requests seen; without requests there is no rate.
        error_rate=_fraction(values["errors"], requests),
        latency_p50=_significant(values["p50"]),
        latency_p99=_significant(values["p99"]),
        accuracy=_fraction(values["correct"], scored),
        feedback=None if scored is None else round(scored),
    )


def measure(
    client: Querier,
    namespace: str,
    name: str,
    variants: Sequence[VariantRef],
    window_seconds: float,
    now: datetime,
) -> FiguresRun:
    """Query every variant's figures at `now` (blocking: call from a worker thread). The first provider
    error stops the run: figures from a partial answer would not be comparable side by side."""
    window = promql_range(window_seconds)
    out: list[VariantFigures] = []
    for ref in variants:
        results: dict[str, QueryResult] = {}
        for key, promql in queries(namespace, ref, window_seconds).items():
            result = client.query(promql, at=now)
            if result.error is not None:
                message = f"{namespace}/{name} variant {ref.name}: {result.error.message}"
                return FiguresRun(now, window, error=ProviderError(result.error.kind, message))
            results[key] = result
        out.append(parse(ref, results))
    return FiguresRun(now, window, tuple(out))
