"""Operator metrics (prometheus-client), served on MODELDEPLOY_METRICS_PORT at /metrics."""

from __future__ import annotations

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
