"""The ModelDeployment status computed from observed children. Pure: the same inputs give the same dict, and
lastTransitionTime only moves when a condition's status does, so an unchanged world means no status write."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.api.schema import PRIMARY
from modeldeploy.render.naming import stable_service_name, workload_name
from modeldeploy.revisions import VariantRevisions, deadline_exceeded, deployment_ready
from modeldeploy.rollout.state import Phase, RolloutState, md_phase


@dataclass(frozen=True)
class Problem:
    """Something only the operator can detect, which stops the spec from being rolled out."""

    reason: str
    """CamelCase reason, e.g. InvalidSpec, UnsupportedModelURI, ModelUnavailable."""
    message: str
    """Human-readable detail naming the field."""


def condition(
    ctype: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int,
    now: str,
    previous: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = previous.get(ctype)
    since = prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
        "observedGeneration": generation,
    }


def _counts(dep: Mapping[str, Any] | None) -> tuple[int, int, int]:
    """(desired, ready, updated) pods of one Deployment."""
    if dep is None:
        return 0, 0, 0
    status = dep.get("status", {}) or {}
    return (
        int(dep.get("spec", {}).get("replicas", 1)),
        int(status.get("readyReplicas", 0)),
        int(status.get("updatedReplicas", 0)),
    )


def compute(
    md: Mapping[str, Any],
    revisions: Mapping[str, VariantRevisions] | None,
    deployments: Mapping[str, Mapping[str, Any]],
    weights: Mapping[str, int],
    problem: Problem | None,
    paused: bool,
    now: str,
    rollout: RolloutState | None = None,
    canary_weight: int = 0,
) -> dict[str, Any]:
    """`revisions` is None when the spec could not be parsed; `weights` maps variant -> configured weight.
    `rollout` is the progressive delivery engine's state (every strategy), `canary_weight` the percent of
    primary traffic the applied decision sends to the canary."""
    meta, old = md["metadata"], md.get("status") or {}
    name, generation = meta["name"], int(meta.get("generation", 1))
    previous = {c["type"]: c for c in old.get("conditions", []) or [] if "type" in c}
    if revisions is None:
        # Keep reporting what is running; only the conditions and phase say the new spec was refused.
        revisions = {
            v["name"]: VariantRevisions(v["name"], v["revision"], v.get("desiredRevision", v["revision"]))
            for v in old.get("variants", []) or []
            if v.get("name") and v.get("revision")
        }

    variants: list[dict[str, Any]] = []
    total_want = total_ready = 0
    all_ready, canaries, stuck = True, [], []
    for vname, r in revisions.items():
        stable_dep = deployments.get(workload_name(name, vname, r.stable))
        want, ready, updated = _counts(stable_dep)
        replicas, ready_all = want, ready
        if r.canary is not None:
            canary_dep = deployments.get(workload_name(name, vname, r.canary))
            c_want, c_ready, c_updated = _counts(canary_dep)
            replicas, ready_all, updated = want + c_want, ready + c_ready, c_updated
            canaries.append(f"{vname}@{r.canary}")
            if canary_dep is not None and deadline_exceeded(canary_dep):
                stuck.append(f"{vname}@{r.canary}")
        elif stable_dep is not None and deadline_exceeded(stable_dep):
            stuck.append(f"{vname}@{r.stable}")
        total_want += want
        total_ready += ready
        if stable_dep is None or not deployment_ready(stable_dep):
            all_ready = False
        variants.append(
            {
                "name": vname,
                "revision": r.stable,
                "desiredRevision": r.desired,
                "deployment": workload_name(name, vname, r.stable),
                "service": workload_name(name, vname, r.stable),
                "weight": int(weights.get(vname, 0)),
                "replicas": replicas,
                "readyReplicas": ready_all,
                "updatedReplicas": updated,
            }
        )

    primary = revisions.get(PRIMARY)
    if problem is not None:
        phase, message = "Degraded", f"{problem.reason}: {problem.message}"
        ready_c = (False, problem.reason, problem.message)
        degraded_c = (True, problem.reason, problem.message)
    elif stuck:
        message = f"revision {', '.join(stuck)} did not become ready before its progress deadline"
        phase, ready_c = (
            "Degraded",
            (all_ready, "ModelUnavailable" if not all_ready else "Available", message),
        )
        degraded_c = (True, "ModelUnavailable", message)
    else:
        degraded_c = (False, "AsExpected", "")
        pods = f"{total_ready}/{total_want} pods ready"
        ready_c = (all_ready, "Available" if all_ready else "PodsNotReady", pods)
        if rollout is not None and rollout.phase != Phase.STABLE:
            phase, reason = md_phase(rollout)
            message = rollout.message or reason
            if phase == "Degraded":
                degraded_c = (True, reason, message)
        elif paused and canaries:
            phase, message = "Paused", f"rollout of {', '.join(canaries)} is paused"
        elif canaries:
            phase, message = "Progressing", f"rolling out {', '.join(canaries)}; {pods}"
        elif all_ready:
            phase, message = "Healthy", pods
        else:
            phase, message = ("Pending" if total_ready == 0 else "Progressing"), pods
    settled = phase in ("Paused", "Degraded")
    progressing = phase in ("Progressing", "Pending") or (bool(canaries) and not settled)
    if phase == "Paused":
        prog_c = (False, "Paused", message)
    elif progressing:
        prog_c = (True, "NewRevision" if canaries else "PodsStarting", message)
    elif rollout is not None and rollout.phase == Phase.ROLLED_BACK and problem is None and not stuck:
        prog_c = (False, "RolledBack", message)
    else:
        prog_c = (False, "Complete" if phase == "Healthy" else "Stalled", message)

    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase,
        "message": message,
        "conditions": [
            condition("Ready", ready_c[0], ready_c[1], ready_c[2], generation, now, previous),
            condition("Progressing", prog_c[0], prog_c[1], prog_c[2], generation, now, previous),
            condition("Degraded", degraded_c[0], degraded_c[1], degraded_c[2], generation, now, previous),
        ],
        "canaryWeight": canary_weight if primary is not None and primary.canary is not None else 0,
        "ready": f"{total_ready}/{total_want}",
        "replicas": total_want,
        "readyReplicas": total_ready,
        "url": f"http://{stable_service_name(name)}.{meta['namespace']}.svc.cluster.local",
        "variants": variants,
    }
    if primary is not None:
        status["stableRevision"] = primary.stable
        if primary.canary is not None:
            status["canaryRevision"] = primary.canary
    if rollout is not None:
        status["rollout"] = rollout.to_status()
    return status


def condition_of(status: Mapping[str, Any], ctype: str) -> Mapping[str, Any]:
    """The condition of that type, or an empty mapping."""
    for c in status.get("conditions", []) or []:
        if c.get("type") == ctype:
            return dict(c)
    return {}
