"""Real, tiny scikit-learn models for the end-to-end tests, the demo and the rollout benchmark.

Iris ships inside scikit-learn, so nothing is downloaded. Each model is a genuine fitted estimator that
`mdserve` loads like any other joblib artifact:

- `good` (v1, v3): LogisticRegression, about 97% accurate on iris;
- `faulty` (a "high error rate" v2): a Pipeline whose first stage raises `FeatureLookupError` (a server-side
  fault, so mdserve answers 500 and `code="500"` counts for `error-rate`) for every row whose petal length
  is over 2.5 cm, i.e. two thirds of iris; it passes mdserve's warm-up (zeros) and answers setosa rows;
- `wrong` (a "fast but wrong" v2'): LogisticRegression fitted on shuffled labels: answers 200 as fast as
  v1, but only about a third of its answers are right; only feedback shows it.

The faulty stage lives in this module, so the model server process imports it (devcluster is installed in
the virtualenv next to mdserve).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

Kind = Literal["good", "faulty", "wrong"]
PETAL_LENGTH = 2
FAULT_ABOVE = 2.5


class FeatureLookupError(RuntimeError):
    """What a model that depends on a broken feature lookup raises at predict time."""


def flaky_feature_lookup(features: Any) -> Any:
    """Identity on rows with a short petal; raises on a batch holding any other row (a server-side fault)."""
    rows = np.asarray(features, dtype=np.float64)
    if rows.ndim == 2 and rows.shape[1] > PETAL_LENGTH and bool((rows[:, PETAL_LENGTH] > FAULT_ABOVE).any()):
        raise FeatureLookupError("feature store lookup failed for the long-petal segment")
    return rows


@dataclass(frozen=True)
class ModelArtifact:
    """A trained model file and what a ModelDeployment needs to serve it."""

    kind: Kind
    version: str
    path: Path
    sha256: str

    @property
    def uri(self) -> str:
        return f"file://{self.path}"


def iris() -> tuple[Any, Any]:
    """(features, labels) of the iris data set, bundled with scikit-learn."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, y


def _fit(kind: Kind, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = iris()
    if kind == "good":
        return LogisticRegression(max_iter=500, C=1.0 + seed).fit(x, y)
    if kind == "wrong":
        shuffled = np.random.default_rng(seed).permutation(y)
        return LogisticRegression(max_iter=500).fit(x, shuffled)
    pipeline = Pipeline([("lookup", FunctionTransformer(None)), ("clf", LogisticRegression(max_iter=500))])
    pipeline.fit(x, y)
    # Fitted with a pass-through first stage (fitting must not fail); the lookup is what production runs.
    pipeline.set_params(lookup=FunctionTransformer(flaky_feature_lookup))
    pipeline.named_steps["lookup"].fit(x)
    return pipeline


def train(kind: Kind, version: str, workdir: Path, seed: int = 0) -> ModelArtifact:
    """Fit a model of `kind` and store it as `<workdir>/iris-<version>/model.joblib`."""
    import joblib

    path = workdir / f"iris-{version}" / "model.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(_fit(kind, seed), path)
    return ModelArtifact(kind, version, path, hashlib.sha256(path.read_bytes()).hexdigest())


def accuracy(artifact: ModelArtifact) -> float:
    """Offline accuracy on iris (rows the model fails on count as wrong)."""
    import joblib

    model = joblib.load(artifact.path)
    x, y = iris()
    correct = 0
    for row, label in zip(x, y, strict=True):
        with contextlib.suppress(FeatureLookupError):
            correct += int(model.predict(row.reshape(1, -1))[0] == label)
    return correct / len(y)
