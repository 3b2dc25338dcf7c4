"""Worker threads that drain the work queue through the Reconciler, plus the periodic resync.

Kopf's watch handlers only enqueue `(namespace, name)`; the blocking Kubernetes client runs here, in threads,
so
the asyncio loop never blocks. The resync is a plain thread rather than a kopf timer, because timers add a
finalizer to every object (deletion would hang while the operator is down).
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from typing import Any

from modeldeploy import metrics
from modeldeploy.kube.client import ApiError, KubeClient
from modeldeploy.reconciler import Reconciler
from modeldeploy.workqueue import WorkQueue

log = logging.getLogger("modeldeploy.controller")


def watched(namespace: str, patterns: tuple[str, ...]) -> bool:
    """Kopf's namespace semantics: empty = all; globs; `!pattern` excludes."""
    if not patterns:
        return True
    included = [p for p in patterns if not p.startswith("!")]
    excluded = [p[1:] for p in patterns if p.startswith("!")]
    if any(fnmatch.fnmatchcase(namespace, p) for p in excluded):
        return False
    return not included or any(fnmatch.fnmatchcase(namespace, p) for p in included)
Key = tuple[str, str]


class Controller:
    def __init__(
        self,
        reconciler: Reconciler,
        kube: KubeClient,
        *,
        workers: int,
        resync_seconds: float,
        namespaces: tuple[str, ...] = (),
    ) -> None:
        self.reconciler = reconciler
        self.kube = kube
        self.queue: WorkQueue[Key] = WorkQueue()
        self.workers = workers
        self.resync_seconds = resync_seconds
        self.namespaces = namespaces
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.heartbeats: dict[str, float] = {}
        """Worker name -> monotonic time of its last loop; the liveness probe reads it."""

    def enqueue(self, namespace: str, name: str) -> None:
        self.queue.add((namespace, name))
        metrics.QUEUE_DEPTH.set(len(self.queue))

    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"reconcile-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._resync, name="resync", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.queue.shutdown()
        for t in self._threads:
            t.join(timeout)

    def healthy(self, stale_after: float = 120.0) -> bool:
        """Every worker looped recently (a worker stuck in one reconcile for minutes means trouble)."""
        now = time.monotonic()
        alive = all(t.is_alive() for t in self._threads)
        return alive and all(now - beat < stale_after for beat in self.heartbeats.values())

    def _work(self) -> None:
        me = threading.current_thread().name
        while not self._stop.is_set():
            self.heartbeats[me] = time.monotonic()
            key = self.queue.get(timeout=5.0)
            if key is None:
                continue
            metrics.QUEUE_DEPTH.set(len(self.queue))
            self._process(key)

    def _process(self, key: Key) -> None:
        start = time.perf_counter()
        metrics.WORKERS_BUSY.inc()
        try:
            outcome = self.reconciler.reconcile(*key)
        except Exception as e:
            # Logged and retried with backoff; one bad object never stops the others.
            delay = self.queue.retry(key)
            metrics.RECONCILES.labels("error").inc()
            metrics.RECONCILE_ERRORS.labels(type(e).__name__).inc()
            level = logging.INFO if isinstance(e, ApiError) and e.status == 409 else logging.WARNING
            log.log(
                level,
                "reconcile %s/%s failed, retrying in %.1fs: %s",
                *key,
                delay,
                e,
                exc_info=not isinstance(e, ApiError),
            )
        else:
            self.queue.forget(key)
            metrics.RECONCILES.labels("changed" if outcome.writes else "unchanged").inc()
            metrics.RECONCILE_WRITES.inc(outcome.writes)
            if outcome.writes:
                log.info("reconciled %s/%s: %d writes, phase %s", *key, outcome.writes, outcome.phase)
            if outcome.requeue_after is not None:
                self.queue.add_after(key, outcome.requeue_after)
        finally:
            metrics.WORKERS_BUSY.dec()
            metrics.RECONCILE_DURATION.observe(time.perf_counter() - start)
            self.queue.done(key)

    def _list_watched(self) -> list[dict[str, Any]]:
        """ModelDeployments in the watched namespaces (names or kopf-style globs such as `team-*`)."""
        if not self.namespaces or any(set(ns) & set("*?[!") for ns in self.namespaces):
            items = self.kube.list("ModelDeployment", None)
            return [md for md in items if watched(md["metadata"]["namespace"], self.namespaces)]
        return [md for ns in self.namespaces for md in self.kube.list("ModelDeployment", ns)]

    def _resync(self) -> None:
        """Re-enqueues every ModelDeployment periodically: a safety net for missed events (no writes if
        nothing
        changed)."""
        while not self._stop.wait(self.resync_seconds):
            try:
                for md in self._list_watched():
                    self.enqueue(md["metadata"]["namespace"], md["metadata"]["name"])
            except Exception as e:
                log.warning("resync listing failed: %s", e)
