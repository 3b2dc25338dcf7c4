"""Which objects each traffic provider needs, and which a provider switch leaves stale. Pure.

    router       ServiceAccount, Role, RoleBinding, ConfigMap `<md>-routes`, Deployment `<md>-router`,
                 and Service `<md>` re-pointed at the router pods once the router is ready
    gateway-api  HTTPRoute `<md>` (Service `<md>` stays render/workload.build_stable_service's)
    none         Service `<md>` selecting every model server pod

All three share the entry Service name `<md>` (render/naming.stable_service_name), so a switch re-points one
Service instead of deleting it. Anything else of the previous provider is deleted: by the reconciler's plan()
once it observes the kinds in OBSERVED_KINDS, or explicitly with `stale_selectors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mdserve.router.table import RouteTable
from modeldeploy.api.base import SecretRef
from modeldeploy.render.naming import managed_selector
from modeldeploy.render.variants import Variant
from modeldeploy.status import Problem
from modeldeploy.traffic.httproute import build_httproute
from modeldeploy.traffic.names import COMPONENT_ROUTE, COMPONENT_ROUTER, COMPONENT_ROUTES
from modeldeploy.traffic.plan import RevisionShares, TrafficPlan, plan_traffic
from modeldeploy.traffic.router_objects import (
    build_all_variants_service,
    build_router_configmap,
    build_router_deployment,
    build_router_role,
    build_router_rolebinding,
    build_router_service,
    build_router_serviceaccount,
)
from modeldeploy.traffic.spec import PROVIDERS, Provider, TrafficSpec
from modeldeploy.traffic.table import TrafficError, build_route_table
from modeldeploy.traffic.validate import REASON_INVALID, traffic_errors

REASON_GATEWAY_MISSING = "GatewayAPIUnavailable"
"""Ready=False reason: provider gateway-api, but the cluster serves no gateway.networking.k8s.io/v1
HTTPRoute."""

API_RESOURCES: dict[str, tuple[str, str]] = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "HTTPRoute": ("/apis/gateway.networking.k8s.io/v1", "httproutes"),
}
"""kind -> (API prefix, plural) to add to kube/client.RESOURCES (ConfigMap is there already)."""
OBSERVED_KINDS = ("ConfigMap", "ServiceAccount", "Role", "RoleBinding", "HTTPRoute")
"""Kinds to list with managed_selector next to render/children.WORKLOAD_KINDS (HTTPRoute only when the
Gateway API is installed: listing it 404s otherwise)."""

_OWNED: dict[Provider, tuple[tuple[str, str], ...]] = {
    "router": (
        ("ServiceAccount", COMPONENT_ROUTER),
        ("Role", COMPONENT_ROUTER),
        ("RoleBinding", COMPONENT_ROUTER),
        ("ConfigMap", COMPONENT_ROUTES),
        ("Deployment", COMPONENT_ROUTER),
    ),
    "gateway-api": (("HTTPRoute", COMPONENT_ROUTE),),
    "none": (),
}
"""(kind, app.kubernetes.io/component) of each provider's own objects, the entry Service aside."""


@dataclass(frozen=True)
class TrafficRender:
    """The traffic part of one reconcile."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    """Manifests to apply after the workload children, in this order; empty when `problem` is set."""
    problem: Problem | None = None
    """Why nothing may be applied (Ready=False with this reason); the last good objects keep serving."""
    plan: TrafficPlan | None = None
    """The split rendered (None with a problem)."""
    table: RouteTable | None = None
    """The router table written to `<md>-routes` (provider router)."""


def desired_traffic_objects(
    md: Mapping[str, Any],
    variants: Sequence[Variant],
    shares: RevisionShares,
    traffic: TrafficSpec,
    *,
    image: str,
    router_ready: bool,
    gateway_api_available: bool,
    image_pull_policy: str | None = None,
    image_pull_secrets: tuple[SecretRef, ...] = (),
) -> TrafficRender:
    """`router_ready`: `router_serving(...)` of the observed router Deployment and Service `<md>`. Until it
    is true, Service `<md>` is left to the core (primary stable revision), so switching to the router never
    points callers at pods that have no table yet."""
    md_name = md["metadata"]["name"]
    errors = traffic_errors(md_name, variants, shares, traffic)
    if errors:
        return TrafficRender(problem=Problem(REASON_INVALID, "; ".join(errors)))
    if traffic.provider == "gateway-api" and not gateway_api_available:
        return TrafficRender(problem=Problem(
            REASON_GATEWAY_MISSING,
            "traffic.provider is gateway-api but the cluster has no gateway.networking.k8s.io/v1 HTTPRoute "
            "API: install the Gateway API standard CRDs, or use provider router",
        ))
    plan = plan_traffic(md_name, variants, shares, traffic)
    if traffic.provider == "none":
        return TrafficRender([build_all_variants_service(md)], plan=plan)
    if traffic.provider == "gateway-api":
        assert traffic.gateway is not None  # traffic_errors checked parentRefs
        return TrafficRender([build_httproute(md, plan, traffic.gateway)], plan=plan)
    try:
        table = build_route_table(md, plan, traffic)
    except TrafficError as e:
        return TrafficRender(problem=Problem(REASON_INVALID, str(e)))
    objects = [
        build_router_serviceaccount(md),
        build_router_role(md),
        build_router_rolebinding(md),
        build_router_configmap(md, table),
        build_router_deployment(md, traffic.router, image, image_pull_policy=image_pull_policy,
                                image_pull_secrets=image_pull_secrets),
    ]
    if router_ready:
        objects.append(build_router_service(md))
    return TrafficRender(objects, plan=plan, table=table)


def router_serving(router_deployment: Mapping[str, Any] | None, entry_service: Mapping[str, Any] | None
                   ) -> bool:
    """Whether Service `<md>` may select the router: it already does (a router restarting or rolling must
    not flip callers back to the unsplit primary), or at least one router pod is ready (its readiness probe
    passes only with a table loaded)."""
    selector = ((entry_service or {}).get("spec") or {}).get("selector") or {}
    if selector.get("app.kubernetes.io/component") == COMPONENT_ROUTER:
        return True
    return int(((router_deployment or {}).get("status") or {}).get("readyReplicas") or 0) > 0


def merge_children(core: Sequence[dict[str, Any]], traffic: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Core children then traffic objects; a traffic object replaces the core child of the same kind and name
    in place (Service `<md>`), so the apply order stays workloads first."""
    replaced = {(o["kind"], o["metadata"]["name"]): o for o in traffic}
    out = [replaced.pop((c["kind"], c["metadata"]["name"]), c) for c in core]
    return out + [o for o in traffic if (o["kind"], o["metadata"]["name"]) in replaced]


def stale_kinds(previous: Provider | None, provider: Provider) -> list[str]:
    """Kinds the previous provider owned that the new one does not render (the entry Service is kept)."""
    if previous is None or previous == provider:
        return []
    keep = {kind for kind, _ in _OWNED[provider]}
    return [kind for kind, _ in _OWNED[previous] if kind not in keep]


def stale_selectors(md_name: str, previous: Provider | None, provider: Provider) -> list[tuple[str, str]]:
    """(kind, label selector) of the objects to delete after switching from `previous` to `provider`;
    only objects also controlled by this ModelDeployment (ownerReference uid) may be deleted."""
    if previous is None or previous == provider:
        return []
    keep = set(_OWNED[provider])
    return [
        (kind, f"{managed_selector(md_name)},app.kubernetes.io/component={component}")
        for kind, component in _OWNED[previous]
        if (kind, component) not in keep
    ]


def previous_provider(status: Mapping[str, Any]) -> Provider | None:
    """The provider recorded in status.traffic by the last reconcile."""
    value = (status.get("traffic") or {}).get("provider")
    return next((p for p in PROVIDERS if p == value), None)
