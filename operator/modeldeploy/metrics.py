"""Operator metrics (prometheus-client), served on MODELDEPLOY_METRICS_PORT at /metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("modeldeploy_reconciles_total", "Reconcile passes by result.", ["result"])
RECONCILE_ERRORS = Counter(
    "modeldeploy_reconcile_errors_total", "Reconcile passes that raised, by error type.", ["error"]
)
RECONCILE_DURATION = Histogram(
    "modeldeploy_reconcile_duration_seconds",
    "Duration of one reconcile pass.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECONCILE_WRITES = Counter("modeldeploy_reconcile_writes_total", "API writes made by reconcile passes.")
QUEUE_DEPTH = Gauge("modeldeploy_workqueue_depth", "Keys waiting for a worker.")
WORKERS_BUSY = Gauge("modeldeploy_workers_busy", "Workers currently reconciling.")


def serve(port: int) -> None:
    """Starts the /metrics HTTP server in a daemon thread (0 disables it)."""
    if port:
        start_http_server(port)


# Per-object series for alerting (helm/modeldeploy/files/alerts.yaml); bounded by the number of objects.
OBJECT_LABELS = ["namespace", "modeldeployment"]
ROLLBACKS = Counter(
    "modeldeploy_rollbacks_total", "Automatic and manual rollbacks of a canary revision.", OBJECT_LABELS
)
READY = Gauge(
    "modeldeploy_modeldeployment_ready", "1 when the ModelDeployment is Ready, else 0.", OBJECT_LABELS
)
INCONCLUSIVE = Gauge(
    "modeldeploy_analysis_inconclusive",
    "1 while the last analysis of the canary was inconclusive (no data, too few samples, Prometheus errors).",
    OBJECT_LABELS,
)


def record_object(namespace: str, name: str, status: dict[str, Any], event_reasons: Iterable[str]) -> None:
    """Updates the per-object series from the status just computed and the Events just posted."""
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
    READY.labels(namespace, name).set(1 if ready else 0)
    outcome = (status.get("rollout") or {}).get("lastOutcome")
    INCONCLUSIVE.labels(namespace, name).set(1 if outcome in ("Inconclusive", "Error") else 0)
    for reason in event_reasons:
        if reason == "RolledBack":
            ROLLBACKS.labels(namespace, name).inc()


def forget_object(namespace: str, name: str) -> None:
    """Drops the gauges of a deleted ModelDeployment (the counter's history stays, as Prometheus expects)."""
    for gauge in (READY, INCONCLUSIVE):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
