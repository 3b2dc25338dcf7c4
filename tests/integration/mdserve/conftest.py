"""Start the real server (`python -m mdserve serve`) as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mdserve.sources import sha256_file


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: real processes on loopback, no cluster")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One `mdserve serve` process; its combined output goes to `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {
            **os.environ,
            "MDSERVE_HOST": "127.0.0.1",
            "MDSERVE_HTTP_PORT": str(self.port),
            "MDSERVE_CACHE_DIR": str(log_path.parent / "cache"),
            **env,
        }
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mdserve", "serve"],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.base}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.log()}")

    def wait_exit(self, timeout: float = 120.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running after {timeout} s:\n{self.log()}") from None

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture()
def start_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: `start_server(env) -> ServerProcess`; every process is stopped at teardown."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str]) -> ServerProcess:
        server = ServerProcess(env, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture(scope="session")
def iris_data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    features, labels = load_iris(return_X_y=True)
    return features, labels


@pytest.fixture(scope="session")
def iris_artifact(
    tmp_path_factory: pytest.TempPathFactory, iris_data: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]
) -> tuple[Path, str]:
    """A LogisticRegression trained on iris, saved with joblib, and its sha256."""
    features, labels = iris_data
    path = tmp_path_factory.mktemp("iris") / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), path)
    return path, sha256_file(path)


def iris_env(artifact: tuple[Path, str], **extra: str) -> dict[str, str]:
    path, sha = artifact
    return {
        "MDSERVE_MODEL_NAME": "iris",
        "MDSERVE_MODEL_URI": str(path),
        "MDSERVE_MODEL_SHA256": sha,
        **extra,
    }
