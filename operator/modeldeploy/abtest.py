"""`status.abTest`: the variants of an A/B test measured side by side (analysis/figures.py), refreshed at most
once per `spec.rollout.interval`.

A ModelDeployment is an A/B test when it has variants beyond the primary; its figures are measured when a
Prometheus address is configured (spec.rollout.prometheus.address or MODELDEPLOY_PROMETHEUS_URL). Nothing is
promoted automatically: the figures are for people. The decisions (`refresh_due`, `next_refresh_in`,
`section`) are pure; `ABTest.status` is the edge that queries Prometheus (blocking, from a worker thread).

A failed refresh keeps the previous figures and says why in `message`; `observedAt` still moves so that a
Prometheus outage costs one attempt per interval, not one per reconcile. `measuredAt` is when the figures
shown were measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldeploy.analysis.figures import FiguresRun, VariantRef, measure
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.delivery import Delivery

MIN_WINDOW_SECONDS = 60.0
"""Shortest query window: rates need several scrapes, whatever the refresh interval."""
MIN_REQUEUE_SECONDS = 1.0
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime(TIME_FORMAT)


def parse_stamp(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def window_seconds(interval_seconds: float) -> float:
    """The query window: one refresh interval, at least MIN_WINDOW_SECONDS."""
    return max(interval_seconds, MIN_WINDOW_SECONDS)


def refs_of(variants: Sequence[Mapping[str, Any]]) -> tuple[VariantRef, ...]:
    """The arms to measure from status.variants (or status.abTest.variants): name, revision, weight."""
    return tuple(
        VariantRef(str(v["name"]), str(v["revision"]), int(v.get("weight", 0) or 0))
        for v in variants
        if v.get("name") and v.get("revision")
    )


def refresh_due(old: Mapping[str, Any] | None, refs: Sequence[VariantRef], interval_seconds: float,
                now: datetime) -> bool:
    """Measure now: never measured, the arms changed (a new revision, variant or weight), or one interval
    has passed since the last attempt."""
    if not old:
        return True
    if refs_of(old.get("variants") or []) != tuple(refs):
        return True
    at = parse_stamp(old.get("observedAt"))
    return at is None or now >= at + timedelta(seconds=interval_seconds)


def next_refresh_in(section_: Mapping[str, Any], interval_seconds: float, now: datetime) -> float:
    """Seconds until the next refresh of a section whose last attempt is `observedAt`."""
    at = parse_stamp(section_.get("observedAt")) or now
    left = (at + timedelta(seconds=interval_seconds) - now).total_seconds()
    return max(MIN_REQUEUE_SECONDS, left)


def section(run: FiguresRun, refs: Sequence[VariantRef], old: Mapping[str, Any] | None) -> dict[str, Any]:
    """status.abTest after a refresh: the new figures, or (on a provider error) the previous figures of the
    arms still measured, with a message."""
    if run.error is None:
        return {"observedAt": stamp(run.at), "measuredAt": stamp(run.at), "window": run.window,
                "variants": [v.to_status() for v in run.variants]}
    old = old or {}
    previous = {(v.get("name"), v.get("revision")): v for v in old.get("variants") or []}
    kept = [
        dict(previous.get((r.name, r.revision)) or {"name": r.name, "revision": r.revision}, weight=r.weight)
        for r in refs
    ]
    measured = old.get("measuredAt")
    message = (f"Prometheus {run.error.kind.value}: {run.error.message}; showing the figures measured at "
               f"{measured or 'never'}")
    out: dict[str, Any] = {"observedAt": stamp(run.at), "window": old.get("window", run.window),
                           "variants": kept, "message": message}
    if measured:
        out["measuredAt"] = measured
    return out


class ABTest:
    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery

    def address(self, spec: ModelDeploymentSpec) -> str:
        ref = spec.rollout.prometheus
        return (ref.address if ref else None) or self.delivery.settings.prometheus_url

    def status(
        self,
        md: Mapping[str, Any],
        spec: ModelDeploymentSpec | None,
        variants: Sequence[Mapping[str, Any]],
        now: datetime,
    ) -> tuple[dict[str, Any] | None, float | None]:
        """(status.abTest, seconds until the next refresh). `spec` None (refused spec): the last section is
        kept as it is. No variants beyond the primary, or no Prometheus: no section."""
        meta = md["metadata"]
        old = (md.get("status") or {}).get("abTest")
        if spec is None:
            return (dict(old) if old else None), None
        if not spec.variants or not self.address(spec):
            return None, None
        refs = refs_of(variants)
        interval = spec.rollout.interval_seconds
        if not refresh_due(old, refs, interval, now):
            assert old is not None
            return dict(old), next_refresh_in(old, interval, now)
        querier = self.delivery.querier(spec.rollout, meta["namespace"])
        run = measure(querier, meta["namespace"], meta["name"], refs, window_seconds(interval), now)
        return section(run, refs, old), max(MIN_REQUEUE_SECONDS, interval)
