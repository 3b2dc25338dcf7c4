"""The chart's RBAC grants exactly what the operator's code uses (derived in chart.py), nothing with `*`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.helm.chart import (
    CLIENT_VERBS,
    KOPF_NAMESPACES,
    KOPF_SCANNING,
    PLANNED,
    ROUTER_GRANT,
    VALUES,
    Access,
    accesses_for_call,
    documents,
    required_namespaced,
    rule_accesses,
    scan_client_calls,
    template,
)

pytestmark = pytest.mark.unit


def render(name: str, *sets: str) -> list[dict[str, Any]]:
    return documents(template([VALUES / f"{name}.yaml"], sets=sets).stdout)


def named(docs: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in docs
        if d["kind"] == kind and d["metadata"]["name"] == name and d["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, f"expected one {kind} {namespace}/{name}, found {len(found)}"
    return found[0]


def fmt(accesses: set[Access]) -> str:
    return ", ".join(str(a) for a in sorted(accesses))


def test_client_verbs_are_all_mapped() -> None:
    """A new KubeClient verb (or changed HTTP method) fails here until chart.py and the chart are updated."""
    calls = scan_client_calls()
    assert {c.verb for c in calls} == set(CLIENT_VERBS), "KubeClient verbs changed: update CLIENT_VERBS"
    for c in calls:
        method, sub, _ = CLIENT_VERBS[c.verb]
        assert (c.method, c.subresource) == (method, sub), f"{c} no longer matches CLIENT_VERBS"


def test_derivation_is_not_empty() -> None:
    required = required_namespaced()
    assert Access("serving.modeldeploy.dev", "modeldeployments/status", "patch") in required
    assert Access("apps", "deployments", "create") in required
    assert Access("", "events", "create") in required
    assert accesses_for_call("apply", "Deployment") == {
        Access("apps", "deployments", "create"),
        Access("apps", "deployments", "patch"),
    }


def check_operator_rules(rules: list[dict[str, Any]], allowed_extra: set[Access]) -> None:
    granted = rule_accesses(rules)
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {rule}"
    missing = required_namespaced() - granted
    assert not missing, f"the chart misses rules the operator's code needs: {fmt(missing)}"
    extra = granted - required_namespaced() - allowed_extra
    assert not extra, f"the chart grants more than the operator uses: {fmt(extra)}"
    # Never the spec: the operator only patches the status subresource of its ModelDeployments.
    for verb in ("create", "update", "patch", "delete"):
        assert Access("serving.modeldeploy.dev", "modeldeployments", verb) not in granted
    assert not {a for a in granted if a.resource in ("secrets", "pods", "nodes")}


def test_cluster_wide_role() -> None:
    docs = render("default")
    role = named(docs, "ClusterRole", "modeldeploy")
    check_operator_rules(role["rules"], PLANNED | ROUTER_GRANT | KOPF_SCANNING)
    assert rule_accesses(role["rules"]) >= KOPF_SCANNING
    binding = named(docs, "ClusterRoleBinding", "modeldeploy")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "modeldeploy",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "modeldeploy", "namespace": "modeldeploy-system"}
    ]
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding")]


def test_namespaced_roles() -> None:
    docs = render("namespaced")
    assert not [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "modeldeploy"]
    for ns in ("team-a", "team-b"):
        role = named(docs, "Role", "modeldeploy", ns)
        check_operator_rules(role["rules"], PLANNED | ROUTER_GRANT)
        binding = named(docs, "RoleBinding", "modeldeploy", ns)
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == "modeldeploy-system"
    scan = named(docs, "ClusterRole", "modeldeploy-scan")
    assert rule_accesses(scan["rules"]) == KOPF_SCANNING | KOPF_NAMESPACES
    assert named(docs, "ClusterRoleBinding", "modeldeploy-scan")["roleRef"]["name"] == "modeldeploy-scan"


def test_prometheus_secret_is_the_only_secret() -> None:
    docs = render("namespaced")
    role = named(docs, "Role", "modeldeploy-prometheus-auth", "monitoring")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["prometheus-token"], "verbs": ["get"]}
    ]
    assert named(docs, "RoleBinding", "modeldeploy-prometheus-auth", "monitoring")["subjects"][0]["name"] == (
        "modeldeploy"
    )
    assert not [d for d in render("default") if d["metadata"]["name"].endswith("-prometheus-auth")]


def test_router_role_is_minimal() -> None:
    docs = render("default")
    role = named(docs, "ClusterRole", "modeldeploy-router")
    assert rule_accesses(role["rules"]) == ROUTER_GRANT
    # The operator can grant it: RBAC refuses a binding to rules the granter does not hold.
    assert rule_accesses(named(docs, "ClusterRole", "modeldeploy")["rules"]) >= ROUTER_GRANT
    assert not [d for d in render("namespaced") if d["metadata"]["name"] == "modeldeploy-router"]


def test_rbac_create_false_renders_no_operator_rbac() -> None:
    docs = render("default", "rbac.create=false", "router.rbac.create=false")
    assert not [d for d in docs if d["apiVersion"].startswith("rbac.authorization.k8s.io")]


def test_service_account_name() -> None:
    docs = render("default", "serviceAccount.create=false", "serviceAccount.name=existing")
    assert not [d for d in docs if d["kind"] == "ServiceAccount"]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "existing"
    assert named(docs, "ClusterRoleBinding", "modeldeploy")["subjects"][0]["name"] == "existing"
    result = template(sets=["serviceAccount.create=false"], check=False)
    assert result.returncode != 0 and "serviceAccount.name is required" in result.stderr
