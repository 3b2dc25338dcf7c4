"""One supervised local process: start, crash-restart with back-off (like CrashLoopBackOff), graceful stop.

Failures are never hidden: a process that keeps crashing keeps being reported as `backoff` with its exit
code and restart count, exactly as a crash-looping pod would be.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from devcluster.bridge_spec import ProcessSpec

log = logging.getLogger("devcluster.bridge")

State = Literal["running", "backoff", "stopped", "error"]
STABLE_AFTER = 30.0
"""A process that ran this long before crashing restarts with the initial back-off again."""


@dataclass(frozen=True)
class ProcessStatus:
    """A snapshot of one bridged Deployment's process, for tests and the demo."""

    namespace: str
    """Namespace of the Deployment."""
    name: str
    """Name of the Deployment."""
    state: State
    """`running`; `backoff` (exited, restart pending); `stopped`; `error` (template cannot run locally)."""
    pid: int | None
    """Pid while running."""
    port: int | None
    """Loopback port it listens on (kept across restarts)."""
    restarts: int
    """Restarts after a crash (not after a template change)."""
    last_exit_code: int | None
    """Exit code of the last crash (negative: killed by that signal)."""
    template_hash: str
    """Spec digest the process was started from."""
    log_path: Path | None
    """Its stdout+stderr, appended across restarts."""
    message: str = ""
    """Why it is in `backoff` or `error`."""
    readiness_path: str | None = None
    """HTTP path of the container's readiness probe."""
    ready: bool = False
    """The bridge's readiness probe passes (its pods are Ready); set by the bridge, not the process."""

    @property
    def url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port else None


class ManagedProcess:
    """Runs `spec` on `port`; `tick()` notices crashes and restarts after the back-off."""

    def __init__(self, spec: ProcessSpec, port: int, log_path: Path, cwd: Path, base_env: dict[str, str],
                 backoff: tuple[float, float], max_grace: float) -> None:
        self.spec = spec
        self.port = port
        self.log_path = log_path
        self.cwd = cwd
        self.base_env = base_env
        self.backoff_initial, self.backoff_max = backoff
        self.max_grace = max_grace
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.message = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._crashes_in_a_row = 0
        self._restart_at: float | None = None

    def start(self) -> None:
        argv, env = self.spec.launch(self.port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            out.write(f"\n=== bridge: {time.strftime('%H:%M:%S')} start {' '.join(argv)} "
                      f"(port {self.port}, template {self.spec.template_hash})\n".encode())
            out.flush()
            try:
                # Own session: stop() signals the whole process group, so no grandchild outlives its
                # Deployment, and a Ctrl-C meant for the bridge reaches the processes only through stop().
                self._proc = subprocess.Popen(argv, env={**self.base_env, **env}, cwd=self.cwd, stdout=out,
                                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              start_new_session=True)
            except OSError as exc:  # not executable, cwd gone ...: a crash like any other, retried later
                self._schedule_restart(time.monotonic(), 0.0, None, f"cannot start: {exc}")
                return
        self._started_at = time.monotonic()
        self._restart_at = None
        log.info("%s/%s: started pid %d on 127.0.0.1:%d", *self.spec.key, self._proc.pid, self.port)

    def tick(self, now: float) -> bool:
        """Notice an exit or restart after the back-off; True when the state changed."""
        if self._proc is not None and self._proc.poll() is not None:
            code, ran = self._proc.returncode, now - self._started_at
            self._proc = None
            self._schedule_restart(now, ran, code, f"exited with code {code} after {ran:.1f}s")
            return True
        if self._proc is None and self._restart_at is not None and now >= self._restart_at:
            self.restarts += 1
            self.start()
            return True
        return False

    def _schedule_restart(self, now: float, ran: float, code: int | None, why: str) -> None:
        self._crashes_in_a_row = 0 if ran >= STABLE_AFTER else self._crashes_in_a_row
        delay = min(self.backoff_max, self.backoff_initial * 2 ** self._crashes_in_a_row)
        self._crashes_in_a_row += 1
        self.last_exit_code = code
        self._restart_at = now + delay
        self.message = f"{why}; restarting in {delay:.1f}s"
        log.warning("%s/%s: %s (log: %s)", *self.spec.key, self.message, self.log_path)

    def signal_stop(self) -> None:
        """Send SIGTERM to the process group; `wait_stopped` finishes the job."""
        self._restart_at = None
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGTERM)

    def wait_stopped(self) -> None:
        """Wait up to the grace period, then SIGKILL the group; reaps the process."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        grace = min(self.spec.grace_seconds, self.max_grace)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("%s/%s: pid %d ignored SIGTERM for %.0fs: SIGKILL", *self.spec.key, proc.pid, grace)
        # Also catches children left in the group after the leader exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.info("%s/%s: stopped pid %d", *self.spec.key, proc.pid)

    def stop(self) -> None:
        self.signal_stop()
        self.wait_stopped()

    def status(self) -> ProcessStatus:
        running = self._proc is not None and self._proc.poll() is None
        exited = self._proc is not None and not running  # crashed, not yet noticed by tick()
        state: State = "running" if running else (
            "backoff" if exited or self._restart_at is not None else "stopped")
        return ProcessStatus(self.spec.namespace, self.spec.name, state,
                             self._proc.pid if running and self._proc else None, self.port, self.restarts,
                             self.last_exit_code, self.spec.template_hash, self.log_path,
                             "" if running else self.message, self.spec.readiness_path)
