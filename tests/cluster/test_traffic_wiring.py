"""The traffic providers wired into the running operator: the default router's objects and table, the table
following the rollout engine (and a rollback reaching the table as soon as the status), provider switches
deleting the previous provider's objects, and zero writes once converged."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from mdserve.router.table import ROUTES_KEY, RouteTable
from modeldeploy.reconciler import Reconciler
from tests.cluster.conftest import (
    OperatorProcess,
    canary_md,
    get_json,
    route_weights,
    wait_for,
    wait_rollout,
    wait_routed,
)
from tests.conftest import Kubectl

pytestmark = pytest.mark.cluster
ROUTER_KINDS = ("serviceaccount", "role", "rolebinding", "deployment")


def md_yaml(name: str, traffic: str = "", variants: str = "") -> str:
    return f"""
apiVersion: serving.modeldeploy.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}}}
spec:
  model: {{name: {name}, format: sklearn, uri: "https://store.example/m/model.joblib"}}
  serving: {{replicas: 1}}
{variants}{traffic}"""


def exists(kubectl: Kubectl, ns: str, kind: str, name: str) -> bool:
    return kubectl("get", kind, name, "-n", ns).returncode == 0


def router_objects(kubectl: Kubectl, ns: str, name: str) -> dict[str, bool]:
    out = {kind: exists(kubectl, ns, kind, f"{name}-router") for kind in ROUTER_KINDS}
    out["configmap"] = exists(kubectl, ns, "configmap", f"{name}-routes")
    return out


def traffic_of(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    return dict((get_json(kubectl, "md", name, "-n", ns).get("status") or {}).get("traffic") or {})


def test_default_router_objects_table_and_zero_writes(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, reconciler: Reconciler
) -> None:
    variants = "  variants: [{name: b, weight: 30, replicas: 1}]\n"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("ab", variants=variants), check=True)
    status = wait_rollout(kubectl, namespace, "ab", "Healthy",
                          lambda s: s.get("phase") == "Healthy", running_operator)
    revs = {v["name"]: v["revision"] for v in status["variants"]}
    expected = {f"primary-{revs['primary']}": 7, f"b-{revs['b']}": 3}  # 70/30, gcd-reduced
    wait_routed(kubectl, namespace, "ab", expected, running_operator)
    assert all(router_objects(kubectl, namespace, "ab").values())

    md = get_json(kubectl, "md", "ab", "-n", namespace)
    cm = get_json(kubectl, "configmap", "ab-routes", "-n", namespace)
    table = RouteTable.model_validate_json(cm["data"][ROUTES_KEY])
    backends = {v.name: v.backend for v in table.variants}
    assert set(backends) == set(expected)
    assert f"ab-b-{revs['b']}" in backends[f"b-{revs['b']}"]
    for kind in ("serviceaccount", "role", "rolebinding", "configmap", "deployment"):
        name = "ab-routes" if kind == "configmap" else "ab-router"
        (owner,) = get_json(kubectl, kind, name, "-n", namespace)["metadata"]["ownerReferences"]
        assert owner["uid"] == md["metadata"]["uid"] and owner["controller"] is True
    dep = get_json(kubectl, "deployment", "ab-router", "-n", namespace)
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MDROUTE_CONFIGMAP"] == "ab-routes"

    def shown() -> bool:
        t = traffic_of(kubectl, namespace, "ab")
        got = {w["backend"]: w["percent"] for w in t.get("weights", [])}
        ok = got == {f"primary-{revs['primary']}": 70.0, f"b-{revs['b']}": 30.0}
        assert ok and t["provider"] == "router" and t.get("tableVersion") == table.version, t
        assert not t.get("message"), t
        return True

    wait_for("status.traffic to show the table in effect", shown)
    # the router Deployment is no revision: it is not counted among the model's pods
    assert get_json(kubectl, "md", "ab", "-n", namespace)["status"]["ready"] == "2/2"
    assert sum(reconciler.reconcile(namespace, "ab").writes for _ in range(2)) == 0


def canary_share(weights: dict[str, int], rev: str) -> float:
    """Percent of the primary's traffic on `primary-<rev>` in the table."""
    primary = {b: w for b, w in weights.items() if b.startswith("primary-")}
    total = sum(primary.values())
    return 100 * primary.get(f"primary-{rev}", 0) / total if total else 0.0


def test_table_follows_the_canary_and_a_rollback_zeroes_it_at_once(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, prometheus: str
) -> None:
    # the check passes while the canary walks (vector(1) <= 1.5), then a spec change makes it fail
    steps = "[{setWeight: 20, pause: {duration: 3s}}, {setWeight: 50, pause: {duration: 30s}}]"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=canary_md("cw", prometheus, steps=steps), check=True)
    first = wait_rollout(kubectl, namespace, "cw", "Healthy",
                         lambda s: s.get("phase") == "Healthy" and s.get("stableRevision"), running_operator)
    rev1 = first["stableRevision"]
    wait_routed(kubectl, namespace, "cw", {f"primary-{rev1}": 1}, running_operator)
    kubectl("patch", "md", "cw", "-n", namespace, "--type=merge", "-p",
            '{"spec":{"model":{"version":"2"}}}', check=True)

    seen: set[tuple[int, float]] = set()

    def at_50(status: dict[str, Any]) -> bool:
        canary = status.get("canaryRevision")
        if canary:
            weights = route_weights(kubectl, namespace, "cw")
            seen.add((int(status.get("canaryWeight", 0)), canary_share(weights, canary)))
        return bool(canary) and (50, 50.0) in seen

    status = wait_rollout(kubectl, namespace, "cw", "the table at the 50% step", at_50, running_operator)
    canary = status["canaryRevision"]
    assert any(c == 20 for c, _ in seen), f"(status, table) seen: {sorted(seen)}"
    # each table read (just after a status read) matched that status, or the next weight: the table is
    # written before the status in a pass, so it may be one step ahead, never behind nor elsewhere
    order = [0, 20, 50]
    for c, share in seen:
        assert c in order and share in (float(c), float(order[min(order.index(c) + 1, 2)])), sorted(seen)

    # a failing check now: the engine rolls back at its next analysis
    kubectl("patch", "md", "cw", "-n", namespace, "--type=merge", "-p",
            '{"spec":{"rollout":{"metrics":[{"name":"check","query":"vector(5)",'
            '"thresholdRange":{"max":1}}],"consecutiveFailureLimit":0}}}', check=True)
    wait_rollout(kubectl, namespace, "cw", "the rollback",
                 lambda s: s.get("phase") == "Degraded" and s.get("canaryWeight") == 0, running_operator,
                 timeout=60)
    shown_at = time.monotonic()
    weights = wait_for("the table to drop the canary",
                       lambda: (w := route_weights(kubectl, namespace, "cw")) and
                       canary_share(w, canary) == 0 and w, timeout=5, interval=0.1)
    assert time.monotonic() - shown_at < 1.5, "the table is written in the pass that writes the status"
    assert canary_share(weights, rev1) == 100.0


def test_switching_providers_deletes_the_previous_objects(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, gateway_crds: Path,
    reconciler: Reconciler,
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("sw"), check=True)
    status = wait_rollout(kubectl, namespace, "sw", "Healthy",
                          lambda s: s.get("phase") == "Healthy", running_operator)
    rev = status["stableRevision"]
    wait_routed(kubectl, namespace, "sw", {f"primary-{rev}": 1}, running_operator)

    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("sw", "  traffic: {provider: none}\n"),
            check=True)
    wait_for("the router's objects to be deleted",
             lambda: not any(router_objects(kubectl, namespace, "sw").values()), timeout=60)
    wait_for("status.traffic.provider none",
             lambda: traffic_of(kubectl, namespace, "sw")["provider"] == "none")
    selector = get_json(kubectl, "service", "sw", "-n", namespace)["spec"]["selector"]
    assert selector["app.kubernetes.io/component"] == "model-server"
    assert "serving.modeldeploy.dev/revision" not in selector, "provider none: every model server pod"

    gateway = "  traffic: {provider: gateway-api, gateway: {parentRefs: [{name: gw}]}}\n"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("sw", gateway), check=True)
    wait_for("the HTTPRoute", lambda: exists(kubectl, namespace, "httproute", "sw"), timeout=60)
    wait_for("status.traffic.provider gateway-api",
             lambda: traffic_of(kubectl, namespace, "sw")["provider"] == "gateway-api")
    route = get_json(kubectl, "httproute", "sw", "-n", namespace)
    refs = [r["name"] for rule in route["spec"]["rules"] for r in rule.get("backendRefs", [])]
    assert f"sw-primary-{rev}" in refs
    assert get_json(kubectl, "service", "sw", "-n", namespace)["spec"]["selector"][
        "serving.modeldeploy.dev/revision"] == rev, "the core's stable Service again"
    assert not any(router_objects(kubectl, namespace, "sw").values())
    assert sum(reconciler.reconcile(namespace, "sw").writes for _ in range(2)) == 0

    # and back to the router: the HTTPRoute goes
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md_yaml("sw"), check=True)
    wait_for("the HTTPRoute to be deleted", lambda: not exists(kubectl, namespace, "httproute", "sw"),
             timeout=60)
    wait_routed(kubectl, namespace, "sw", {f"primary-{rev}": 1}, running_operator)
    assert traffic_of(kubectl, namespace, "sw")["provider"] == "router"

