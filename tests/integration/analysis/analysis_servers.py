"""A real model server process (`python -m mdserve serve`) serving the iris model as one revision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from devcluster.procs import free_port
from mdserve.sources import sha256_file


class ModelServer:
    """One `mdserve serve` process serving the iris model as one revision."""

    def __init__(self, artifact: Path, revision: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.revision = revision
        self.log_path = log
        env = {
            **os.environ,
            "MDSERVE_MODEL_NAME": "iris",
            "MDSERVE_MODEL_URI": str(artifact),
            "MDSERVE_MODEL_SHA256": sha256_file(artifact),
            "MDSERVE_VARIANT": "primary",
            "MDSERVE_REVISION": revision,
            "MDSERVE_HOST": "127.0.0.1",
            "MDSERVE_HTTP_PORT": str(self.port),
            "MDSERVE_CACHE_DIR": str(log.parent / f"cache-{revision}"),
        }
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mdserve", "serve"], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.base}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready: {self.log_path.read_text()[-2000:]}")

    def predict(self, row: list[float], request_id: str) -> Any:
        r = requests.post(
            f"{self.base}/v1/models/iris:predict",
            json={"instances": [row]},
            headers={"x-request-id": request_id},
            timeout=30,
        )
        r.raise_for_status()
        return r.json()["predictions"][0]

    def feedback(self, items: list[dict[str, Any]]) -> None:
        r = requests.post(f"{self.base}/v1/models/iris:feedback", json=items, timeout=30)
        r.raise_for_status()
        assert {x["status"] for x in r.json()["results"]} == {"scored"}

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
