"""The rollout engine's wiring into the reconciler: what a decision renders, keeps and scales; where the
analysis queries go; the decision taken from status.rollout; the status it produces. No cluster."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from modeldeploy.api.spec import parse_spec
from modeldeploy.delivery import Delivery, Unavailable, primary_plan
from modeldeploy.kube.client import KubeClient
from modeldeploy.prometheus import PrometheusClient, QueryResult, Sample
from modeldeploy.render.variants import resolve
from modeldeploy.revisions import VariantRevisions
from modeldeploy.rollout.engine import Decision
from modeldeploy.rollout.state import Phase, RolloutState
from modeldeploy.settings import Settings
from modeldeploy.status import compute, condition_of
from tests.unit.modeldeploy.md_helpers import BASIC, IMAGE, md_with

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CANARY = {
    **BASIC,
    "rollout": {
        "strategy": "Canary",
        "interval": "10s",
        "consecutiveFailureLimit": 0,
        "steps": [{"setWeight": 20}, {"setWeight": 50}],
        "metrics": [{"name": "check", "query": "vector(1)", "thresholdRange": {"max": 1}}],
    },
}


class FakeKube:
    def __init__(self, secrets: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.secrets = secrets or {}

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.secrets.get((namespace, name))


class Constant:
    """A Querier answering every query with one value."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.queries: list[str] = []

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        self.queries.append(promql)
        return QueryResult(promql, (Sample({}, self.value),))


def delivery(settings: Settings | None = None, kube: FakeKube | None = None) -> Delivery:
    return Delivery(cast(KubeClient, kube or FakeKube()), settings or Settings())


def decision(retain: set[str], replicas: dict[str, int]) -> Decision:
    return Decision(RolloutState(), {}, replicas, frozenset(retain), (), None, None)


def live_dep(name: str, revision: str, replicas: int, ready: int | None = None) -> dict[str, Any]:
    ready = replicas if ready is None else ready
    return {
        "metadata": {"name": name, "generation": 1, "labels": {
            "serving.modeldeploy.dev/variant": "primary", "serving.modeldeploy.dev/revision": revision}},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": ready,
                   "availableReplicas": ready, "readyReplicas": ready},
    }


def test_plan_holds_the_desired_revision_at_zero_and_scales_older_ones() -> None:
    (primary,) = resolve("m", parse_spec({**BASIC, "autoscaling": {"maxReplicas": 3}}), IMAGE)
    d = primary.revision
    observed = {
        ("Deployment", "m-primary-old1"): live_dep("m-primary-old1", "old1", 2),
        ("HorizontalPodAutoscaler", "m-primary-old1"): {},
        ("Deployment", "m-primary-old2"): live_dep("m-primary-old2", "old2", 0),
        ("HorizontalPodAutoscaler", "m-primary-old2"): {},
        ("Deployment", "m-primary-old3"): live_dep("m-primary-old3", "old3", 1),
    }
    plan = primary_plan("m", primary, decision({d, "old1", "old2", "old3"},
                                               {d: 0, "old1": 0, "old2": 2, "old3": 1}), observed)
    assert (plan.variant.replicas, plan.variant.autoscaling) == (0, None), "held: zero replicas, no HPA"
    assert plan.variant.revision == d
    assert plan.scale == {"m-primary-old1": 0}, "old2 has an HPA that owns its replicas; old3 is right"
    assert ("HorizontalPodAutoscaler", "m-primary-old1") not in plan.keep, "its HPA goes before scale-down"
    assert ("HorizontalPodAutoscaler", "m-primary-old2") in plan.keep
    assert {("Deployment", "m-primary-old3"), ("Service", "m-primary-old3")} <= plan.keep
    serving = primary_plan("m", primary, decision({d}, {d: 2}), observed)
    assert serving.variant is primary and serving.keep == frozenset() and serving.scale == {}


def test_querier_address_timeout_and_token() -> None:
    cfg = parse_spec(CANARY).rollout
    missing = delivery().querier(cfg, "ns1")
    assert isinstance(missing, Unavailable) and "MODELDEPLOY_PROMETHEUS_URL" in missing.error.message
    client = delivery(Settings(prometheus_url="http://prom:9090", prometheus_timeout=3)).querier(cfg, "ns1")
    assert isinstance(client, PrometheusClient) and (client.url, client.timeout) == ("http://prom:9090", 3)

    own = parse_spec({**CANARY, "rollout": {**cast(dict[str, Any], CANARY["rollout"]), "prometheus": {
        "address": "http://own:9090", "timeoutSeconds": 1.5, "authSecretRef": {"name": "prom"}}}}).rollout
    token = {"data": {"token": base64.b64encode(b"s3cret\n").decode()}}
    client = delivery(kube=FakeKube({("ns1", "prom"): token})).querier(own, "ns1")
    assert isinstance(client, PrometheusClient) and (client.url, client.timeout) == ("http://own:9090", 1.5)
    assert client._authorization == "Bearer s3cret"
    absent = delivery().querier(own, "ns1")
    assert isinstance(absent, Unavailable) and "Secret ns1/prom not found" in absent.error.message
    keyless = delivery(kube=FakeKube({("ns1", "prom"): {"data": {}}})).querier(own, "ns1")
    assert isinstance(keyless, Unavailable) and "ns1/prom has no key 'token'" in keyless.error.message
    operator_wide = Settings(prometheus_url="http://p", prometheus_auth_secret="mon/tok")
    client = delivery(operator_wide, FakeKube({("mon", "tok"): token})).querier(cfg, "ns1")
    assert isinstance(client, PrometheusClient) and client._authorization == "Bearer s3cret"


def test_basic_auth_secret_gives_a_basic_authorization_header() -> None:
    own = parse_spec({**CANARY, "rollout": {**cast(dict[str, Any], CANARY["rollout"]), "prometheus": {
        "address": "http://own:9090", "authSecretRef": {"name": "prom"}}}}).rollout

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    secret = {"type": "kubernetes.io/basic-auth", "data": {"username": b64("ops"), "password": b64("pa:ss")}}
    client = delivery(kube=FakeKube({("ns1", "prom"): secret})).querier(own, "ns1")
    assert isinstance(client, PrometheusClient) and client._authorization == f"Basic {b64('ops:pa:ss')}"
    assert "pa:ss" not in repr(client) and b64("ops:pa:ss") not in repr(client)
    no_password = {"type": "kubernetes.io/basic-auth", "data": {"username": b64("ops")}}
    broken = delivery(kube=FakeKube({("ns1", "prom"): no_password})).querier(own, "ns1")
    assert isinstance(broken, Unavailable) and "has no key 'password'" in broken.error.message


def test_unavailable_answers_every_query_with_a_provider_error() -> None:
    result = Unavailable("no address").query("up")
    assert not result.ok and result.error is not None and result.error.message == "no address"


class Fixed(Delivery):
    def __init__(self, value: float) -> None:
        super().__init__(cast(KubeClient, FakeKube()), Settings())
        self.querier_used = Constant(value)

    def querier(self, cfg: Any, namespace: str) -> Constant:
        return self.querier_used


def canary_world(value: float) -> tuple[Fixed, dict[str, Any], Any, dict[str, Any]]:
    """rev `old` stable, the spec's revision a Ready canary at step 1 since 30s (analysis due)."""
    md = md_with(CANARY)
    spec = parse_spec(md["spec"])
    (primary,) = resolve("m", spec, IMAGE)
    state = RolloutState(phase=Phase.PROGRESSING, stableRevision="old", canaryRevision=primary.revision,
                         canaryStartedAt=NOW - timedelta(seconds=60),
                         stepStartedAt=NOW - timedelta(seconds=30), canaryWeight=20)
    md["status"] = {"stableRevision": "old", "rollout": state.to_status()}
    deployments = {
        "m-primary-old": live_dep("m-primary-old", "old", 1),
        f"m-primary-{primary.revision}": live_dep(f"m-primary-{primary.revision}", primary.revision, 1),
    }
    return Fixed(value), md, primary, deployments


def test_decide_runs_the_due_analysis_and_rolls_back_a_failing_canary() -> None:
    fixed, md, primary, deployments = canary_world(5)
    d = fixed.decide(md, parse_spec(md["spec"]), primary, deployments, NOW)
    assert fixed.querier_used.queries == ["vector(1)"]
    assert d.state.phase == Phase.ROLLED_BACK and d.weights == {"old": 100}
    assert d.state.held_revision == primary.revision and "check=5 above max 1" in d.state.message
    assert [(e.type, e.reason) for e in d.events] == [("Warning", "RolledBack")]


def test_decide_passes_and_advances_and_reads_the_action_annotation() -> None:
    fixed, md, primary, deployments = canary_world(1)
    spec = parse_spec(md["spec"])
    d = fixed.decide(md, spec, primary, deployments, NOW)
    assert d.state.step_index == 1 and d.weights == {"old": 50, primary.revision: 50}
    md["metadata"]["annotations"] = {"serving.modeldeploy.dev/action": "abort@x1"}
    aborted = fixed.decide(md, spec, primary, deployments, NOW)
    assert aborted.state.phase == Phase.ROLLED_BACK and aborted.state.last_action_id == "x1"
    # not due (the status says an analysis just ran): no query
    md["metadata"]["annotations"] = {}
    md["status"]["rollout"]["lastAnalysisAt"] = NOW.isoformat()
    fixed.querier_used.queries.clear()
    fixed.decide(md, spec, primary, deployments, NOW + timedelta(seconds=1))
    assert fixed.querier_used.queries == []


def test_status_reports_the_engine_phase_weight_and_state() -> None:
    md = md_with(CANARY)
    deps = {f"m-primary-{r}": live_dep(f"m-primary-{r}", r, 1) for r in ("r1", "r2")}
    progressing = RolloutState(phase=Phase.PROGRESSING, stableRevision="r1", canaryRevision="r2",
                               canaryWeight=20, message="step 1/2: canary weight 20%")
    revs = {"primary": VariantRevisions("primary", "r1", "r2", engine=True, engine_canary="r2")}
    s = compute(md, revs, deps, {"primary": 100}, None, False, "T", progressing, 20)
    assert (s["phase"], s["canaryRevision"], s["canaryWeight"]) == ("Progressing", "r2", 20)
    assert s["message"] == "step 1/2: canary weight 20%" and s["rollout"]["canaryWeight"] == 20
    assert condition_of(s, "Progressing")["status"] == "True"

    rolled = progressing.model_copy(update={
        "phase": Phase.ROLLED_BACK, "canary_revision": None, "canary_weight": 0, "held_revision": "r2",
        "message": "rolled back r2: check=5 above max 1"})
    revs = {"primary": VariantRevisions("primary", "r1", "r2", engine=True)}
    s = compute(md, revs, deps, {"primary": 100}, None, False, "T", rolled, 0)
    assert (s["phase"], s["canaryWeight"], s["message"]) == ("Degraded", 0, rolled.message)
    assert "canaryRevision" not in s and s["rollout"]["heldRevision"] == "r2"
    degraded = condition_of(s, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolledBack")
    assert condition_of(s, "Ready")["status"] == "True", "the stable revision still serves"
    assert (condition_of(s, "Progressing")["status"], condition_of(s, "Progressing")["reason"]) == (
        "False", "RolledBack")
