"""Readiness probing of bridged processes, as a kubelet does it for a container's readinessProbe.

`Readiness` is the pure state machine (thresholds); `Prober` runs it in a thread against one Deployment's
process. Time is compressed for tests: probes run every `period` (default 0.25 s) whatever the probe's
periodSeconds says, and initialDelaySeconds is ignored; the thresholds are the container's.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("devcluster.bridge")

PROBE_PERIOD = 0.25
"""Seconds between two probes of one process."""


@dataclass
class Readiness:
    """Kubelet semantics: not ready at start; ready after `success_threshold` successes in a row, not ready
    again after `failure_threshold` failures in a row; a container that is not running is not ready."""

    failure_threshold: int = 3
    success_threshold: int = 1
    ready: bool = False
    successes: int = 0
    """Successes in a row (while not ready)."""
    failures: int = 0
    """Failures in a row (while ready)."""

    def observe(self, ok: bool) -> bool:
        """Record one probe result; True when `ready` changed."""
        if ok:
            self.failures = 0
            self.successes += 1
            if not self.ready and self.successes >= max(1, self.success_threshold):
                self.ready = True
                return True
            return False
        self.successes = 0
        self.failures += 1
        if self.ready and self.failures >= max(1, self.failure_threshold):
            self.ready = False
            return True
        return False

    def reset(self) -> bool:
        """The container stopped (or a new one started): not ready at once; True when `ready` changed."""
        changed = self.ready
        self.ready, self.successes, self.failures = False, 0, 0
        return changed


@dataclass(frozen=True)
class ProbeTarget:
    """The running process to probe."""

    pid: int
    url: str | None
    """`http://127.0.0.1:<port><readiness path>`; None without an httpGet readiness probe: a kubelet then
    reports the container ready once it runs."""
    failure_threshold: int = 3
    success_threshold: int = 1
    timeout: float = 1.0


def probe(url: str, timeout: float) -> bool:
    """An httpGet probe: any status in 200..399 is a success; no answer in time is a failure."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 400
    except urllib.error.HTTPError as exc:
        return 200 <= exc.code < 400
    except (OSError, ValueError):
        return False


class Prober:
    """Probes whatever `target()` says runs now for one Deployment; `on_change` wakes the bridge."""

    def __init__(self, name: str, target: Callable[[], ProbeTarget | None], on_change: Callable[[], None],
                 period: float = PROBE_PERIOD) -> None:
        self.name = name
        self._target = target
        self._on_change = on_change
        self._period = period
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._readiness = Readiness()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-{name}", daemon=True)

    def start(self) -> Prober:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def ready_pid(self) -> int | None:
        """The pid of the process found ready, None when it is not (or nothing runs)."""
        with self._lock:
            return self._pid if self._readiness.ready else None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # keep probing: a bug here must not freeze readiness silently
                log.exception("%s: readiness probe failed", self.name)
            self._stop.wait(self._period)

    def _step(self) -> None:
        target = self._target()
        with self._lock:
            pid = target.pid if target else None
            changed = False
            if pid != self._pid:
                changed = self._readiness.reset()
                self._pid = pid
                if target is not None:
                    self._readiness = Readiness(target.failure_threshold, target.success_threshold)
        if changed:
            self._on_change()
        if target is None:
            return
        ok = probe(target.url, target.timeout) if target.url else True
        with self._lock:
            if self._pid != target.pid:  # restarted meanwhile: this result is about the old process
                return
            changed = self._readiness.observe(ok)
        if changed:
            log.info("%s: pid %d %s", self.name, target.pid, "ready" if ok else "not ready")
            self._on_change()
