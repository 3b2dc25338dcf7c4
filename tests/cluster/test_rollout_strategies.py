"""Rolling and BlueGreen through the engine inside the running operator, against the real control plane and
Prometheus: Rolling records history and is rolled back with the kubectl plugin; BlueGreen switches all traffic
at once, holds the previous revision at full size during its analysis, and switches back when it fails."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.reconciler import Reconciler
from tests.cluster.conftest import (
    OperatorProcess,
    get_json,
    md_manifest,
    wait_for,
    wait_rollout,
    wait_routed,
)
from tests.cluster.test_rollout_canary import healthy_first, patch_spec, replicas
from tests.cluster.test_rollout_manual import plugin
from tests.conftest import ClusterHandle, Kubectl

pytestmark = pytest.mark.cluster


def blue_green(name: str, prometheus: str, max_value: float) -> str:
    """BlueGreen held 6s on all traffic, one custom check `vector(1) <= max_value`; one failure rolls back."""
    return md_manifest(name, f"""    strategy: BlueGreen
    interval: 6s
    scaleDownDelaySeconds: 2
    consecutiveFailureLimit: 0
    prometheus: {{address: "{prometheus}", timeoutSeconds: 2}}
    metrics: [{{name: check, query: "vector(1)", thresholdRange: {{max: {max_value}}}}}]
""")


def scaled_down(kubectl: Kubectl, ns: str, name: str, revision: str) -> bool:
    """The revision's Deployment is at zero and the operator has recorded it (the scale and the status
    are two writes of one pass: a pass in between would still have the scale-down to record)."""
    status = get_json(kubectl, "md", name, "-n", ns)["status"]
    pending = [d["revision"] for d in status["rollout"].get("scaleDowns", [])]
    return replicas(kubectl, ns, f"{name}-primary-{revision}") == 0 and revision not in pending


def history(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(h["revision"], h["outcome"], h["reason"]) for h in status["rollout"]["history"]]


def test_rolling_records_history_and_is_rolled_back_with_the_plugin(
    kubectl: Kubectl, cluster: ClusterHandle, namespace: str, running_operator: OperatorProcess,
    reconciler: Reconciler,
) -> None:
    manifest = md_manifest("rl", "    strategy: Rolling\n    scaleDownDelaySeconds: 2\n")
    kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest, check=True)
    rev1 = healthy_first(kubectl, namespace, "rl", running_operator)["stableRevision"]
    patch_spec(kubectl, namespace, "rl", {"model": {"version": "2"}})
    status = wait_rollout(kubectl, namespace, "rl", "the new revision promoted when Ready",
                          lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != rev1,
                          running_operator)
    rev2 = status["stableRevision"]
    assert history(status) == [(rev2, "Promoted", "Ready"), (rev1, "Promoted", "first deployment")]
    kinds = [t["kind"] for t in status["rollout"]["timeline"]]
    assert kinds[-2:] == ["Started", "Promoted"] and "Step" not in kinds, "no steps, no analysis"
    wait_routed(kubectl, namespace, "rl", {f"primary-{rev2}": 1}, running_operator)
    wait_for("the old revision at zero, kept",
             lambda: replicas(kubectl, namespace, f"rl-primary-{rev1}") == 0)
    rows = plugin(cluster, namespace, "history", "rl").splitlines()
    assert rows[1].split()[:4] == [rev2, "(stable)", "rl:2", "Promoted"]
    assert rows[2].split()[:3] == [rev1, "rl:1", "Promoted"], "the rollback target"

    plugin(cluster, namespace, "rollback", "rl", rev1)
    status = wait_rollout(kubectl, namespace, "rl", "the rollback to the first revision",
                          lambda s: s.get("stableRevision") == rev1, running_operator)
    assert history(status)[0] == (rev1, "Promoted", "manual rollback")
    assert status["phase"] == "Degraded" and status["rollout"]["heldRevision"] == rev2
    assert f"spec's revision {rev2} is held" in status["message"]
    wait_routed(kubectl, namespace, "rl", {f"primary-{rev1}": 1}, running_operator)
    assert replicas(kubectl, namespace, f"rl-primary-{rev1}") == 1
    wait_for("the held revision at zero", lambda: scaled_down(kubectl, namespace, "rl", rev2))
    out = plugin(cluster, namespace, "status", "rl")
    assert f"Held:     {rev2}" in out, out
    assert sum(reconciler.reconcile(namespace, "rl").writes for _ in range(2)) == 0


def test_blue_green_switches_zero_to_all_traffic_then_promotes(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, prometheus: str,
    reconciler: Reconciler,
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=blue_green("bg", prometheus, 1.5), check=True)
    rev1 = healthy_first(kubectl, namespace, "bg", running_operator)["stableRevision"]
    patch_spec(kubectl, namespace, "bg", {"model": {"version": "2"}})
    status = wait_rollout(kubectl, namespace, "bg", "all traffic on the new revision",
                          lambda s: s.get("canaryWeight") == 100, running_operator)
    rev2 = status["canaryRevision"]
    assert status["phase"] == "Progressing" and status["stableRevision"] == rev1
    wait_routed(kubectl, namespace, "bg", {f"primary-{rev2}": 1}, running_operator)
    # During the hold the previous revision keeps its pods: a rollback is only a weight change.
    assert replicas(kubectl, namespace, f"bg-primary-{rev1}") == 1
    assert replicas(kubectl, namespace, f"bg-primary-{rev2}") == 1

    status = wait_rollout(kubectl, namespace, "bg", "promotion after a passing analysis",
                          lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == rev2,
                          running_operator)
    assert history(status)[0] == (rev2, "Promoted", "held 6s on all traffic with a passing analysis")
    timeline = [(t["kind"], t["weight"], t.get("outcome")) for t in status["rollout"]["timeline"]]
    started = timeline.index(("Started", 0, None))
    assert [t for t in timeline[started:] if t[0] != "Analysis"] == [
        ("Started", 0, None), ("Step", 100, None), ("Promoted", 0, None),
    ], "0% until Ready, then one switch to 100%"
    assert ("Analysis", 100, "Pass") in timeline[started:]
    wait_for("the old revision at zero after the delay", lambda: scaled_down(kubectl, namespace, "bg", rev1))
    assert sum(reconciler.reconcile(namespace, "bg").writes for _ in range(2)) == 0


def test_blue_green_failed_analysis_switches_back_to_the_full_size_old_revision(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, prometheus: str,
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=blue_green("bgf", prometheus, 0.5), check=True)
    rev1 = healthy_first(kubectl, namespace, "bgf", running_operator)["stableRevision"]
    patch_spec(kubectl, namespace, "bgf", {"model": {"version": "2"}})
    wait_rollout(kubectl, namespace, "bgf", "all traffic on the new revision",
                 lambda s: s.get("canaryWeight") == 100, running_operator)
    old_pods: list[int] = []

    def rolled_back(status: dict[str, Any]) -> bool:
        old_pods.append(replicas(kubectl, namespace, f"bgf-primary-{rev1}"))
        return status.get("phase") == "Degraded"

    status = wait_rollout(kubectl, namespace, "bgf", "the switch back", rolled_back, running_operator)
    assert set(old_pods) == {1}, "the stable revision kept its pods throughout"
    assert status["stableRevision"] == rev1 and status["canaryWeight"] == 0
    held = status["rollout"]["heldRevision"]
    assert history(status)[0][:2] == (held, "RolledBack") and "check=1 above max 0.5" in status["message"]
    wait_routed(kubectl, namespace, "bgf", {f"primary-{rev1}": 1}, running_operator)
    wait_for("the rolled-back revision at zero",
             lambda: replicas(kubectl, namespace, f"bgf-primary-{held}") == 0)
    obj = get_json(kubectl, "md", "bgf", "-n", namespace)
    assert obj["spec"]["model"]["version"] == "2", "the spec is never rewritten"
