"""A spec change in the middle of a canary, inside the running operator against the real control plane: the
in-flight canary loses its traffic at once, is scaled down once and never back up, and the new canary starts
its analysis from the first step with fresh counters (the Flagger/Argo Rollouts bugs the issue names)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from modeldeploy.reconciler import Reconciler
from tests.cluster.conftest import (
    OperatorProcess,
    canary_md,
    md_events,
    route_weights,
    wait_for,
    wait_rollout,
    wait_routed,
)
from tests.conftest import Kubectl

pytestmark = pytest.mark.cluster

# Step 1 waits for `resume`, so the first canary is reliably caught mid-rollout at 20%.
STEPS = "[{setWeight: 20, pause: {}}, {setWeight: 50, pause: {duration: 2s}}]"


class ReplicaRecorder:
    """Samples a Deployment's spec.replicas in the background (0 once it is deleted): a scale-up between two
    polls of the test would otherwise go unseen."""

    def __init__(self, kubectl: Kubectl, ns: str, name: str) -> None:
        self.kubectl, self.ns, self.name = kubectl, ns, name
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            result = self.kubectl("get", "deployment", self.name, "-n", self.ns, "-o", "json")
            if result.returncode == 0:
                self.samples.append(int(json.loads(result.stdout)["spec"]["replicas"]))
            elif "NotFound" in result.stderr:
                self.samples.append(0)

    def __enter__(self) -> ReplicaRecorder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def set_version(kubectl: Kubectl, ns: str, version: str) -> None:
    patch = json.dumps({"spec": {"model": {"version": version}}})
    kubectl("patch", "md", "mid", "-n", ns, "--type=merge", "-p", patch, check=True)


def canary_at(kubectl: Kubectl, ns: str, name: str, weight: int, not_revisions: set[str],
              op: OperatorProcess) -> dict[str, Any]:
    def check(s: dict[str, Any]) -> bool:
        assert s.get("phase") != "Degraded", s.get("message")
        return s.get("canaryRevision") not in {None, *not_revisions} and s.get("canaryWeight") == weight

    return wait_rollout(kubectl, ns, name, f"a canary other than {not_revisions} at {weight}%", check, op)


def test_spec_change_mid_rollout_restarts_cleanly(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, prometheus: str,
    reconciler: Reconciler,
) -> None:
    op, ns = running_operator, namespace
    kubectl("apply", "-n", ns, "-f", "-", stdin=canary_md("mid", prometheus, steps=STEPS), check=True)
    healthy = wait_rollout(kubectl, ns, "mid", "Healthy and stable",
                           lambda s: s.get("phase") == "Healthy" and s.get("stableRevision"), op)
    stable = healthy["stableRevision"]

    set_version(kubectl, ns, "2")
    first = canary_at(kubectl, ns, "mid", 20, {stable}, op)["canaryRevision"]
    wait_rollout(kubectl, ns, "mid", "three analyses of the first canary",
                 lambda s: s["rollout"].get("analysisRuns", 0) >= 3, op)
    wait_routed(kubectl, ns, "mid", {f"primary-{stable}": 4, f"primary-{first}": 1}, op)  # gcd-reduced

    old = f"mid-primary-{first}"
    with ReplicaRecorder(kubectl, ns, old) as recorder:
        set_version(kubectl, ns, "3")
        status = canary_at(kubectl, ns, "mid", 20, {stable, first}, op)
        second = status["canaryRevision"]
        # The superseded canary's traffic is gone from the very table that gives the new one its first step.
        weights = route_weights(kubectl, ns, "mid")
        assert weights.get(f"primary-{first}", 0) == 0, weights
        assert weights[f"primary-{second}"] == 1 and weights[f"primary-{stable}"] == 4, weights

        rollout = status["rollout"]
        assert rollout["stepIndex"] == 0, "the new canary starts at the first step"
        assert rollout.get("failures", 0) == 0 and rollout.get("consecutiveFailures", 0) == 0
        assert rollout.get("analysisRuns", 0) <= 1, "the first canary's analysis count is carried over"
        latest = rollout["history"][0]
        assert (latest["revision"], latest["outcome"]) == (first, "Superseded"), rollout["history"]
        assert "Superseded" in {r for _, r, _ in md_events(kubectl, ns, "mid")}

        # scaled to zero (or deleted: a superseded revision is no rollback target) after
        # scaleDownDelaySeconds (2 s), then never scaled up again while the new canary is analysed, resumed
        # and promoted
        wait_for(f"{old} to scale to zero", lambda: recorder.samples and recorder.samples[-1] == 0,
                 timeout=60)
        kubectl("annotate", "md", "mid", "-n", ns, "serving.modeldeploy.dev/action=resume@r1", check=True)
        wait_rollout(kubectl, ns, "mid", f"{second} promoted",
                     lambda s: s.get("stableRevision") == second and s.get("phase") == "Healthy", op)
        wait_routed(kubectl, ns, "mid", {f"primary-{second}": 1}, op)

    after_zero = recorder.samples[recorder.samples.index(0):]
    assert after_zero and set(after_zero) == {0}, f"{old} scaled back up: {recorder.samples}"
    assert sum(reconciler.reconcile(ns, "mid").writes for _ in range(2)) == 0
