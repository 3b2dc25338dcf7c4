"""scikit-learn estimators and pipelines stored with joblib or pickle."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdserve.errors import ModelLoadError
from mdserve.runtimes.base import Array, Model, ModelInfo, Task, TensorSpec, v2_datatype

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
INPUT_NAME = "input-0"


def _task_of(estimator: Any) -> Task:
    from sklearn.base import is_classifier, is_regressor

    if hasattr(estimator, "classes_") or is_classifier(estimator):
        return Task.CLASSIFICATION
    if is_regressor(estimator):
        return Task.REGRESSION
    return Task.OTHER


class SklearnModel(Model):
    """Calls `predict` (and `predict_proba` when asked) on a fitted estimator."""

    def __init__(self, estimator: Any) -> None:
        if not hasattr(estimator, "predict"):
            raise ModelLoadError(f"the pickled object ({type(estimator).__name__}) has no predict method")
        self.estimator = estimator
        n_features = int(getattr(estimator, "n_features_in_", -1))
        task = _task_of(estimator)
        classes = getattr(estimator, "classes_", None)
        class_labels = tuple(str(c) for c in classes) if classes is not None else ()
        predict_dtype = v2_datatype(np.asarray(classes).dtype) if classes is not None else "FP64"
        outputs = [TensorSpec(PREDICT, predict_dtype, (-1,))]
        if hasattr(estimator, PREDICT_PROBA) and classes is not None:
            outputs.append(TensorSpec(PREDICT_PROBA, "FP64", (-1, len(class_labels))))
        self.info = ModelInfo(
            format="sklearn",
            inputs=(TensorSpec(INPUT_NAME, "FP64", (-1, n_features)),),
            outputs=tuple(outputs),
            default_outputs=(PREDICT,),
            task=task,
            class_labels=class_labels,
            extra={"estimator": type(estimator).__name__},
        )

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        (features,) = inputs.values()
        result: dict[str, Array] = {}
        with warnings.catch_warnings():
            # Estimators fitted on DataFrames warn about missing feature names on every call.
            warnings.simplefilter("ignore", UserWarning)
            for name in outputs:
                if name == PREDICT:
                    result[name] = np.asarray(self.estimator.predict(features))
                elif name == PREDICT_PROBA:
                    result[name] = np.asarray(self.estimator.predict_proba(features))
        return result

    def targets(self, outputs: Mapping[str, Array]) -> Array | None:
        predicted = outputs.get(PREDICT)
        if predicted is None:
            if self.info.task is Task.CLASSIFICATION and PREDICT_PROBA in outputs:
                labels = np.asarray(self.info.class_labels, dtype=object)
                return np.asarray(labels[np.asarray(outputs[PREDICT_PROBA]).argmax(axis=1)])
            return None
        if self.info.task is Task.CLASSIFICATION:
            return predicted.astype(str).astype(object)
        if self.info.task is Task.REGRESSION:
            return predicted.astype(np.float64).reshape(predicted.shape[0], -1)[:, 0]
        return None

    def warmup_inputs(self) -> dict[str, Array]:
        n_features = self.info.inputs[0].shape[1]
        return {INPUT_NAME: np.zeros((1, max(n_features, 1)), dtype=np.float64)}


def load_sklearn(path: Path) -> SklearnModel:
    """Unpickle an estimator. The caller must have verified the artifact's hash (or the user opted
    into trusting it): unpickling executes code from the file."""
    import joblib

    try:
        estimator = joblib.load(path)
    except Exception as exc:  # any unpickling failure means a corrupt or incompatible artifact
        raise ModelLoadError(f"cannot unpickle {path.name}: {type(exc).__name__}: {exc}") from exc
    return SklearnModel(estimator)
