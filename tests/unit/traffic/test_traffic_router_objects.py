"""Router objects: golden YAML, hardening, least-privilege RBAC, and the router/bridge accepting the pod."""

from __future__ import annotations

from typing import Any

import pytest

from devcluster.bridge_spec import build_spec
from mdserve.router.settings import parse_settings
from modeldeploy.api.spec import SecretRef
from modeldeploy.render.naming import ANNOTATION_HASH, stable_service_name
from modeldeploy.render.variants import Variant
from modeldeploy.render.workload import build_stable_service
from modeldeploy.traffic.plan import plan_traffic
from modeldeploy.traffic.router_objects import (
    build_all_variants_service,
    build_router_configmap,
    build_router_deployment,
    build_router_role,
    build_router_rolebinding,
    build_router_service,
    build_router_serviceaccount,
)
from modeldeploy.traffic.spec import RouterSpec
from modeldeploy.traffic.table import build_route_table
from tests.unit.traffic.scenario import IMAGE, check_golden, dump, md, shares, traffic, variants

pytestmark = pytest.mark.unit


def objects() -> list[dict[str, Any]]:
    m, vs, t = md(), variants(), traffic()
    table = build_route_table(m, plan_traffic("fraud", vs, shares(vs), t), t)
    return [
        build_router_serviceaccount(m),
        build_router_role(m),
        build_router_rolebinding(m),
        build_router_configmap(m, table),
        build_router_deployment(m, t.router, IMAGE, image_pull_secrets=(SecretRef(name="regcred"),)),
        build_router_service(m),
        build_all_variants_service(m),
    ]


def test_golden() -> None:
    check_golden("router-objects.yaml", dump(objects()))


def test_owned_labelled_hashed() -> None:
    for o in objects():
        meta = o["metadata"]
        assert meta["namespace"] == "ns1" and meta["ownerReferences"][0]["uid"] == "uid-1"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "modeldeploy"
        assert meta["labels"]["serving.modeldeploy.dev/modeldeployment"] == "fraud"
        assert ANNOTATION_HASH in meta["annotations"]


def test_rbac_reads_exactly_one_configmap() -> None:
    (rule,) = build_router_role(md())["rules"]
    assert rule == {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["fraud-routes"],
                    "verbs": ["get", "list", "watch"]}
    binding = build_router_rolebinding(md())
    assert binding["roleRef"]["name"] == "fraud-router"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "fraud-router", "namespace": "ns1"}]


def test_deployment_is_hardened_and_probed() -> None:
    dep = build_router_deployment(md(), RouterSpec(replicas=3), IMAGE)
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert dep["spec"]["replicas"] == 3 and pod["serviceAccountName"] == "fraud-router"
    assert pod["automountServiceAccountToken"] is True
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthz"
    assert c["resources"]["limits"]["memory"] == "256Mi"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "router"
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_router_accepts_its_command_and_env() -> None:
    dep = build_router_deployment(md(), RouterSpec(), IMAGE)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["mdroute"]  # the Go router; it takes the same env and flags as `mdserve router`
    # The pod bridge resolves the env as a kubelet would (downward API included) and runs it as a router.
    spec = build_spec({**dep, "metadata": {**dep["metadata"]}})
    assert spec.is_router and spec.readiness_path == "/-/ready" and spec.container_port == 8080
    assert spec.env["MDROUTE_NAMESPACE"] == "ns1"
    settings = parse_settings(c["command"][1:], env=spec.env)
    assert (settings.configmap, settings.namespace, settings.port) == ("fraud-routes", "ns1", 8080)
    assert settings.routes_file is None and settings.admin_port == 0


def test_entry_services_replace_the_core_stable_service_in_place() -> None:
    core = build_stable_service(md(), "0a1b2c3d")
    for mine in (build_router_service(md()), build_all_variants_service(md())):
        assert (mine["kind"], mine["metadata"]["name"]) == ("Service", stable_service_name("fraud"))
        assert mine["spec"]["ports"] == core["spec"]["ports"]
        assert mine["metadata"]["labels"] == core["metadata"]["labels"]
    assert build_router_service(md())["spec"]["selector"] == {
        "app.kubernetes.io/instance": "fraud", "app.kubernetes.io/component": "router"}


def test_all_variants_selector_matches_every_model_server_pod_but_no_router() -> None:
    selector = build_all_variants_service(md())["spec"]["selector"]
    vs: list[Variant] = variants()
    for v in vs:
        assert selector.items() <= v.pod_template["metadata"]["labels"].items()
    router_pod = build_router_deployment(md(), RouterSpec(), IMAGE)["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= router_pod.items()
