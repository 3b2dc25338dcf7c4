"""TensorFlow, Keras and TFLite runtimes on a tiny untrained MLP (fixed seed): outputs must match
Keras itself. In-process, but it imports TensorFlow (seconds), so it lives with the slow tests."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import keras
import numpy as np
import orjson
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    directory = tmp_path_factory.mktemp("tf")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,), name="features"), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    model.save(directory / "mlp.keras")
    model.export(str(directory / "saved"), verbose=False)
    return model, directory / "mlp.keras", directory / "saved"


ROWS = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)


def test_keras_and_saved_model_match_keras(mlp: tuple[Any, Path, Path]) -> None:
    from mdserve.runtimes.base import Task
    from mdserve.runtimes.tensorflow import load_tensorflow

    model, keras_file, saved = mlp
    expected = np.asarray(model(ROWS, training=False))
    for runtime in (load_tensorflow(keras_file), load_tensorflow(saved)):
        (spec,) = runtime.info.inputs
        assert spec.shape == (-1, 4) and spec.datatype == "FP32"
        assert runtime.info.task is Task.CLASSIFICATION
        result = runtime.predict({spec.name: ROWS}, list(runtime.info.default_outputs))
        assert np.allclose(result["output_0"], expected, atol=1e-5)
        targets = runtime.targets(result)
        assert targets is not None and targets.tolist() == [str(i) for i in expected.argmax(axis=1)]


def test_tflite_variants_resize_and_run_per_thread(mlp: tuple[Any, Path, Path]) -> None:
    from mdserve.quantize.convert import tensorflow_to_tflite
    from mdserve.runtimes.tflite import TFLiteModel

    model, _, saved = mlp
    expected = np.asarray(model(ROWS, training=False))
    for mode in ("float32", "dynamic", "int8"):
        runtime = TFLiteModel(tensorflow_to_tflite(saved, mode, ROWS))
        assert [s.name for s in runtime.info.inputs] == ["features"]
        assert [s.name for s in runtime.info.outputs] == ["output_0"]
        one = runtime.predict({"features": ROWS[:1]}, ["output_0"])["output_0"]
        many = runtime.predict({"features": ROWS}, ["output_0"])["output_0"]
        tolerance = 1e-5 if mode == "float32" else 0.3
        assert many.shape == (5, 3) and np.allclose(many, expected, atol=tolerance)
        assert np.allclose(one[0], many[0], atol=tolerance)
    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(runtime.predict({"features": ROWS}, ["output_0"]))
    )
    thread.start()
    thread.join()
    assert np.allclose(results[0]["output_0"], many)


def test_dataplane_serves_a_keras_model_over_v1(mlp: tuple[Any, Path, Path]) -> None:
    from mdserve.dataplane import DataPlane
    from mdserve.feedback import FeedbackStore
    from mdserve.metrics import ServerMetrics
    from mdserve.runtimes.tensorflow import load_tensorflow

    model, keras_file, _ = mlp
    plane = DataPlane("mlp", "1", ServerMetrics("mlp", "1", "d", "0"), FeedbackStore(10))
    plane.install(load_tensorflow(keras_file))
    body = orjson.dumps({"instances": ROWS.tolist()})
    predictions = np.asarray(
        orjson.loads(asyncio.run(plane.predict_v1("mlp", None, body, "r")))["predictions"]
    )
    assert np.allclose(predictions, np.asarray(model(ROWS, training=False)), atol=1e-5)
