"""Names, labels and metadata of the traffic objects (render/naming.py conventions). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.render.naming import base_labels, owner_reference, stable_service_name

COMPONENT_ROUTER = "router"
"""app.kubernetes.io/component of the router Deployment and its pods (the pod bridge runs them locally)."""
COMPONENT_ROUTES = "routes"
COMPONENT_ROUTE = "route"
COMPONENT_ENTRY = "stable-service"
"""Same component as render/workload.build_stable_service: the Service users call, whoever it selects."""


def routes_configmap_name(md_name: str) -> str:
    """`<md>-routes`, fixed by docs/CONTRACTS.md (the router watches it)."""
    return f"{md_name}-routes"


def router_name(md_name: str) -> str:
    """Router Deployment, ServiceAccount, Role and RoleBinding (at most 45 + 7 characters)."""
    return f"{md_name}-router"


def httproute_name(md_name: str) -> str:
    return md_name


def entry_service_name(md_name: str) -> str:
    """The Service users call for every provider: render/naming.stable_service_name."""
    return stable_service_name(md_name)


def meta(md: Mapping[str, Any], name: str, component: str) -> dict[str, Any]:
    md_name = md["metadata"]["name"]
    return {
        "name": name,
        "namespace": md["metadata"]["namespace"],
        "labels": base_labels(md_name, component),
        "ownerReferences": [owner_reference(dict(md))],
    }
