"""The traffic providers (traffic/) wired to the reconciler: which kinds to observe, which Deployments are
model servers, what to render for the split in effect, and `status.traffic`.

Pure except `observed_kinds`, which asks the (cached, blocking) Gateway API discovery of the client: it runs
in a reconcile worker thread like every other API call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.kube.client import KubeClient
from modeldeploy.plan import Key
from modeldeploy.render.children import WORKLOAD_KINDS
from modeldeploy.render.variants import Variant
from modeldeploy.revisions import VariantRevisions
from modeldeploy.rollout.engine import Decision
from modeldeploy.traffic.names import (
    COMPONENT_ROUTER,
    entry_service_name,
    httproute_name,
    router_name,
    routes_configmap_name,
)
from modeldeploy.traffic.plan import revision_shares
from modeldeploy.traffic.providers import (
    OBSERVED_KINDS,
    TrafficRender,
    desired_traffic_objects,
    previous_provider,
    router_serving,
)
from modeldeploy.traffic.spec import Provider
from modeldeploy.traffic.status import traffic_status

GATEWAY_KINDS = frozenset({"HTTPRoute"})
"""Kinds served only when the Gateway API CRDs are installed (listing them 404s otherwise)."""


def observed_kinds(gateway_api_available: bool) -> tuple[str, ...]:
    """Every kind a ModelDeployment may own: workloads, then the traffic providers' objects."""
    extra = tuple(k for k in OBSERVED_KINDS if k not in WORKLOAD_KINDS)
    if not gateway_api_available:
        extra = tuple(k for k in extra if k not in GATEWAY_KINDS)
    return WORKLOAD_KINDS + extra


def discover_kinds(kube: KubeClient) -> tuple[str, ...]:
    """observed_kinds with the cluster's (cached) Gateway API discovery."""
    return observed_kinds(kube.gateway_api_available())


def is_router(obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/component") == COMPONENT_ROUTER


def model_deployments(observed: Mapping[Key, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> Deployment of the model server revisions: the router Deployment takes no part in revisions,
    rollout or the replica counts of the status."""
    return {n: o for (k, n), o in observed.items() if k == "Deployment" and not is_router(o)}


def render_traffic(
    md: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    variants: list[Variant],
    revisions: Mapping[str, VariantRevisions],
    decision: Decision | None,
    observed: Mapping[Key, dict[str, Any]],
    *,
    image: str,
    gateway_api_available: bool,
) -> TrafficRender:
    """The provider's objects for this pass: the route table carries the rollout engine's weights (revision
    backends of the primary) when the engine runs, and the variants' weights and rules."""
    name = md["metadata"]["name"]
    shares = revision_shares(revisions, decision.weights if decision is not None else None)
    ready = router_serving(
        observed.get(("Deployment", router_name(name))), observed.get(("Service", entry_service_name(name)))
    )
    return desired_traffic_objects(
        md,
        variants,
        shares,
        spec.traffic,
        image=image,
        router_ready=ready,
        gateway_api_available=gateway_api_available,
        image_pull_policy=spec.serving.image_pull_policy,
        image_pull_secrets=spec.serving.image_pull_secrets,
    )


def status_traffic(
    md: Mapping[str, Any],
    spec: ModelDeploymentSpec | None,
    observed: Mapping[Key, dict[str, Any]],
    problem: str | None,
    applied: bool,
) -> dict[str, Any] | None:
    """`status.traffic` read back from the live (or just-applied) objects. `applied`: this pass rendered
    the spec's provider; otherwise what still serves is the previously recorded provider's, and `problem`
    says why the spec's was not applied."""
    name = md["metadata"]["name"]
    old = md.get("status") or {}
    provider: Provider | None
    if applied and spec is not None:
        provider = spec.traffic.provider
    else:
        provider = previous_provider(old) or (spec.traffic.provider if spec is not None else None)
    if provider is None:
        return None
    ready = router_serving(
        observed.get(("Deployment", router_name(name))), observed.get(("Service", entry_service_name(name)))
    )
    return traffic_status(
        name,
        provider,
        configmap=observed.get(("ConfigMap", routes_configmap_name(name))),
        httproute=observed.get(("HTTPRoute", httproute_name(name))),
        deployments=model_deployments(observed),
        router_ready=ready,
        problem=None if applied else problem,
    )
