"""Which pods of bridged Deployments the bridge makes Ready, and the status patches that do it.

Only pods annotated `devcluster.modeldeploy.dev/readiness: bridge` (kwok_readiness.py) are touched; kwok
leaves them Running but not Ready. A pod is Ready when it belongs to the Deployment's current ReplicaSet
and the Deployment's process answers its readiness probe. Pods of an older template are never made Ready
by the new process (the old process that served them is gone: they are NotReady, which is the truth).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from devcluster.bridge_spec import Key, Obj
from devcluster.kwok_readiness import BRIDGE_VALUE, READINESS_ANNOTATION

log = logging.getLogger("devcluster.bridge")

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
READY_TYPES = ("Ready", "ContainersReady")


def _key(obj: Obj) -> Key:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def _controller(obj: Obj, kind: str) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return str(ref["name"])
    return None


def current_hashes(deployments: Iterable[Obj], replicasets: Iterable[Obj]) -> dict[Key, str]:
    """Deployment -> pod-template-hash of its current ReplicaSet (same revision annotation). Missing while
    the Deployment controller has not caught up with the latest template (observedGeneration behind)."""
    wanted: dict[Key, str] = {}
    for dep in deployments:
        meta, status = dep["metadata"], dep.get("status") or {}
        if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 1):
            continue
        revision = (meta.get("annotations") or {}).get(REVISION)
        if revision:
            wanted[_key(dep)] = revision
    out: dict[Key, str] = {}
    for rs in replicasets:
        owner = _controller(rs, "Deployment")
        if owner is None:
            continue
        key = (rs["metadata"].get("namespace", ""), owner)
        meta = rs["metadata"]
        hash_ = (meta.get("labels") or {}).get(HASH_LABEL)
        if hash_ and key in wanted and (meta.get("annotations") or {}).get(REVISION) == wanted[key]:
            out[key] = hash_
    return out


def bridged(pod: Obj) -> bool:
    """The bridge decides this pod's readiness, and kwok has started it (Running, with an IP)."""
    meta, status = pod["metadata"], pod.get("status") or {}
    return ((meta.get("annotations") or {}).get(READINESS_ANNOTATION) == BRIDGE_VALUE
            and not meta.get("deletionTimestamp") and status.get("phase") == "Running"
            and bool(status.get("podIP")))


def desired_readiness(pods: Iterable[Obj], replicasets: Iterable[Obj], hashes: Mapping[Key, str],
                      ready: Mapping[Key, bool]) -> dict[Key, bool]:
    """Bridged pod -> whether it should be Ready. `ready`: Deployment -> its process answers the probe.
    Pods of Deployments the bridge does not run (no process, another selector) are not Ready."""
    rs_owner = {_key(rs): owner for rs in replicasets if (owner := _controller(rs, "Deployment"))}
    out: dict[Key, bool] = {}
    for pod in pods:
        if not bridged(pod):
            continue
        ns = pod["metadata"].get("namespace", "")
        rs = _controller(pod, "ReplicaSet")
        dep = (ns, rs_owner[(ns, rs)]) if rs and (ns, rs) in rs_owner else None
        current = dep is not None and hashes.get(dep) == (pod["metadata"].get("labels") or {}).get(HASH_LABEL)
        out[_key(pod)] = bool(dep and current and ready.get(dep))
    return out


def is_ready(pod: Obj) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def ready_patch(pod: Obj, ready: bool, now: datetime.datetime) -> Obj | None:
    """The status patch that makes the pod (not) Ready as a kubelet reports it, None when it already is.
    lastTransitionTime moves only on a transition; containerStatuses go whole (the list has no merge key)."""
    status = pod.get("status") or {}
    value = "True" if ready else "False"
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    containers: list[Obj] = [dict(c) for c in status.get("containerStatuses") or []]
    stale_conds = [t for t in READY_TYPES if (conds.get(t) or {}).get("status") != value]
    stale_containers = [c for c in containers if bool(c.get("ready")) != ready]
    if not stale_conds and not stale_containers:
        return None
    patch: Obj = {"conditions": [
        {"type": t, "status": value, "lastTransitionTime": stamp,
         **({} if ready else {"reason": "ContainersNotReady"})} for t in stale_conds]}
    if stale_containers:
        for c in containers:
            c["ready"] = ready
        patch["containerStatuses"] = containers
    return {"status": patch}


class PodStatusWriter:
    """Patches pod readiness through the API, once per change: a patch already sent for a pod's current
    resourceVersion is not sent again while the watch has not delivered its result."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self._sent: dict[Key, tuple[str, bool]] = {}

    def sync(self, pods: Iterable[Obj], want: Mapping[Key, bool]) -> int:
        """Patch every pod of `want` whose status differs; the number of patches sent."""
        from kubernetes.client.exceptions import ApiException

        now = datetime.datetime.now(datetime.UTC)
        sent = 0
        by_key = {_key(p): p for p in pods}
        self._sent = {k: v for k, v in self._sent.items() if k in by_key}
        for key, ready in want.items():
            pod = by_key[key]
            version = str(pod["metadata"].get("resourceVersion", ""))
            patch = ready_patch(pod, ready, now)
            if patch is None or self._sent.get(key) == (version, ready):
                continue
            try:
                self._core.patch_namespaced_pod_status(
                    key[1], key[0], patch, _content_type="application/strategic-merge-patch+json",
                    _request_timeout=10)
            except ApiException as exc:
                if exc.status != 404:  # a deleted pod needs nothing; anything else is retried next round
                    log.warning("%s/%s: readiness patch failed: %s %s", *key, exc.status, exc.reason)
                continue
            self._sent[key] = (version, ready)
            sent += 1
            log.info("%s/%s: %s", *key, "Ready" if ready else "not Ready")
        return sent
