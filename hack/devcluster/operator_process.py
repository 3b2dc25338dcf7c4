"""The operator run as a local process against a cluster, as in the demo and the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from devcluster.procs import free_port


class OperatorProcess:
    """`python -m modeldeploy` with its own health and metrics ports; logs to a file."""

    def __init__(self, kubeconfig: Path, log_file: Path, env: dict[str, str] | None = None,
                 namespaces: list[str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log_file = log_file
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "MODELDEPLOY_HEALTH_PORT": str(self.health_port),
            "MODELDEPLOY_METRICS_PORT": str(self.metrics_port),
            "MODELDEPLOY_LOG_FORMAT": "text",
            "MODELDEPLOY_NAMESPACES": ",".join(namespaces or []),
            **(env or {}),
        }
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 60) -> OperatorProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "modeldeploy", "--kubeconfig", str(self.kubeconfig)],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the operator exited ({self._proc.returncode}); see {self.log_file}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"the operator did not report healthy in {timeout:.0f}s; see {self.log_file}")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean-up runs."""
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
