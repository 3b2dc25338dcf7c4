"""The traffic providers wired into the reconciler, over an in-memory API: objects per provider, the router's
switch once ready, zero writes when converged, Gateway API discovery, and problems that apply nothing."""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import pytest

from mdserve.router.table import ROUTES_KEY, parse_table
from modeldeploy.api.schema import PRIMARY
from modeldeploy.api.spec import parse_spec
from modeldeploy.kube.client import DISCOVERY_TTL_SECONDS, ApiError, KubeClient
from modeldeploy.reconciler import Reconciler
from modeldeploy.render.variants import resolve
from modeldeploy.revisions import VariantRevisions
from modeldeploy.rollout.engine import Decision
from modeldeploy.rollout.state import from_status
from modeldeploy.routing import model_deployments, observed_kinds, render_traffic
from modeldeploy.settings import Settings
from tests.unit.modeldeploy.md_helpers import BASIC, IMAGE, md_with

pytestmark = pytest.mark.unit
WRITES = ("apply", "apply_status", "delete", "create_event")


class MemoryKube:
    """Just enough of KubeClient: objects in a dict, every call recorded."""

    def __init__(self, md: dict[str, Any], gateway_api: bool = False) -> None:
        self.md = md
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.gateway_api = gateway_api
        self.log: list[tuple[str, str, str]] = []

    def writes(self) -> int:
        return sum(1 for verb, _, _ in self.log if verb in WRITES)

    def gateway_api_available(self) -> bool:
        return self.gateway_api

    def forget_discovery(self) -> None:
        pass

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.md)

    def list(self, kind: str, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        if kind == "HTTPRoute" and not self.gateway_api:
            raise ApiError(404, "GET", "/apis/gateway.networking.k8s.io/v1", "{}")
        self.log.append(("list", kind, ""))
        return [copy.deepcopy(o) for (k, _), o in self.objects.items() if k == kind]

    def apply(self, manifest: dict[str, Any], field_manager: str = "") -> dict[str, Any]:
        self.log.append(("apply", manifest["kind"], manifest["metadata"]["name"]))
        key = (manifest["kind"], manifest["metadata"]["name"])
        live = copy.deepcopy(manifest)
        live["metadata"]["uid"] = f"uid-{key[1]}"
        live["status"] = self.objects.get(key, {}).get("status", {})
        self.objects[key] = live
        return copy.deepcopy(live)

    def scale(self, kind: str, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        self.log.append(("apply", kind, name))
        self.objects[(kind, name)]["spec"]["replicas"] = replicas
        return copy.deepcopy(self.objects[(kind, name)])

    def delete(self, kind: str, namespace: str, name: str, uid: str | None = None) -> bool:
        self.log.append(("delete", kind, name))
        return self.objects.pop((kind, name), None) is not None

    def apply_status(self, kind: str, api_version: str, namespace: str, name: str,
                     status: dict[str, Any]) -> dict[str, Any]:
        self.log.append(("apply_status", kind, name))
        self.md["status"] = json.loads(json.dumps(status))
        return copy.deepcopy(self.md)

    def event(self, involved: dict[str, Any], etype: str, reason: str, message: str) -> None:
        self.log.append(("create_event", etype, reason))

    def applied(self) -> set[tuple[str, str]]:
        return {(k, n) for verb, k, n in self.log if verb == "apply"}


def spec(traffic: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {**BASIC, "variants": [{"name": "b", "weight": 30}]}
    if traffic is not None:
        out["traffic"] = traffic
    return out


def run(kube: MemoryKube) -> tuple[Reconciler, int]:
    r = Reconciler(
        cast(KubeClient, kube), Settings(serving_image=IMAGE), clock=lambda: "2026-01-01T00:00:00Z"
    )
    return r, r.reconcile("ns1", "m").writes


def ready_condition(kube: MemoryKube) -> dict[str, Any]:
    return next(c for c in kube.md["status"]["conditions"] if c["type"] == "Ready")


def converged_router() -> MemoryKube:
    kube = MemoryKube(md_with(spec()))
    run(kube)
    kube.objects[("Deployment", "m-router")]["status"] = {"readyReplicas": 1}
    run(kube)
    return kube


def test_observed_kinds_skip_httproutes_without_the_gateway_api() -> None:
    assert "HTTPRoute" not in observed_kinds(False)
    assert observed_kinds(True)[-1] == "HTTPRoute"
    for kind in ("Deployment", "Service", "ConfigMap", "ServiceAccount", "Role", "RoleBinding"):
        assert kind in observed_kinds(False)


def test_router_objects_then_the_switch_once_ready_then_zero_writes() -> None:
    kube = MemoryKube(md_with(spec()))
    run(kube)
    for key in (("ServiceAccount", "m-router"), ("Role", "m-router"), ("RoleBinding", "m-router"),
                ("ConfigMap", "m-routes"), ("Deployment", "m-router")):
        assert key in kube.objects, key
    entry = kube.objects[("Service", "m")]["spec"]["selector"]
    assert entry.get("app.kubernetes.io/component") != "router", "no router pod ready yet"
    table = parse_table(kube.objects[("ConfigMap", "m-routes")]["data"][ROUTES_KEY])
    assert sorted((v.name.split("-")[0], v.weight) for v in table.variants) == [("b", 3), ("primary", 7)]
    assert kube.md["status"]["traffic"]["provider"] == "router"
    assert "router not ready" in kube.md["status"]["traffic"]["message"]
    assert "m-router" not in model_deployments(kube.objects), "the router is no revision"

    kube.objects[("Deployment", "m-router")]["status"] = {"readyReplicas": 1}
    kube.log.clear()
    run(kube)
    assert ("Service", "m") in kube.applied()
    assert kube.objects[("Service", "m")]["spec"]["selector"]["app.kubernetes.io/component"] == "router"
    assert "message" not in kube.md["status"]["traffic"]
    assert run(kube)[1] == 0 and run(kube)[1] == 0


def test_switch_to_none_deletes_the_router_objects() -> None:
    kube = converged_router()
    kube.md["spec"] = spec({"provider": "none"})
    kube.log.clear()
    run(kube)
    deleted = {(k, n) for verb, k, n in kube.log if verb == "delete"}
    assert deleted == {("ServiceAccount", "m-router"), ("Role", "m-router"), ("RoleBinding", "m-router"),
                       ("ConfigMap", "m-routes"), ("Deployment", "m-router")}
    assert kube.objects[("Service", "m")]["spec"]["selector"]["app.kubernetes.io/component"] == "model-server"
    assert kube.md["status"]["traffic"]["provider"] == "none"
    assert run(kube)[1] == 0


def test_gateway_api_missing_is_refused_and_nothing_is_applied() -> None:
    kube = converged_router()
    before = copy.deepcopy(kube.objects)
    kube.md["spec"] = spec({"provider": "gateway-api", "gateway": {"parentRefs": [{"name": "gw"}]}})
    kube.md["metadata"]["generation"] = 2
    kube.log.clear()
    r = Reconciler(cast(KubeClient, kube), Settings(serving_image=IMAGE))
    outcome = r.reconcile("ns1", "m")
    assert outcome.requeue_after == DISCOVERY_TTL_SECONDS, "CRDs installed later are noticed"
    assert not [entry for entry in kube.log if entry[0] in ("apply", "delete")]
    assert kube.objects == before
    ready = ready_condition(kube)
    assert (ready["status"], ready["reason"]) == ("False", "GatewayAPIUnavailable")
    shown = kube.md["status"]["traffic"]
    assert shown["provider"] == "router", "what still serves"
    assert shown["message"].startswith("not applied: traffic.provider is gateway-api")

    kube.gateway_api = True
    run(kube)
    assert ("HTTPRoute", "m") in kube.objects and ("Deployment", "m-router") not in kube.objects
    assert kube.md["status"]["traffic"]["provider"] == "gateway-api"
    assert ready_condition(kube)["reason"] != "GatewayAPIUnavailable"


def test_invalid_traffic_is_refused_before_any_workload_is_written() -> None:
    kube = MemoryKube(md_with(spec({"sticky": {"header": "x-user", "cookie": "uid"}})))
    run(kube)
    assert not kube.applied() and not kube.objects
    ready = ready_condition(kube)
    assert (ready["status"], ready["reason"]) == ("False", "InvalidTraffic")
    assert "traffic.sticky" in ready["message"]


def test_route_table_carries_the_engine_weights_for_the_primary() -> None:
    md = md_with(spec())
    parsed = parse_spec(md["spec"])
    variants = resolve("m", parsed, IMAGE)
    stable, canary = "aaaaaaaa", variants[0].revision
    revisions = {
        PRIMARY: VariantRevisions(PRIMARY, stable, canary, engine=True, engine_canary=canary),
        "b": VariantRevisions("b", variants[1].revision, variants[1].revision),
    }
    decision = Decision(from_status(None, stable), {stable: 80, canary: 20}, {}, frozenset(), (), None, None)
    t = render_traffic(md, parsed, variants, revisions, decision, {}, image=IMAGE,
                       gateway_api_available=False)
    assert t.table is not None
    weights = {v.name: v.weight for v in t.table.variants}
    # 70 % primary split 80/20 between its revisions, 30 % b: 5600/1400/3000, gcd 200
    assert weights == {f"primary-{stable}": 28, f"primary-{canary}": 7, f"b-{variants[1].revision}": 15}
    plain = render_traffic(md, parsed, variants, revisions, None, {}, image=IMAGE,
                           gateway_api_available=False)
    assert plain.table is not None
    assert {v.name: v.weight for v in plain.table.variants} == {
        f"primary-{stable}": 7, f"b-{variants[1].revision}": 3,
    }


class DiscoveryClient(KubeClient):
    def __init__(self, answers: list[Any]) -> None:
        super().__init__(cast(Any, None))
        self.answers = answers

    def _request(self, verb: str, kind: str, method: str, path: str, **_: Any) -> Any:
        self._count(verb, kind)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_gateway_api_discovery_is_cached_and_404_means_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import modeldeploy.kube.client as client

    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    kube = DiscoveryClient([
        ApiError(404, "GET", client.GATEWAY_API, "{}"),
        {"resources": [{"name": "gateways"}, {"name": "httproutes"}]},
    ])
    assert kube.gateway_api_available() is False
    assert kube.gateway_api_available() is False and kube.calls[("discover", "HTTPRoute")] == 1
    now[0] += DISCOVERY_TTL_SECONDS
    assert kube.gateway_api_available() is True
    assert kube.calls[("discover", "HTTPRoute")] == 2 and kube.writes() == 0
    kube.answers.append({"resources": [{"name": "gateways"}]})
    kube.forget_discovery()
    assert kube.gateway_api_available() is False, "an HTTPRoute-less group version is not enough"
