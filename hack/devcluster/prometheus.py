"""A real Prometheus server on loopback with a scrape config of the caller's choosing (tests, demo)."""

from __future__ import annotations

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

    def __init__(self, targets: list[ScrapeTarget], interval: str = "1s", binary: str | None = None) -> None:
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

    def start(self, timeout: float = 60) -> PrometheusServer:
        cfg = self._dir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(scrape_config(self.targets, self.interval)))
        log = (self._dir / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [self.binary, f"--config.file={cfg}", f"--storage.tsdb.path={self._dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
             "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self._dir / 'prometheus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("prometheus did not become ready")

    def reload(self, targets: list[ScrapeTarget]) -> None:
        """Swap the scrape targets without a restart (the lifecycle API)."""
        self.targets = targets
        (self._dir / "prometheus.yml").write_text(yaml.safe_dump(scrape_config(targets, self.interval)))
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def query(self, promql: str) -> list[dict[str, object]]:
        """Instant query; returns the `result` vector."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as resp:
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
