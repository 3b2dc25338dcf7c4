"""The progressive delivery engine inside the running operator, against the real control plane and a real
Prometheus: first deployment, a canary walking its steps with analysis, rollback on a failing check, and
Prometheus outages (errors count toward consecutiveErrorLimit, never as a pass or a failure)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from modeldeploy.reconciler import Reconciler
from tests.cluster.conftest import (
    OperatorProcess,
    canary_md,
    free_port,
    get_json,
    md_events,
    rollout_of,
    wait_for,
    wait_rollout,
    wait_routed,
)
from tests.conftest import Kubectl

pytestmark = pytest.mark.cluster


def patch_spec(kubectl: Kubectl, ns: str, name: str, spec: dict[str, Any]) -> None:
    kubectl("patch", "md", name, "-n", ns, "--type=merge", "-p", json.dumps({"spec": spec}), check=True)


def replicas(kubectl: Kubectl, ns: str, deployment: str) -> int:
    return int(get_json(kubectl, "deployment", deployment, "-n", ns)["spec"]["replicas"])


def healthy_first(kubectl: Kubectl, ns: str, name: str, op: OperatorProcess) -> dict[str, Any]:
    return wait_rollout(kubectl, ns, name, "Healthy and stable",
                        lambda s: s.get("phase") == "Healthy" and s.get("stableRevision"), op)


def test_first_deployment_goes_straight_to_stable(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, prometheus: str,
    reconciler: Reconciler,
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=canary_md("first", prometheus), check=True)
    status = healthy_first(kubectl, namespace, "first", running_operator)
    rollout = status["rollout"]
    rev = status["stableRevision"]
    assert rollout["phase"] == "Stable" and rollout["stableRevision"] == rev
    assert status["canaryWeight"] == 0 and "canaryRevision" not in status
    (entry,) = rollout["history"]
    assert (entry["revision"], entry["outcome"], entry["reason"]) == (rev, "Promoted", "first deployment")
    assert rollout.get("analysisRuns", 0) == 0, "a first deployment is not analysed"
    wait_routed(kubectl, namespace, "first", {f"primary-{rev}": 1}, running_operator)
    assert sum(reconciler.reconcile(namespace, "first").writes for _ in range(2)) == 0


def test_canary_walks_the_steps_with_passing_analysis_and_is_promoted(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, prometheus: str,
    reconciler: Reconciler,
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=canary_md("walk", prometheus), check=True)
    rev1 = healthy_first(kubectl, namespace, "walk", running_operator)["stableRevision"]
    patch_spec(kubectl, namespace, "walk", {"model": {"version": "2"}})

    seen: set[int] = set()

    def promoted(status: dict[str, Any]) -> bool:
        seen.add(int(status.get("canaryWeight", 0)))
        assert status.get("phase") != "Degraded", status.get("message")
        return bool(status.get("stableRevision") not in (None, rev1) and status.get("phase") == "Healthy")

    status = wait_rollout(kubectl, namespace, "walk", "the canary to be promoted", promoted, running_operator)
    rev2, rollout = status["stableRevision"], status["rollout"]
    assert {20, 50} <= seen, f"canaryWeight values seen: {sorted(seen)}"
    assert status["canaryWeight"] == 0 and "canaryRevision" not in status
    latest = rollout["history"][0]
    assert (latest["revision"], latest["outcome"]) == (rev2, "Promoted")
    assert latest["reason"] == "all 2 steps passed" and latest["model"] == "walk:2"
    steps = [(t["weight"], t["kind"]) for t in rollout["timeline"] if t["kind"] == "Step"]
    assert steps == [(20, "Step"), (50, "Step")]
    passes = [t for t in rollout["timeline"] if t["kind"] == "Analysis"]
    assert passes and all(t["outcome"] == "Pass" for t in passes)
    assert all(m["outcome"] == "Pass" for m in rollout["lastAnalysis"])
    wait_routed(kubectl, namespace, "walk", {f"primary-{rev2}": 1}, running_operator)
    reasons = [r for _, r, _ in md_events(kubectl, namespace, "walk")]
    assert {"RolloutStarted", "Step", "Promoted"} <= set(reasons)
    # the old revision is kept for `rollback`, scaled to zero after scaleDownDelaySeconds
    old = f"walk-primary-{rev1}"
    wait_for("the old revision to scale to zero", lambda: replicas(kubectl, namespace, old) == 0)
    assert sum(reconciler.reconcile(namespace, "walk").writes for _ in range(2)) == 0


def test_failing_check_rolls_back_and_stays_rolled_back_until_retry(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, prometheus: str,
    reconciler: Reconciler,
) -> None:
    extra = "    consecutiveFailureLimit: 0\n"
    manifest = canary_md("bad", prometheus, query="vector(5)", max_value=1, extra=extra)
    kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest, check=True)
    rev1 = healthy_first(kubectl, namespace, "bad", running_operator)["stableRevision"]
    patch_spec(kubectl, namespace, "bad", {"model": {"version": "2"}})

    status = wait_rollout(kubectl, namespace, "bad", "the rollback",
                          lambda s: s.get("phase") == "Degraded", running_operator)
    rollout = status["rollout"]
    assert status["canaryWeight"] == 0 and "canaryRevision" not in status
    assert status["stableRevision"] == rev1 and rollout["phase"] == "RolledBack"
    held = rollout["heldRevision"]
    assert held != rev1
    for part in ("check=5", "above max 1", "consecutiveFailureLimit 0"):
        assert part in status["message"], status["message"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolledBack")
    latest = rollout["history"][0]
    assert (latest["revision"], latest["outcome"]) == (held, "RolledBack") and "check=5" in latest["reason"]
    warnings = [(r, m) for t, r, m in md_events(kubectl, namespace, "bad") if t == "Warning"]
    assert [r for r, _ in warnings].count("RolledBack") == 1, warnings
    assert "check=5 above max 1" in next(m for r, m in warnings if r == "RolledBack")
    series = running_operator.metrics()
    labels = f'{{modeldeployment="bad",namespace="{namespace}"}}'
    assert series[f"modeldeploy_rollbacks_total{labels}"] == 1, "the RolledBack alert's series"
    assert series[f"modeldeploy_modeldeployment_ready{labels}"] in (0.0, 1.0)
    obj = get_json(kubectl, "md", "bad", "-n", namespace)
    assert obj["spec"]["model"]["version"] == "2", "the spec is never rewritten"
    assert not (obj["metadata"].get("annotations") or {}).get("serving.modeldeploy.dev/action")
    wait_routed(kubectl, namespace, "bad", {f"primary-{rev1}": 1}, running_operator)
    wait_for("the rolled-back revision to scale to zero",
             lambda: replicas(kubectl, namespace, f"bad-primary-{held}") == 0)

    # a resync (forced here by an unrelated metadata change) keeps it rolled back
    kubectl("annotate", "md", "bad", "-n", namespace, "example.com/touch=1", check=True)
    time.sleep(6)  # three analysis intervals
    status, again = rollout_of(kubectl, namespace, "bad")
    assert status["phase"] == "Degraded" and again["history"] == rollout["history"]
    assert status["stableRevision"] == rev1 and replicas(kubectl, namespace, f"bad-primary-{held}") == 0
    assert sum(reconciler.reconcile(namespace, "bad").writes for _ in range(2)) == 0

    # `retry` rolls the held revision out again, from the first step (and the check fails again)
    kubectl("annotate", "md", "bad", "-n", namespace, "--overwrite",
            "serving.modeldeploy.dev/action=retry@t1", check=True)
    status = wait_rollout(
        kubectl, namespace, "bad", "the retry to be rolled back again",
        lambda s: [h["outcome"] for h in s["rollout"]["history"]].count("RolledBack") == 2,
        running_operator,
    )
    assert status["phase"] == "Degraded" and status["rollout"]["lastActionId"] == "t1"
    assert any("retrying" in t["message"] for t in status["rollout"]["timeline"])


def test_prometheus_unreachable_neither_promotes_nor_rolls_back_until_the_error_limit(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, prometheus: str,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    extra = "    consecutiveErrorLimit: 100\n"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=canary_md("dark", nowhere, extra=extra), check=True)
    rev1 = healthy_first(kubectl, namespace, "dark", running_operator)["stableRevision"]
    patch_spec(kubectl, namespace, "dark", {"model": {"version": "2"}})

    status = wait_rollout(kubectl, namespace, "dark", "three analyses with provider errors",
                          lambda s: (s.get("rollout") or {}).get("consecutiveErrors", 0) >= 3,
                          running_operator)
    rollout = status["rollout"]
    # far longer than the steps' holds (2s each): errors are never a pass
    assert status["phase"] == "Progressing" and status["stableRevision"] == rev1
    assert (rollout["stepIndex"], rollout["canaryWeight"], status["canaryWeight"]) == (0, 20, 20)
    assert rollout["lastOutcome"] == "Error" and rollout.get("failures", 0) == 0
    assert "provider error Unreachable" in rollout["lastAnalysis"][0]["message"]
    assert len(rollout["history"]) == 1

    # Prometheus is back (the address is rollout config, not part of the revision): the canary proceeds
    patch_spec(kubectl, namespace, "dark", {"rollout": {"prometheus": {"address": prometheus}}})
    status = wait_rollout(kubectl, namespace, "dark", "promotion once Prometheus answers",
                          lambda s: s.get("stableRevision") != rev1 and s.get("phase") == "Healthy",
                          running_operator)
    assert status["rollout"]["history"][0]["outcome"] == "Promoted"


def test_prometheus_errors_beyond_the_limit_roll_back(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, prometheus: str,
) -> None:
    extra = "    consecutiveErrorLimit: 2\n"
    manifest = canary_md("flaky", prometheus, extra=extra)
    kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest, check=True)
    rev1 = healthy_first(kubectl, namespace, "flaky", running_operator)["stableRevision"]
    nowhere = f"http://127.0.0.1:{free_port()}"
    patch_spec(kubectl, namespace, "flaky",
               {"model": {"version": "2"}, "rollout": {"prometheus": {"address": nowhere}}})

    errors: set[int] = set()

    def rolled_back(status: dict[str, Any]) -> bool:
        rollout = status.get("rollout") or {}
        if rollout.get("phase") == "Progressing":
            errors.add(int(rollout.get("consecutiveErrors", 0)))
        return status.get("phase") == "Degraded"

    status = wait_rollout(kubectl, namespace, "flaky", "the rollback after 3 errors", rolled_back,
                          running_operator)
    assert {1, 2} <= errors, f"consecutiveErrors seen while progressing: {sorted(errors)}"
    assert status["stableRevision"] == rev1 and status["canaryWeight"] == 0
    assert "3 consecutive analyses with provider errors > consecutiveErrorLimit 2" in status["message"]
    assert status["rollout"]["history"][0]["outcome"] == "RolledBack"
