"""Start the real server (`python -m mdserve serve`) as a subprocess on a free loopback port.

`ServerProcess` lives in tests/integration/model_server.py (the analysis tests start it too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mdserve.sources import sha256_file
from tests.integration.model_server import ServerProcess


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: real processes on loopback, no cluster")


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
