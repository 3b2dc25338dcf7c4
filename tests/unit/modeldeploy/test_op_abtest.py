"""status.abTest: when the figures are refreshed (at most once per interval), what a failed refresh keeps, and
the reconciler wiring over an in-memory API (zero writes between refreshes, no section without variants or
Prometheus, never a failed reconcile)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from modeldeploy.abtest import next_refresh_in, refresh_due, section, window_seconds
from modeldeploy.analysis.figures import FiguresRun, VariantFigures, VariantRef
from modeldeploy.kube.client import KubeClient
from modeldeploy.prometheus import ProviderError, ProviderErrorKind, QueryResult, Sample
from modeldeploy.reconciler import Reconciler
from modeldeploy.settings import Settings
from tests.unit.modeldeploy.md_helpers import BASIC, IMAGE, md_with
from tests.unit.modeldeploy.test_op_routing import MemoryKube

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
REFS = (VariantRef("primary", "aaaa1111", 70), VariantRef("b", "bbbb2222", 30))


def old_section(at: str = "2026-01-01T12:00:00Z", refs: tuple[VariantRef, ...] = REFS) -> dict[str, Any]:
    return {"observedAt": at, "measuredAt": at, "window": "60s",
            "variants": [{"name": r.name, "revision": r.revision, "weight": r.weight, "accuracy": 0.9}
                         for r in refs]}


def test_refresh_is_due_first_then_once_per_interval() -> None:
    assert refresh_due(None, REFS, 30, T0)
    assert refresh_due({}, REFS, 30, T0)
    old = old_section()
    assert not refresh_due(old, REFS, 30, T0)
    assert not refresh_due(old, REFS, 30, T0 + timedelta(seconds=29.9))
    assert refresh_due(old, REFS, 30, T0 + timedelta(seconds=30))
    assert refresh_due({**old, "observedAt": "garbage"}, REFS, 30, T0)


def test_refresh_is_due_at_once_when_the_arms_change() -> None:
    old = old_section()
    new_revision = (REFS[0], VariantRef("b", "cccc3333", 30))
    assert refresh_due(old, new_revision, 30, T0)
    assert refresh_due(old, (REFS[0], VariantRef("b", "bbbb2222", 40)), 30, T0), "weight changed"
    assert refresh_due(old, REFS[:1], 30, T0), "variant removed"


def test_next_refresh_and_window() -> None:
    assert next_refresh_in(old_section(), 30, T0 + timedelta(seconds=10)) == 20
    assert next_refresh_in(old_section(), 30, T0 + timedelta(seconds=45)) == 1.0
    assert window_seconds(5) == 60 and window_seconds(300) == 300


def test_section_after_a_success_and_after_an_error() -> None:
    figures = (VariantFigures("primary", "aaaa1111", 70, 1.5, 0.0, 0.01, 0.05, 0.97, 40),
               VariantFigures("b", "bbbb2222", 30, None, None, None, None, None, None))
    ok = section(FiguresRun(T0, "60s", figures), REFS, None)
    assert ok["observedAt"] == ok["measuredAt"] == "2026-01-01T12:00:00Z" and "message" not in ok
    assert ok["variants"][0] == {"name": "primary", "revision": "aaaa1111", "weight": 70,
                                 "requestsPerSecond": 1.5, "errorRate": 0.0, "latencyP50": 0.01,
                                 "latencyP99": 0.05, "accuracy": 0.97, "feedback": 40}
    assert ok["variants"][1] == {"name": "b", "revision": "bbbb2222", "weight": 30}

    error = ProviderError(ProviderErrorKind.UNREACHABLE, "connection refused")
    later = T0 + timedelta(minutes=1)
    # The challenger moved to a new revision meanwhile: its old figures do not describe it.
    refs = (REFS[0], VariantRef("b", "cccc3333", 30))
    kept = section(FiguresRun(later, "60s", error=error), refs, old_section())
    assert kept["observedAt"] == "2026-01-01T12:01:00Z" and kept["measuredAt"] == "2026-01-01T12:00:00Z"
    assert kept["variants"] == [{"name": "primary", "revision": "aaaa1111", "weight": 70, "accuracy": 0.9},
                                {"name": "b", "revision": "cccc3333", "weight": 30}]
    assert kept["message"] == ("Prometheus Unreachable: connection refused; showing the figures measured at "
                               "2026-01-01T12:00:00Z")
    assert "measuredAt" not in section(FiguresRun(later, "60s", error=error), refs, None)


class FakePrometheus:
    """Answers every query with `value` (feedback: half correct), or with an error while `down`."""

    def __init__(self) -> None:
        self.queries = 0
        self.down = False

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        self.queries += 1
        if self.down:
            return QueryResult(promql, error=ProviderError(ProviderErrorKind.UNREACHABLE, "refused"))
        value = 5.0 if 'outcome="correct"' in promql else 10.0
        return QueryResult(promql, (Sample({}, value),))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def setup(spec: dict[str, Any], url: str = "") -> tuple[MemoryKube, Reconciler, FakePrometheus, Clock]:
    kube, prom, clock = MemoryKube(md_with(spec)), FakePrometheus(), Clock()
    r = Reconciler(cast(KubeClient, kube), Settings(serving_image=IMAGE, prometheus_url=url),
                   clock=lambda: "2026-01-01T00:00:00Z", now=clock)
    r.delivery.querier = lambda cfg, namespace: prom  # type: ignore[method-assign]
    return kube, r, prom, clock


AB = {**BASIC, "variants": [{"name": "b", "weight": 30}], "rollout": {"interval": "30s"}}


def test_reconciler_refreshes_once_per_interval_with_zero_writes_between() -> None:
    kube, r, prom, clock = setup(AB, url="http://prometheus.test")
    first = r.reconcile("ns1", "m")
    ab = kube.md["status"]["abTest"]
    assert [(v["name"], v["weight"], v["accuracy"], v["feedback"]) for v in ab["variants"]] == [
        ("primary", 70, 0.5, 10), ("b", 30, 0.5, 10)]
    assert first.requeue_after == 30
    r.reconcile("ns1", "m")  # the children's status settles
    queries = prom.queries
    clock.now = T0 + timedelta(seconds=10)
    quiet = r.reconcile("ns1", "m")
    assert quiet.writes == 0 and prom.queries == queries, "not due: no query, no write"
    assert quiet.requeue_after == 20

    clock.now = T0 + timedelta(seconds=31)
    prom.down = True
    failed = r.reconcile("ns1", "m")
    assert failed.writes == 1 and failed.phase is not None, "a Prometheus outage never fails the reconcile"
    ab = kube.md["status"]["abTest"]
    assert ab["variants"][0]["accuracy"] == 0.5 and ab["measuredAt"] == "2026-01-01T12:00:00Z"
    assert ab["observedAt"] == "2026-01-01T12:00:31Z" and "refused" in ab["message"]
    assert r.reconcile("ns1", "m").writes == 0

    clock.now = T0 + timedelta(seconds=62)
    prom.down = False
    assert r.reconcile("ns1", "m").writes == 1
    assert "message" not in kube.md["status"]["abTest"]


def test_spec_prometheus_address_enables_the_figures() -> None:
    spec = {**AB, "rollout": {"interval": "30s", "prometheus": {"address": "http://p.test"}}}
    kube, r, _, _ = setup(spec)
    r.reconcile("ns1", "m")
    assert "abTest" in kube.md["status"]


@pytest.mark.parametrize(("spec", "url"), [(AB, ""), (BASIC, "http://prometheus.test")])
def test_no_section_without_variants_or_prometheus(spec: dict[str, Any], url: str) -> None:
    kube, r, prom, _ = setup(spec, url)
    outcome = r.reconcile("ns1", "m")
    assert "abTest" not in kube.md["status"] and prom.queries == 0
    assert outcome.requeue_after is None
