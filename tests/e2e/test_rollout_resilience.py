"""A rollout survives its surroundings failing: Prometheus stopped mid-analysis holds the canary where it is
(neither promoted nor rolled back) until it is back; the operator killed mid-step resumes at that step with
its counters, and traffic keeps flowing at the step's weight meanwhile. Each test has its own
ModelDeployment (v1, then a good v3) and deletes it at the end."""

from __future__ import annotations

import time

import pytest

from devcluster.e2e_models import ModelArtifact
from devcluster.e2e_rollout import canary_percent, canary_rollout, parse_time
from devcluster.e2e_stack import Stack
from tests.e2e.conftest import diagnostics
from tests.e2e.scenario import backend, deploy_first, finish, start_rollout

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.md_name("iris-prom")
def test_prometheus_outage_holds_the_rollout(stack: Stack, models: dict[str, ModelArtifact],
                                             md_name: str) -> None:
    # Defaults for the limits: consecutiveErrorLimit 4 tolerates 4 analyses in a row without Prometheus.
    rollout = canary_rollout(weights=(20, 50), hold="10s")
    v1 = deploy_first(stack, md_name, models["v1"], rollout)
    r = start_rollout(stack, md_name, v1, models["v3"], rollout)
    try:
        v3 = r.wait_canary()
        stack.wait(lambda: stack.rollout(md_name).get("stepStartedAt"), 180, "step 1 to start")
        stack.stop_prometheus()
        stopped_at = time.time()
        # Long enough for the step's hold (10 s) to pass and for two analyses (interval 5 s) to fail to run.
        held = stack.wait(lambda: (s := stack.rollout(md_name)).get("consecutiveErrors", 0) >= 2 and s,
                          90, "two analyses with a Prometheus error")
        during = stack.status(md_name)
        weights_during = stack.router_weights(md_name) or {}
        stack.start_prometheus()
        restarted_at = time.time()
        final = r.wait_phase("Stable")
    finally:
        finish(r)
    diag = diagnostics(stack, md_name)
    assert held["stepIndex"] == 0 and held["canaryWeight"] == 20, diag
    assert held["lastOutcome"] == "Error" and held["phase"] == "Progressing", diag
    assert held.get("failures", 0) == 0, "a Prometheus outage counted as a failed analysis"
    assert time.time() - stopped_at > 10 and parse_time(held["stepStartedAt"]) + 10 < restarted_at, \
        "the hold did not pass during the outage: the test proves nothing"
    assert during["phase"] == "Progressing" and during["stableRevision"] == v1, diag
    assert round(canary_percent(weights_during, backend(v3))) == 20, weights_during
    outage = [e for e in r.watcher.entries if stopped_at <= parse_time(e["at"]) <= restarted_at]
    assert not [e for e in outage if e["kind"] in ("Step", "Promoted", "RolledBack")], outage
    assert [e for e in outage if e["kind"] == "Analysis" and e.get("outcome") == "Error"], outage
    # Once Prometheus is back the rollout goes on to the promotion.
    assert final["stableRevision"] == v3 and final["history"][0]["outcome"] == "Promoted", diag
    failed = r.load.failures(r.applied_at)
    assert not failed, f"{len(failed)} requests failed: {failed[:5]}"
    after = [e["weight"] for e in r.watcher.entries
             if e["kind"] == "Step" and parse_time(e["at"]) > restarted_at]
    assert after == [50], f"steps after the outage: {after}\n{diag}"


@pytest.mark.md_name("iris-kill")
def test_operator_killed_mid_step_resumes(stack: Stack, models: dict[str, ModelArtifact],
                                          md_name: str) -> None:
    rollout = canary_rollout(weights=(20, 50), hold="15s")
    v1 = deploy_first(stack, md_name, models["v1"], rollout)
    r = start_rollout(stack, md_name, v1, models["v3"], rollout)
    try:
        v3 = r.wait_canary()
        before = stack.wait(lambda: (s := stack.rollout(md_name)).get("stepIndex") == 1
                            and s.get("stepStartedAt") and s, 180, "step 2 to start")
        stack.wait(lambda: round(canary_percent(stack.router_weights(md_name) or {}, backend(v3))) == 50,
                   30, "the router at 50%")
        stack.kill_operator()
        killed_at = time.time()
        time.sleep(8)  # the operator is gone; traffic must keep flowing at the step's weight
        down = r.load.snapshot(killed_at)
        weights_down = stack.router_weights(md_name) or {}
        stack.start_operator()
        final = r.wait_phase("Stable")
    finally:
        finish(r)
    diag = diagnostics(stack, md_name)
    assert round(canary_percent(weights_down, backend(v3))) == 50, weights_down
    assert down and all(a.code == 200 for a in down), [a for a in down if a.code != 200][:5]
    assert {a.variant for a in down} == {backend(v1), backend(v3)}, {a.variant for a in down}
    assert final["stableRevision"] == v3 and final["history"][0]["revision"] == v3, diag
    assert final["history"][0]["startedAt"] == before["canaryStartedAt"], "the canary was started again"
    restarted = [e for e in r.watcher.entries if parse_time(e["at"]) > killed_at]
    kinds = [e["kind"] for e in restarted]
    assert "Started" not in kinds and [e["weight"] for e in restarted if e["kind"] == "Step"] == [], \
        f"the rollout went back to an earlier step after the restart: {kinds}\n{diag}"
    assert "Promoted" in kinds, diag
    failed = r.load.failures(r.applied_at)
    assert not failed, f"{len(failed)} requests failed: {failed[:5]}"
