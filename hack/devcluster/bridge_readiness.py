"""The kubelet-like half of the pod bridge: probes the processes, labels namespaces, patches pod readiness.

`PodReadiness` is driven by the bridge's reconcile loop: `track()` after the processes were (re)started,
`sync_pods()` with the informers' snapshots. Probers run in their own threads and wake the loop when a
process turns (not) ready, so a pod follows its process within a probe period or two.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from devcluster.bridge_pods import PodStatusWriter, current_hashes, desired_readiness
from devcluster.bridge_proc import ManagedProcess, ProcessStatus
from devcluster.bridge_ready import Prober, ProbeTarget
from devcluster.bridge_spec import Key, Obj
from devcluster.kwok_readiness import NAMESPACE_LABEL

log = logging.getLogger("devcluster.bridge")

RELABEL_AFTER = 5.0
"""Seconds before labelling a namespace that could not be labelled (not created yet) is tried again."""


class PodReadiness:
    """Probers of the bridged processes, the labels of the bridged namespaces and the pods' Ready status."""

    def __init__(self, core: Any, namespaces: list[str] | None, period: float,
                 wake: Callable[[], None]) -> None:
        self._core = core
        self._namespaces = namespaces
        self._period = period
        self._wake = wake
        self._writer = PodStatusWriter(core)
        self._probers: dict[Key, Prober] = {}
        self._lock = threading.Lock()
        self._targets: dict[Key, ProbeTarget] = {}
        self._retry_at: dict[str, float] = {}
        """Namespace -> when to try labelling it again; 0 once labelled."""

    def label_namespaces(self, seen: list[Obj]) -> None:
        """Label the bridged namespaces (all of `seen` when bridging every namespace) so the admission policy
        hands their modeldeploy pods' readiness to the bridge. Pods created before stay kwok-Ready."""
        from kubernetes.client.exceptions import ApiException

        now = time.monotonic()
        if self._namespaces:
            todo = [ns for ns in self._namespaces if (at := self._retry_at.get(ns)) is None or 0 < at <= now]
        else:
            todo = [o["metadata"]["name"] for o in seen
                    if (o["metadata"].get("labels") or {}).get(NAMESPACE_LABEL) != "true"
                    and not o["metadata"].get("deletionTimestamp")]
        for ns in todo:
            try:
                self._core.patch_namespace(ns, {"metadata": {"labels": {NAMESPACE_LABEL: "true"}}},
                                           _content_type="application/merge-patch+json", _request_timeout=10)
            except ApiException as exc:
                if ns not in self._retry_at:
                    log.warning("namespace %s: cannot label it %s=true yet (%s %s): pods created there "
                                "before it is are Ready at once", ns, NAMESPACE_LABEL, exc.status, exc.reason)
                self._retry_at[ns] = now + RELABEL_AFTER
                continue
            self._retry_at[ns] = 0.0

    def track(self, procs: Mapping[Key, ManagedProcess]) -> dict[Key, ProcessStatus]:
        """Start/stop probers to match `procs`; their statuses with `ready` filled in."""
        for key in [k for k in self._probers if k not in procs]:
            self._probers.pop(key).stop()
        for key in procs:
            if key not in self._probers:
                self._probers[key] = Prober(f"{key[0]}/{key[1]}", functools.partial(self._target, key),
                                            self._wake, self._period).start()
        statuses: dict[Key, ProcessStatus] = {}
        targets: dict[Key, ProbeTarget] = {}
        for key, proc in procs.items():
            s = proc.status()
            if s.pid is None or s.url is None:
                statuses[key] = s
                continue
            spec = proc.spec
            path = spec.readiness_path
            targets[key] = ProbeTarget(s.pid, s.url + path if path else None, spec.failure_threshold,
                                       spec.success_threshold, spec.probe_timeout)
            # Ready only for the pid the prober found ready: a restarted process starts not ready.
            statuses[key] = replace(s, ready=self._probers[key].ready_pid() == s.pid)
        with self._lock:
            self._targets = targets
        return statuses

    def sync_pods(self, deployments: list[Obj], pods: list[Obj], replicasets: list[Obj],
                  statuses: Mapping[Key, ProcessStatus]) -> None:
        want = desired_readiness(pods, replicasets, current_hashes(deployments, replicasets),
                                 {k: s.ready for k, s in statuses.items()})
        self._writer.sync(pods, want)

    def stop(self) -> None:
        """Stop probing. Pods keep their last readiness, as when a kubelet dies (until a node controller
        would notice)."""
        for prober in self._probers.values():
            prober.stop()
        self._probers.clear()

    def _target(self, key: Key) -> ProbeTarget | None:
        with self._lock:
            return self._targets.get(key)
