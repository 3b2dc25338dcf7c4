"""The built-in router of one ModelDeployment: ConfigMap, Deployment, Service, RBAC. Pure.

The router (`mdserve router`, docs/router.md) watches ConfigMap `<md>-routes` key `routes.json` through the
API, so a new table is in effect within a second of the apply, without a rollout of the router pods. Its
ServiceAccount may read exactly that ConfigMap (resourceNames works for list/watch too: the router always
sends a `metadata.name` field selector).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mdserve.router.table import ROUTES_KEY, RouteTable
from modeldeploy.api.base import Resources, SecretRef
from modeldeploy.render.hardening import (
    container_security_context,
    http_probe,
    pod_security_context,
)
from modeldeploy.render.workload import with_hash
from modeldeploy.traffic.names import (
    COMPONENT_ENTRY,
    COMPONENT_ROUTER,
    COMPONENT_ROUTES,
    entry_service_name,
    meta,
    router_name,
    routes_configmap_name,
)
from modeldeploy.traffic.spec import RouterSpec

ROUTER_PORT = 8080
CONTAINER = "router"
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "64Mi"},
    "limits": {"cpu": "1", "memory": "256Mi"},
}
"""A one-core limit: Go then runs one scheduler thread (GOMAXPROCS follows the limit), which measured
faster than two on a busy node; a few tens of MiB plus buffered request bodies."""
TABLE_VERSION_ANNOTATION = "serving.modeldeploy.dev/table-version"


def router_selector(md_name: str) -> dict[str, str]:
    """Router pods only: model server pods carry component=model-server."""
    return {"app.kubernetes.io/instance": md_name, "app.kubernetes.io/component": COMPONENT_ROUTER}


def build_router_configmap(md: Mapping[str, Any], table: RouteTable) -> dict[str, Any]:
    md_name = md["metadata"]["name"]
    m = meta(md, routes_configmap_name(md_name), COMPONENT_ROUTES)
    m["annotations"] = {TABLE_VERSION_ANNOTATION: table.version}
    return with_hash({"apiVersion": "v1", "kind": "ConfigMap", "metadata": m,
                      "data": {ROUTES_KEY: table.to_json()}})


def build_router_serviceaccount(md: Mapping[str, Any]) -> dict[str, Any]:
    m = meta(md, router_name(md["metadata"]["name"]), COMPONENT_ROUTER)
    # The router reads its ConfigMap with this token; it must stay mounted (docs/router.md).
    return with_hash({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": m,
                      "automountServiceAccountToken": True})


def build_router_role(md: Mapping[str, Any]) -> dict[str, Any]:
    md_name = md["metadata"]["name"]
    rule = {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": [routes_configmap_name(md_name)],
        "verbs": ["get", "list", "watch"],
    }
    return with_hash({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                      "metadata": meta(md, router_name(md_name), COMPONENT_ROUTER), "rules": [rule]})


def build_router_rolebinding(md: Mapping[str, Any]) -> dict[str, Any]:
    md_name = md["metadata"]["name"]
    name = router_name(md_name)
    return with_hash({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(md, name, COMPONENT_ROUTER),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": md["metadata"]["namespace"]}],
    })


def _resources(r: Resources | None) -> dict[str, Any]:
    if r is None:
        return {k: dict(v) for k, v in DEFAULT_RESOURCES.items()}
    return r.model_dump(exclude_none=True)


def build_router_deployment(
    md: Mapping[str, Any],
    router: RouterSpec,
    image: str,
    *,
    image_pull_policy: str | None = None,
    image_pull_secrets: tuple[SecretRef, ...] = (),
) -> dict[str, Any]:
    """`image`: the operator's router image (MODELDEPLOY_ROUTER_IMAGE), the Go `mdroute` built from
    serving-image/router-go: it reads the table schema this operator writes (docs/benchmarks.md: its added
    latency is below nginx's, the Python `mdserve router` is the fallback with the same flags)."""
    md_name = md["metadata"]["name"]
    name = router_name(md_name)
    labels = {**meta(md, name, COMPONENT_ROUTER)["labels"]}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        # An explicit command (not the image entrypoint) so the dev cluster's pod bridge can run it locally.
        "command": ["mdroute"],
        "ports": [{"name": "http", "containerPort": ROUTER_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "MDROUTE_CONFIGMAP", "value": routes_configmap_name(md_name)},
            # Explicit rather than read from the token's namespace file: also right outside a pod.
            {"name": "MDROUTE_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "MDROUTE_PORT", "value": str(ROUTER_PORT)},
            {"name": "MDROUTE_HOST", "value": "0.0.0.0"},
        ],
        # /-/ready stays 503 until a table is loaded: no traffic reaches a router without routes.
        "readinessProbe": http_probe("/-/ready", 2, 3),
        "livenessProbe": http_probe("/-/healthz", 10, 3),
        # Endpoints controllers and proxies drop the pod before it stops accepting connections.
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "resources": _resources(router.resources),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    pod_spec: dict[str, Any] = {
        "serviceAccountName": name,
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
        "terminationGracePeriodSeconds": 30,
        "securityContext": pod_security_context(fs_group=False),
        # Spread replicas so one node loss never takes every router of a ModelDeployment.
        "topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": router_selector(md_name)},
        }],
    }
    if image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s.name} for s in image_pull_secrets]
    template = {
        "metadata": {
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(ROUTER_PORT),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": pod_spec,
    }
    spec = {
        "replicas": router.replicas,
        "selector": {"matchLabels": router_selector(md_name)},
        "template": template,
        "revisionHistoryLimit": 2,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    }
    return with_hash({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": meta(md, name, COMPONENT_ROUTER), "spec": spec})


def _entry_service(md: Mapping[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    # Same name, labels and port as render/workload.build_stable_service: the two replace each other in place.
    md_name = md["metadata"]["name"]
    return with_hash({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(md, entry_service_name(md_name), COMPONENT_ENTRY),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    })


def build_router_service(md: Mapping[str, Any]) -> dict[str, Any]:
    """The Service users call (`<md>`, render/naming.stable_service_name), selecting the router pods."""
    return _entry_service(md, router_selector(md["metadata"]["name"]))


def build_all_variants_service(md: Mapping[str, Any]) -> dict[str, Any]:
    """Provider `none`: `<md>` selects every model server pod of every variant and revision, so kube-proxy
    spreads connections by ready pod counts (coarse: weights, pins and shadows are not honoured)."""
    md_name = md["metadata"]["name"]
    return _entry_service(
        md, {"app.kubernetes.io/instance": md_name, "app.kubernetes.io/component": "model-server"}
    )

