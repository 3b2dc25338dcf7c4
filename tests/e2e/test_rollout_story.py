"""The rollout story on one ModelDeployment, in order: v1 deploys; a v2 with a high error rate is rolled back
automatically; a v2' that answers fast but wrongly (visible only through feedback) is rolled back; a good v3
is promoted step by step without a failed request. Each test starts from the previous one's end state (v1
stable) and checks it first, so a failure names the scenario that broke."""

from __future__ import annotations

import time
from typing import Any

import pytest

from devcluster.e2e_models import ModelArtifact
from devcluster.e2e_rollout import canary_rollout
from devcluster.e2e_stack import Stack
from tests.e2e.conftest import diagnostics
from tests.e2e.scenario import (
    assert_no_traffic_after,
    backend,
    deploy_first,
    events_named,
    finish,
    start_rollout,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "iris"
ROLLOUT = canary_rollout()  # interval 5s; steps 20%, 50% held 10s; error-rate <= 0.05, accuracy >= 0.8


@pytest.fixture(scope="module")
def story() -> dict[str, str]:
    return {}


def _stable_is_v1(stack: Stack, story: dict[str, str]) -> str:
    if "v1" not in story:
        pytest.fail("v1 was not deployed (test_v1_deploys failed)")
    status = stack.status(NAME)
    assert status.get("stableRevision") == story["v1"], diagnostics(stack, NAME)
    return story["v1"]


def test_v1_deploys(stack: Stack, models: dict[str, ModelArtifact], story: dict[str, str]) -> None:
    v1 = deploy_first(stack, NAME, models["v1"], ROLLOUT)
    story["v1"] = v1
    status = stack.status(NAME)
    assert status["phase"] == "Healthy" and status["rollout"]["phase"] == "Stable"
    assert status.get("canaryWeight", 0) == 0
    assert any(e["type"] == "Normal" for e in events_named(stack, NAME, "Promoted")), stack.events(NAME)
    if stack.has_router(NAME):
        weights = stack.router_weights(NAME) or {}
        assert {k for k, w in weights.items() if w > 0} == {backend(v1)}, weights


def _rolled_back(stack: Stack, models: dict[str, ModelArtifact], story: dict[str, str], model: str,
                 metric: str) -> dict[str, Any]:
    """Roll out `model` under load and wait for the automatic rollback; the common assertions."""
    v1 = _stable_is_v1(stack, story)
    r = start_rollout(stack, NAME, v1, models[model], ROLLOUT)
    try:
        canary = r.wait_canary()
        state = r.wait_phase("RolledBack")
        zero_at = r.wait_router_weight_zero(canary)
        time.sleep(1.0)  # requests already sent to the canary when the table changed may still answer
        assert_no_traffic_after(r, canary, zero_at + 1.0)
        late_failures = r.load.failures(zero_at + 1.0)
    finally:
        finish(r)
    status = stack.status(NAME)
    diag = diagnostics(stack, NAME)
    served = [a for a in r.load.snapshot() if a.variant == backend(canary)]
    assert served, f"the canary {canary} never got traffic, nothing was tested\n{diag}"
    assert status["phase"] == "Degraded", diag
    assert status["stableRevision"] == v1 and state["stableRevision"] == v1, diag
    assert state.get("heldRevision") == canary and state.get("canaryWeight", 0) == 0, diag
    failed = [m for m in state.get("lastAnalysis", []) if m["outcome"] == "Fail"]
    assert [m["name"] for m in failed] == [metric], diag
    history = state["history"][0]
    assert history["revision"] == canary and history["outcome"] == "RolledBack", diag
    assert metric in history["reason"], diag
    warnings = [e for e in events_named(stack, NAME, "RolledBack") if e["type"] == "Warning"]
    assert any(metric in e["message"] and canary in e["message"] for e in warnings), diag
    assert not late_failures, f"requests failed after the rollback: {late_failures[:5]}"
    story["held"] = canary
    return {"state": state, "served": served, "metric": failed[0], "load": r.load, "canary": canary}


def test_v2_high_error_rate_is_rolled_back(stack: Stack, models: dict[str, ModelArtifact],
                                           story: dict[str, str]) -> None:
    out = _rolled_back(stack, models, story, "v2", "error-rate")
    codes = {a.code for a in out["served"]}
    assert 500 in codes, f"the faulty canary answered {codes}"
    assert out["metric"]["value"] > out["metric"]["max"], out["metric"]
    assert "0.05" in out["metric"].get("message", ""), out["metric"]  # names the threshold


def test_v2_wrong_answers_are_rolled_back(stack: Stack, models: dict[str, ModelArtifact],
                                         story: dict[str, str]) -> None:
    out = _rolled_back(stack, models, story, "v2w", "accuracy")
    # The bridge makes a pod Ready only once its process answers the readiness probe, as a kubelet does:
    # every non-200 answer is a failure, also while the canary starts.
    failed = out["load"].failures()
    assert not failed, f"the wrong model must answer every request: {failed[:5]}"
    print(f"\n[e2e] v2w: {len(out['served'])} answers from the canary, none failed")
    error_rate = next(m for m in out["state"]["lastAnalysis"] if m["name"] == "error-rate")
    assert error_rate["outcome"] == "Pass", error_rate
    assert out["metric"]["value"] < out["metric"]["min"], out["metric"]
    # Feedback went through the router like a client's, which returned each row to the variant that served
    # it. Only rows of the rolled-back canary may miss: their feedback can arrive after it left the table.
    fb = out["load"].feedback
    assert fb.scored > 0 and set(fb.failed_by_variant) <= {backend(out["canary"])}, fb


def test_v3_is_promoted_step_by_step(stack: Stack, models: dict[str, ModelArtifact],
                                     story: dict[str, str]) -> None:
    v1 = _stable_is_v1(stack, story)
    r = start_rollout(stack, NAME, v1, models["v3"], ROLLOUT)
    try:
        v3 = r.wait_canary()
        state = r.wait_phase("Stable")
        zero_at = r.wait_router_weight_zero(v1)
        time.sleep(1.0)
        promoted_failures = r.load.failures(r.applied_at)
        assert_no_traffic_after(r, v1, zero_at + 1.0)
    finally:
        finish(r)
    diag = diagnostics(stack, NAME)
    status = stack.status(NAME)
    assert status["phase"] == "Healthy" and status["stableRevision"] == v3, diag
    assert not promoted_failures, f"{len(promoted_failures)} requests failed during the promotion: " \
                                  f"{promoted_failures[:5]}\n{diag}"
    # Step by step: 20%, then 50%, each after a passing analysis, then the promotion.
    timeline = [e for e in r.watcher.entries if e["kind"] in ("Step", "Analysis", "Promoted")]
    steps = [e["weight"] for e in timeline if e["kind"] == "Step"]
    assert steps == [20, 50], f"steps {steps}\n{diag}"
    kinds = [(e["kind"], e.get("outcome")) for e in timeline]
    step2 = kinds.index(("Step", None), kinds.index(("Step", None)) + 1)
    assert ("Analysis", "Pass") in kinds[:step2], kinds
    assert ("Analysis", "Pass") in kinds[step2:kinds.index(("Promoted", None))], kinds
    percents = r.canary_percents()
    shares = [round(p) for p in percents]
    assert 20 in shares and 50 in shares and shares[-1] == 100, f"router shares of v3: {shares}"
    assert shares == sorted(shares), f"the router's share of v3 went down during the promotion: {shares}"
    assert state["history"][0]["revision"] == v3 and state["history"][0]["outcome"] == "Promoted", diag
    outcomes = {h["revision"]: h["outcome"] for h in state["history"]}
    assert outcomes.get(story.get("held", "")) == "RolledBack", outcomes
    assert any(v3 in e["message"] for e in events_named(stack, NAME, "Promoted")), stack.events(NAME)
    print(f"\n[e2e] v3 promoted: {len(r.load.snapshot(r.applied_at))} requests, 0 failed; "
          f"{r.load.refused(r.applied_at)} refused connections retried; router shares of v3 {shares}")
    served = {a.variant for a in r.load.snapshot(r.applied_at)}
    assert backend(v3) in served and backend(v1) in served, served
