"""Tiny models trained at fixture time (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from mdserve.runtimes.sklearn import SklearnModel


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: real processes on loopback, no cluster")


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    features, labels = load_iris(return_X_y=True)
    return features, labels


@pytest.fixture(scope="session")
def iris_estimator(iris: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]) -> LogisticRegression:
    features, labels = iris
    return LogisticRegression(max_iter=500).fit(features, labels)


@pytest.fixture(scope="session")
def iris_model(iris_estimator: LogisticRegression) -> SklearnModel:
    return SklearnModel(iris_estimator)


@pytest.fixture(scope="session")
def regression_model() -> SklearnModel:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 3))
    target = features @ np.array([1.0, -2.0, 0.5]) + 3.0
    return SklearnModel(LinearRegression().fit(features, target))


@pytest.fixture()
def iris_file(tmp_path: Path, iris_estimator: LogisticRegression) -> Path:
    path = tmp_path / "model.joblib"
    joblib.dump(iris_estimator, path)
    return path
