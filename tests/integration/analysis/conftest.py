"""Fixtures of the analysis integration tests: real model servers on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

# analysis_servers.py sits here; import mode "importlib" does not put this directory on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
from analysis_servers import ModelServer


@pytest.fixture(scope="module")
def iris_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    features, labels = load_iris(return_X_y=True)
    path = tmp_path_factory.mktemp("iris") / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), path)
    return path


@pytest.fixture(scope="module")
def servers(
    iris_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ModelServer]]:
    logs = tmp_path_factory.mktemp("logs")
    started = {rev: ModelServer(iris_artifact, rev, logs / f"{rev}.log") for rev in ("stable01", "canary01")}
    try:
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.close()
