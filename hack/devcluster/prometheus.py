"""A real Prometheus server on loopback with a scrape config of the caller's choosing (tests, demo)."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from devcluster.procs import free_port


class PrometheusMissing(RuntimeError):
    """The prometheus binary is not installed."""


@dataclass
class ScrapeTarget:
    """One scrape job: static targets, and/or targets Prometheus discovers from a file_sd JSON file."""

    job: str
    """Job label."""
    targets: list[str]
    """host:port addresses on loopback."""
    labels: dict[str, str] = field(default_factory=dict)
    """Extra target labels (e.g. namespace, variant)."""
    file_sd: Path | None = None
    """A file_sd JSON file (e.g. the pod bridge's); Prometheus re-reads it by itself when it changes."""
    honor_labels: bool = False
    """Keep the scraped series' own labels (variant, revision ...) over clashing target labels."""


def _job(t: ScrapeTarget) -> dict[str, object]:
    job: dict[str, object] = {
        "job_name": t.job, "static_configs": [{"targets": t.targets, "labels": t.labels}],
    }
    if t.file_sd is not None:
        # inotify picks changes up at once; the refresh interval is the fallback.
        job["file_sd_configs"] = [{"files": [str(t.file_sd)], "refresh_interval": "5s"}]
    if t.honor_labels:
        job["honor_labels"] = True
    return job


def scrape_config(targets: list[ScrapeTarget], interval: str) -> dict[str, object]:
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [_job(t) for t in targets],
    }


class PrometheusServer:
    """Start with `with PrometheusServer([...]) as prom:`; `prom.url` is its HTTP API."""

    def __init__(self, targets: list[ScrapeTarget], interval: str = "1s", binary: str | None = None,
                 basic_auth: tuple[str, str] | None = None) -> None:
        """`basic_auth`: (user, password) every HTTP request must carry (Prometheus' --web.config.file)."""
        found = binary or shutil.which("prometheus")
        if not found:
            raise PrometheusMissing(
                "prometheus is not installed: run `make system-deps` (Debian package prometheus)")
        self.binary = found
        self.targets = targets
        self.interval = interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="prom-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self.basic_auth = basic_auth
        self._headers: dict[str, str] = {}
        if basic_auth is not None:
            pair = base64.b64encode(":".join(basic_auth).encode()).decode()
            self._headers["Authorization"] = f"Basic {pair}"

    def _open(self, url: str, method: str = "GET", timeout: float = 10) -> Any:
        request = urllib.request.Request(url, method=method, headers=self._headers)
        return urllib.request.urlopen(request, timeout=timeout)

    def _web_flags(self) -> list[str]:
        if self.basic_auth is None:
            return []
        import bcrypt  # a dev dependency: only tests of authenticated access need it

        user, password = self.basic_auth
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        web = self._dir / "web.yml"
        web.write_text(yaml.safe_dump({"basic_auth_users": {user: hashed}}))
        return [f"--web.config.file={web}"]

    def start(self, timeout: float = 60) -> PrometheusServer:
        cfg = self._dir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(scrape_config(self.targets, self.interval)))
        log = (self._dir / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [self.binary, f"--config.file={cfg}", f"--storage.tsdb.path={self._dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
             "--storage.tsdb.retention.time=1h", *self._web_flags()],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self._dir / 'prometheus.log').read_text()[-2000:]}")
            try:
                with self._open(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("prometheus did not become ready")

    def reload(self, targets: list[ScrapeTarget]) -> None:
        """Swap the scrape targets without a restart (the lifecycle API)."""
        self.targets = targets
        (self._dir / "prometheus.yml").write_text(yaml.safe_dump(scrape_config(targets, self.interval)))
        self._open(f"{self.url}/-/reload", method="POST").close()

    def query(self, promql: str) -> list[dict[str, object]]:
        """Instant query; returns the `result` vector."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with self._open(url) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise RuntimeError(f"query failed: {body}")
        result: list[dict[str, object]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
