"""Which revision serves each extra (A/B) variant, decided from observed state only. Pure.

A spec change that alters what a variant serves yields a new revision. The new revision's Deployment runs next
to the serving (stable) one, which is kept untouched — the operator no longer has the old spec, so it neither
renders nor patches it — until the new one is Ready; then the new revision becomes stable and the old one is
removed. The primary variant is rolled out by the progressive delivery engine whatever the strategy
(modeldeploy/delivery.py, rollout/); the readiness helpers here serve both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.render.naming import workload_name
from modeldeploy.render.variants import Variant


@dataclass(frozen=True)
class VariantRevisions:
    """Revisions of one variant after this reconcile's decision."""

    variant: str
    """Variant name."""
    stable: str
    """Revision that serves the variant's traffic."""
    desired: str
    """Revision rendered from the current spec."""
    promoted: bool = False
    """True when this decision switched `stable` to `desired`."""
    engine: bool = False
    """Decided by the progressive delivery engine, which names the canary itself (`engine_canary`)."""
    engine_canary: str | None = None
    """The engine's in-flight canary (may differ from `desired`: a rollback target, a held revision)."""

    @property
    def canary(self) -> str | None:
        """The revision being rolled out, if it differs from the stable one."""
        if self.engine:
            return self.engine_canary
        return self.desired if self.desired != self.stable else None


def deployment_replicas(dep: Mapping[str, Any]) -> int:
    return int(dep.get("spec", {}).get("replicas", 1))


def deployment_ready(dep: Mapping[str, Any]) -> bool:
    """The Deployment controller has seen the latest spec and every desired pod is updated and available."""
    meta, status = dep.get("metadata", {}), dep.get("status", {}) or {}
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 1)):
        return False
    want = deployment_replicas(dep)
    return (
        int(status.get("updatedReplicas", 0)) >= want
        and int(status.get("availableReplicas", 0)) >= want
        and int(status.get("replicas", 0)) <= want
    )


def deadline_exceeded(dep: Mapping[str, Any]) -> bool:
    """The Deployment controller gave up waiting (progressDeadlineSeconds) for the pods to become ready."""
    for cond in (dep.get("status", {}) or {}).get("conditions", []) or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return True
    return False


def status_revisions(status: Mapping[str, Any]) -> dict[str, str]:
    """variant -> stable revision, as recorded by the previous reconcile."""
    out: dict[str, str] = {}
    for entry in status.get("variants", []) or []:
        if entry.get("name") and entry.get("revision"):
            out[str(entry["name"])] = str(entry["revision"])
    return out


def decide(
    md_name: str,
    variants: list[Variant],
    status: Mapping[str, Any],
    deployments: Mapping[str, Mapping[str, Any]],
    *,
    paused: bool,
) -> dict[str, VariantRevisions]:
    """`variants`: the extra variants (not the primary); `deployments` maps name -> observed Deployment of
    this ModelDeployment."""
    recorded = status_revisions(status)
    out: dict[str, VariantRevisions] = {}
    for v in variants:
        stable = recorded.get(v.name)
        if stable is None or stable == v.revision:
            out[v.name] = VariantRevisions(v.name, v.revision, v.revision)
            continue
        old = deployments.get(workload_name(md_name, v.name, stable))
        if old is None:
            # Nothing serves the old revision any more (deleted by hand, or never created): nothing to
            # protect.
            out[v.name] = VariantRevisions(v.name, v.revision, v.revision, promoted=True)
            continue
        new = deployments.get(workload_name(md_name, v.name, v.revision))
        if not paused and new is not None and promote_when_ready(new):
            out[v.name] = VariantRevisions(v.name, v.revision, v.revision, promoted=True)
        else:
            out[v.name] = VariantRevisions(v.name, stable, v.revision)
    return out


def promote_when_ready(new_deployment: Mapping[str, Any]) -> bool:
    """An extra variant's new revision takes over as soon as all its pods are ready."""
    return deployment_ready(new_deployment)
