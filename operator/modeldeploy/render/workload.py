"""Deployment, Service and HorizontalPodAutoscaler builders: spec data in, manifest dicts out. Pure."""

from __future__ import annotations

from typing import Any

from modeldeploy.api.schema import PRIMARY
from modeldeploy.api.spec import AutoscalingSpec
from modeldeploy.render.naming import (
    ANNOTATION_HASH,
    COMPONENT_SERVER,
    LABEL_REVISION,
    LABEL_VARIANT,
    base_labels,
    owner_reference,
    selector_labels,
    stable_hash,
    stable_service_name,
    workload_name,
)
from modeldeploy.render.variants import Variant

RPS_METRIC = "mdserve_requests_per_second"
DEFAULT_CPU_TARGET = 80


def _meta(md: dict[str, Any], name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": md["metadata"]["namespace"],
        "labels": labels,
        "ownerReferences": [owner_reference(md)],
    }


def with_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """Stamps the manifest's own content hash, so a later reconcile notices fields removed from the spec."""
    digest = stable_hash(manifest, length=16)
    manifest["metadata"].setdefault("annotations", {})[ANNOTATION_HASH] = digest
    return manifest


def build_deployment(md: dict[str, Any], v: Variant, progress_deadline: int) -> dict[str, Any]:
    md_name = md["metadata"]["name"]
    name = workload_name(md_name, v.name, v.revision)
    labels = {
        **base_labels(md_name, COMPONENT_SERVER),
        "app.kubernetes.io/version": v.model.version,
        LABEL_VARIANT: v.name,
        LABEL_REVISION: v.revision,
    }
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(md_name, v.name, v.revision)},
        "template": v.pod_template,
        "revisionHistoryLimit": 2,
        "progressDeadlineSeconds": progress_deadline,
        # Never drop below the desired capacity while pods are replaced (e.g. node drains, template fixes).
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
    }
    if v.autoscaling is None:
        spec["replicas"] = v.replicas
    # With autoscaling the HPA owns spec.replicas; leaving it out of the apply keeps the two from fighting.
    return with_hash(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(md, name, labels), "spec": spec}
    )


def _service(
    md: dict[str, Any], name: str, labels: dict[str, str], selector: dict[str, str]
) -> dict[str, Any]:
    return with_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(md, name, labels),
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        }
    )


def build_revision_service(md: dict[str, Any], v: Variant) -> dict[str, Any]:
    """Addresses exactly one revision of one variant (what a traffic router splits between)."""
    md_name = md["metadata"]["name"]
    labels = {**base_labels(md_name, "revision-service"), LABEL_VARIANT: v.name, LABEL_REVISION: v.revision}
    return _service(
        md, workload_name(md_name, v.name, v.revision), labels, selector_labels(md_name, v.name, v.revision)
    )


def build_stable_service(md: dict[str, Any], stable_revision: str) -> dict[str, Any]:
    """The Service users call: the primary variant's stable revision (a router takes its place later)."""
    md_name = md["metadata"]["name"]
    return _service(
        md,
        stable_service_name(md_name),
        base_labels(md_name, "stable-service"),
        selector_labels(md_name, PRIMARY, stable_revision),
    )


def hpa_metrics(a: AutoscalingSpec) -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = []
    for resource, target in (("cpu", a.target_cpu), ("memory", a.target_memory)):
        if target is not None:
            metrics.append(
                {
                    "type": "Resource",
                    "resource": {
                        "name": resource,
                        "target": {"type": "Utilization", "averageUtilization": target},
                    },
                }
            )
    pods = [(RPS_METRIC, a.target_rps)] if a.target_rps is not None else []
    pods += [(m.name, m.target_average_value) for m in a.metrics]
    for metric, value in pods:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": metric},
                    "target": {"type": "AverageValue", "averageValue": str(value)},
                },
            }
        )
    if not metrics:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_TARGET},
                },
            }
        )
    return metrics


def build_hpa(md: dict[str, Any], v: Variant) -> dict[str, Any] | None:
    a = v.autoscaling
    if a is None:
        return None
    md_name = md["metadata"]["name"]
    name = workload_name(md_name, v.name, v.revision)
    labels = {**base_labels(md_name, "autoscaler"), LABEL_VARIANT: v.name, LABEL_REVISION: v.revision}
    min_replicas = a.min_replicas or 1
    max_replicas = max(a.max_replicas or min_replicas, min_replicas)
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": hpa_metrics(a),
    }
    if a.behavior:
        spec["behavior"] = a.behavior
    return with_hash(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(md, name, labels),
            "spec": spec,
        }
    )
