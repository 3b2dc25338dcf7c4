"""The thin edge of the analysis: run every metric's queries against Prometheus and judge them.

Blocking (the Prometheus client is synchronous): call from the reconciler's worker thread, or through
`asyncio.to_thread` from async code. All decisions are in checks.py and verdict.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from modeldeploy.analysis.checks import Target, plan, reading
from modeldeploy.analysis.config import AnalysisMetric
from modeldeploy.analysis.verdict import AnalysisRun, combine, evaluate
from modeldeploy.prometheus import QueryResult


class Querier(Protocol):
    """What the runner needs from a Prometheus client (PrometheusClient satisfies it)."""

    def query(self, promql: str, at: datetime | None = None) -> QueryResult: ...


def run_analysis(
    client: Querier,
    metrics: Sequence[AnalysisMetric],
    target: Target,
    default_interval: str,
    now: datetime,
) -> AnalysisRun:
    """Measure every metric at `now` (the queries are evaluated at that instant, so a slow run stays
    consistent) and combine the verdicts."""
    measurements = []
    for metric in metrics:
        queries = plan(metric, target, metric.window_seconds(default_interval))
        results = {key: client.query(promql, at=now) for key, promql in queries.items()}
        measurements.append(evaluate(metric.name, reading(metric, results), metric.threshold_range,
                                     metric.min_samples))
    return combine(now, measurements)
