"""Per-provider objects (golden), refusals that apply nothing, provider switches, and status read-back."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.render.workload import build_stable_service
from modeldeploy.traffic.providers import (
    REASON_GATEWAY_MISSING,
    desired_traffic_objects,
    merge_children,
    previous_provider,
    router_serving,
    stale_kinds,
    stale_selectors,
)
from modeldeploy.traffic.spec import TrafficSpec
from modeldeploy.traffic.status import NONE_MESSAGE, traffic_status
from modeldeploy.traffic.validate import REASON_INVALID
from tests.unit.traffic.scenario import (
    GATEWAY,
    IMAGE,
    SPEC,
    check_golden,
    dump,
    md,
    shares,
    traffic,
    variants,
)

pytestmark = pytest.mark.unit
NO_MATCH_SPEC = {**SPEC, "variants": [SPEC["variants"][0], {**SPEC["variants"][1], "match": []}]}


def render(
    t: TrafficSpec, *, spec: dict[str, Any] | None = None, ready: bool = True, gateway: bool = True
) -> Any:
    vs = variants(spec)
    return desired_traffic_objects(
        md(spec), vs, shares(vs), t, image=IMAGE, router_ready=ready, gateway_api_available=gateway
    )


@pytest.mark.parametrize(
    ("provider", "t", "spec"),
    [
        ("router", traffic(), None),
        ("gateway-api", traffic(GATEWAY), None),
        ("none", traffic({"provider": "none"}), NO_MATCH_SPEC),
    ],
)
def test_golden_per_provider(provider: str, t: TrafficSpec, spec: dict[str, Any] | None) -> None:
    r = render(t, spec=spec)
    assert r.problem is None
    check_golden(f"provider-{provider}.yaml", dump(r.objects))


def test_kinds_per_provider() -> None:
    def kinds(r: Any) -> list[str]:
        return [f"{o['kind']}/{o['metadata']['name']}" for o in r.objects]

    assert kinds(render(traffic())) == [
        "ServiceAccount/fraud-router",
        "Role/fraud-router",
        "RoleBinding/fraud-router",
        "ConfigMap/fraud-routes",
        "Deployment/fraud-router",
        "Service/fraud",
    ]
    assert kinds(render(traffic(), ready=False))[-1] == "Deployment/fraud-router"
    assert kinds(render(traffic(GATEWAY))) == ["HTTPRoute/fraud"]
    assert kinds(render(traffic({"provider": "none"}), spec=NO_MATCH_SPEC)) == ["Service/fraud"]


def test_refusals_render_nothing() -> None:
    bad = render(traffic(shadow=[{"variant": "ghost", "percent": 5}]))
    assert bad.objects == [] and bad.problem is not None and bad.problem.reason == REASON_INVALID
    assert "unknown variant 'ghost'" in bad.problem.message
    missing = render(traffic(GATEWAY), gateway=False)
    assert missing.objects == [] and missing.problem is not None
    assert missing.problem.reason == REASON_GATEWAY_MISSING and "Gateway API" in missing.problem.message


def test_merge_replaces_the_core_stable_service_in_place() -> None:
    core = [{"kind": "Deployment", "metadata": {"name": "fraud-primary-x"}}, build_stable_service(md(), "x")]
    objs = render(traffic()).objects
    merged = merge_children(core, objs)
    assert [(o["kind"], o["metadata"]["name"]) for o in merged][:2] == [
        ("Deployment", "fraud-primary-x"),
        ("Service", "fraud"),
    ]
    assert merged[1]["spec"]["selector"]["app.kubernetes.io/component"] == "router"
    assert len(merged) == len(core) + len(objs) - 1
    gateway = merge_children(core, render(traffic(GATEWAY)).objects)
    assert gateway[1] is core[1] and gateway[2]["kind"] == "HTTPRoute"


def test_switching_providers_names_what_to_delete() -> None:
    assert stale_kinds(None, "router") == [] and stale_kinds("router", "router") == []
    router_kinds = ["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment"]
    assert stale_kinds("router", "none") == router_kinds
    assert stale_kinds("gateway-api", "router") == ["HTTPRoute"]
    assert stale_kinds("none", "gateway-api") == []
    sel = dict(stale_selectors("fraud", "router", "gateway-api"))
    assert sel["Deployment"] == (
        "app.kubernetes.io/managed-by=modeldeploy,serving.modeldeploy.dev/"
        "modeldeployment=fraud,app.kubernetes.io/component=router"
    )
    assert sel["ConfigMap"].endswith("app.kubernetes.io/component=routes")
    assert previous_provider({"traffic": {"provider": "gateway-api"}}) == "gateway-api"
    assert previous_provider({}) is None and previous_provider({"traffic": {"provider": "x"}}) is None


def test_status_router_reads_the_applied_table() -> None:
    r = render(traffic())
    cm = next(o for o in r.objects if o["kind"] == "ConfigMap")
    st = traffic_status("fraud", "router", configmap=cm, router_ready=True)
    assert st["provider"] == "router" and st["route"] == "fraud-routes"
    assert r.table is not None and st["tableVersion"] == r.table.version
    assert [(w["variant"], w["weight"], w["percent"]) for w in st["weights"]] == [
        ("primary", 36, 72.0),
        ("primary", 9, 18.0),
        ("int8", 5, 10.0),
        ("candidate", 0, 0.0),
    ]
    assert "message" not in st
    waiting = traffic_status("fraud", "router", configmap=cm, router_ready=False)
    assert "router not ready" in waiting["message"]
    assert traffic_status("fraud", "router")["weights"] == []
    refused = traffic_status("fraud", "router", configmap=cm, router_ready=True, problem="unknown variant")
    assert refused["message"].startswith("not applied: unknown variant") and refused["weights"]


def test_status_gateway_reads_the_weighted_rule_and_parent_conditions() -> None:
    route = render(traffic(GATEWAY)).objects[0]
    route["spec"]["rules"][-1]["backendRefs"][2].pop("weight")  # as if edited: the API's default is 1
    route["status"] = {
        "parents": [
            {
                "parentRef": {"name": "shared-gw"},
                "conditions": [
                    {
                        "type": "Accepted",
                        "status": "False",
                        "reason": "NotAllowedByListeners",
                        "message": "ns",
                    }
                ],
            }
        ]
    }
    st = traffic_status("fraud", "gateway-api", httproute=route)
    assert [(w["backend"].split("-")[0], w["weight"]) for w in st["weights"]] == [
        ("primary", 36),
        ("primary", 9),
        ("int8", 1),
        ("candidate", 0),
    ]
    assert st["weights"][0]["revision"] == "0a1b2c3d"
    assert "Accepted=False (NotAllowedByListeners)" in st["message"]


def test_status_none_follows_ready_pods() -> None:
    def dep(variant: str, rev: str, ready: int, component: str = "model-server") -> dict[str, Any]:
        labels = {
            "app.kubernetes.io/component": component,
            "serving.modeldeploy.dev/variant": variant,
            "serving.modeldeploy.dev/revision": rev,
        }
        return {"metadata": {"labels": labels}, "status": {"readyReplicas": ready}}

    deps = {
        "fraud-primary-a": dep("primary", "aaaa0000", 3),
        "fraud-int8-b": dep("int8", "bbbb0000", 1),
        "fraud-router": dep("", "", 2, component="router"),
    }
    st = traffic_status("fraud", "none", deployments=deps)
    assert [(w["backend"], w["percent"]) for w in st["weights"]] == [
        ("int8-bbbb0000", 25.0),
        ("primary-aaaa0000", 75.0),
    ]
    assert st["message"] == NONE_MESSAGE and st["route"] == "fraud"


def test_router_serving_switches_once_and_stays() -> None:
    router_svc = next(o for o in render(traffic()).objects if o["kind"] == "Service")
    core_svc = build_stable_service(md(), "x")
    assert router_serving(None, None) is False
    assert router_serving({"status": {"readyReplicas": 0}}, core_svc) is False
    assert router_serving({"status": {"readyReplicas": 1}}, core_svc) is True
    # Once callers go through the router, a restarting router does not flip them back to the primary.
    assert router_serving({"status": {}}, router_svc) is True
