"""Rollouts across an operator restart, and manual control through the action annotation and the kubectl
plugin (`kubectl-modeldeploy`), against the real control plane, the operator process and Prometheus."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.cluster.conftest import OperatorProcess, canary_md, md_events, rollout_of, wait_rollout
from tests.conftest import REPO_ROOT, ClusterHandle, Kubectl

pytestmark = pytest.mark.cluster
PLUGIN = REPO_ROOT / ".venv" / "bin" / "kubectl-modeldeploy"
HELD_STEP = "[{setWeight: 30, pause: {}}, {setWeight: 60, pause: {duration: 2s}}]"
"""The first step is held until `resume` (or `promote`); analysis keeps running meanwhile."""


def plugin(cluster: ClusterHandle, ns: str, *args: str) -> str:
    result = subprocess.run([str(PLUGIN), "-n", ns, *args], capture_output=True, text=True, env=cluster.env,
                            timeout=60, check=False)
    assert result.returncode == 0, f"kubectl-modeldeploy {' '.join(args)}: {result.stderr}"
    return result.stdout


def action(kubectl: Kubectl, ns: str, name: str, value: str) -> None:
    kubectl("annotate", "md", name, "-n", ns, "--overwrite", f"serving.modeldeploy.dev/action={value}",
            check=True)


def start_canary(kubectl: Kubectl, ns: str, name: str, prometheus: str, op: OperatorProcess) -> str:
    """Deploy v1, change to v2, wait until the canary holds step 1 with a passed analysis; stable rev."""
    kubectl("apply", "-n", ns, "-f", "-", stdin=canary_md(name, prometheus, steps=HELD_STEP), check=True)
    first = wait_rollout(kubectl, ns, name, "Healthy", lambda s: s.get("phase") == "Healthy", op)
    version = json.dumps({"spec": {"model": {"version": "2"}}})
    kubectl("patch", "md", name, "-n", ns, "--type=merge", "-p", version, check=True)
    wait_rollout(kubectl, ns, name, "step 1 with a passed analysis",
                 lambda s: (s.get("rollout") or {}).get("lastOutcome") == "Pass"
                 and s["rollout"].get("analysisRuns", 0) >= 1 and s.get("canaryWeight") == 30, op)
    return str(first["stableRevision"])


def test_restart_mid_step_resumes_at_the_same_step_with_the_same_counters(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, prometheus: str
) -> None:
    stable = start_canary(kubectl, namespace, "rs", prometheus, running_operator)
    running_operator.stop()
    _, before = rollout_of(kubectl, namespace, "rs")
    time.sleep(3)  # longer than an interval: analyses are due when the operator is back
    running_operator.start()
    status = wait_rollout(kubectl, namespace, "rs", "an analysis after the restart",
                          lambda s: s["rollout"]["analysisRuns"] > before["analysisRuns"], running_operator)
    after = status["rollout"]
    for key in ("canaryRevision", "canaryStartedAt", "stepIndex", "stepStartedAt", "canaryWeight", "history"):
        assert after[key] == before[key], key
    assert after.get("failures", 0) == before.get("failures", 0) == 0
    assert after["analysisRuns"] == before["analysisRuns"] + 1, "one analysis per interval, none replayed"
    assert [t["kind"] for t in after["timeline"]].count("Started") == 1, "the canary was not restarted"
    assert status["phase"] == "Progressing" and status["stableRevision"] == stable
    assert status["canaryWeight"] == 30

    action(kubectl, namespace, "rs", "resume@r1")
    status = wait_rollout(kubectl, namespace, "rs", "promotion after resume",
                          lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != stable,
                          running_operator)
    assert [t["weight"] for t in status["rollout"]["timeline"] if t["kind"] == "Step"] == [30, 60]


def test_promote_through_the_annotation(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, prometheus: str
) -> None:
    stable = start_canary(kubectl, namespace, "pr", prometheus, running_operator)
    action(kubectl, namespace, "pr", "promote@p1")
    status = wait_rollout(kubectl, namespace, "pr", "promotion by request",
                          lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != stable,
                          running_operator)
    rollout = status["rollout"]
    assert rollout["history"][0]["reason"] == "promoted by request" and rollout["lastActionId"] == "p1"
    assert [t["weight"] for t in rollout["timeline"] if t["kind"] == "Step"] == [30], "step 2 was skipped"
    # the annotation stays on the object; its request id is never applied twice
    kubectl("annotate", "md", "pr", "-n", namespace, "example.com/touch=1", check=True)
    time.sleep(3)
    status, again = rollout_of(kubectl, namespace, "pr")
    assert again["history"] == rollout["history"] and status["phase"] == "Healthy"


def test_abort_pause_and_status_through_the_kubectl_plugin(
    kubectl: Kubectl, cluster: ClusterHandle, namespace: str, running_operator: OperatorProcess,
    prometheus: str,
) -> None:
    stable = start_canary(kubectl, namespace, "pl", prometheus, running_operator)
    plugin(cluster, namespace, "pause", "pl")
    wait_rollout(kubectl, namespace, "pl", "Paused", lambda s: s.get("phase") == "Paused", running_operator)
    out = plugin(cluster, namespace, "status", "pl")
    assert "Paused by request" in out and "Weights:  stable 70%  canary 30%" in out

    plugin(cluster, namespace, "abort", "pl")
    status = wait_rollout(kubectl, namespace, "pl", "the abort", lambda s: s.get("phase") == "Degraded",
                          running_operator)
    assert status["stableRevision"] == stable and status["canaryWeight"] == 0
    assert status["rollout"]["history"][0]["outcome"] == "Aborted"
    assert ("Warning", "Aborted") in [(t, r) for t, r, _ in md_events(kubectl, namespace, "pl")]

    out = plugin(cluster, namespace, "status", "pl")
    assert "Phase:    Degraded (rollout RolledBack)" in out and "Timeline:" in out
    timeline = out.split("Timeline:", 1)[1]
    for kind in ("Started", "Step", "Analysis Pass", "Paused", "RolledBack"):
        assert kind in timeline, f"{kind} missing from the timeline:\n{out}"
    history = plugin(cluster, namespace, "history", "pl")
    assert "Aborted" in history and f"{stable} (stable)" in history

    plugin(cluster, namespace, "retry", "pl")
    wait_rollout(kubectl, namespace, "pl", "the retried canary at step 1",
                 lambda s: s.get("phase") == "Progressing" and s.get("canaryWeight") == 30, running_operator)
