"""Prometheus metrics of the router (prefix ``mdroute_``), on a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Buckets from 0.5 ms: the router's own overhead must be visible, not only slow model calls.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RouterMetrics:
    """All router metrics; one instance per process (tests make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mdroute_requests",
            "Requests answered, by variant and HTTP status code.",
            ["variant", "code"],
            registry=r,
        )
        self.duration = Histogram(
            "mdroute_request_duration_seconds",
            "Time from request received to response headers sent.",
            ["variant"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "mdroute_upstream_errors",
            "Requests the router answered itself because a backend failed.",
            ["variant", "kind"],
            registry=r,
        )
        self.shadow = Counter(
            "mdroute_shadow_requests",
            "Shadow copies by outcome (ok, http_error, error, timeout, dropped).",
            ["variant", "outcome"],
            registry=r,
        )
        self.feedback_routed = Counter(
            "mdroute_feedback_routed",
            "Feedback items by the variant they were sent to and how it was chosen "
            "(explicit: x-mdroute-variant header or a rule; remembered; fallback: sticky key or split).",
            ["variant", "how"],
            registry=r,
        )
        self.reloads = Counter(
            "mdroute_table_reloads",
            "Route table deliveries by source and outcome (applied, invalid, error).",
            ["source", "outcome"],
            registry=r,
        )
        self.table_info = Gauge(
            "mdroute_table_info",
            "1 for the version of the route table in use.",
            ["version"],
            registry=r,
        )
        self.weight = Gauge(
            "mdroute_weight", "Weight of each variant in the table in use.", ["variant"], registry=r
        )
        self.table_rejected = Gauge(
            "mdroute_table_rejected",
            "1 while the newest table from a source was rejected and an older one is still in use.",
            registry=r,
        )
        self.table_applied_at = Gauge(
            "mdroute_table_last_applied_timestamp_seconds",
            "Unix time the table in use was applied.",
            registry=r,
        )
