"""All desired children of one ModelDeployment, and the ones to keep untouched. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.api.schema import PRIMARY
from modeldeploy.render.naming import workload_name
from modeldeploy.render.variants import Variant
from modeldeploy.render.workload import (
    build_deployment,
    build_hpa,
    build_revision_service,
    build_stable_service,
)
from modeldeploy.revisions import VariantRevisions

WORKLOAD_KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler")


def desired_children(
    md: dict[str, Any],
    variants: list[Variant],
    revisions: Mapping[str, VariantRevisions],
    progress_deadline: int,
) -> list[dict[str, Any]]:
    """Deployment, Service and (if autoscaled) HPA of each variant's desired revision + the stable Service."""
    out: list[dict[str, Any]] = []
    for v in variants:
        out.append(build_deployment(md, v, progress_deadline))
        out.append(build_revision_service(md, v))
        hpa = build_hpa(md, v)
        if hpa is not None:
            out.append(hpa)
    out.append(build_stable_service(md, revisions[PRIMARY].stable))
    return out


def retained(md_name: str, revisions: Mapping[str, VariantRevisions]) -> set[tuple[str, str]]:
    """(kind, name) of the still-serving old revisions: neither re-rendered nor deleted until promotion."""
    keep: set[tuple[str, str]] = set()
    for r in revisions.values():
        if r.canary is not None:
            name = workload_name(md_name, r.variant, r.stable)
            keep.update((kind, name) for kind in WORKLOAD_KINDS)
    return keep
