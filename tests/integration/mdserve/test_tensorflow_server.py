"""TensorFlow through the real server: a Keras MLP served directly, and int8-quantized at start-up."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import tritonclient.http as triton

from tests.integration.model_server import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Start = Callable[[dict[str, str]], ServerProcess]


@pytest.fixture(scope="module")
def keras_model(
    tmp_path_factory: pytest.TempPathFactory, iris_data: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]
) -> tuple[Path, Path]:
    """A tiny Keras MLP on standardized iris, trained in a child process (keeps TF out of pytest),
    plus an .npz sample (X, y) for calibration and agreement."""
    directory = tmp_path_factory.mktemp("keras")
    features, labels = iris_data
    scaled = ((features - features.mean(axis=0)) / features.std(axis=0)).astype(np.float32)
    sample = directory / "sample.npz"
    np.savez(sample, X=scaled, y=labels)
    script = f"""
import keras, numpy as np
data = np.load({str(sample)!r})
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((4,), name="features"), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(3, activation="softmax")])
model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
model.fit(data["X"], data["y"], epochs=40, batch_size=32, verbose=0)
model.save({str(directory / "mlp.keras")!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, capture_output=True)
    return directory / "mlp.keras", sample


def test_keras_model_over_v1_and_v2(start_server: Start, keras_model: tuple[Path, Path]) -> None:
    model_path, sample = keras_model
    server = start_server({"MDSERVE_MODEL_NAME": "mlp", "MDSERVE_MODEL_URI": str(model_path)})
    server.wait_ready()
    data = np.load(sample)
    rows = data["X"][::15]
    v1 = requests.post(f"{server.base}/v1/models/mlp:predict", json={"instances": rows.tolist()}, timeout=30)
    assert v1.status_code == 200
    probabilities = np.asarray(v1.json()["predictions"])
    assert probabilities.shape == (len(rows), 3)
    assert np.mean(probabilities.argmax(axis=1) == data["y"][::15]) >= 0.8
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    tensor = triton.InferInput("features", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    result = client.infer("mlp", [tensor]).as_numpy("output_0")
    assert result is not None and np.allclose(result, probabilities, atol=1e-5)
    wrong = requests.post(f"{server.base}/v1/models/mlp:predict", json={"instances": [[1, 2]]}, timeout=30)
    assert wrong.status_code == 400 and "[-1, 4]" in wrong.json()["error"]


def test_int8_quantization_at_startup(start_server: Start, keras_model: tuple[Path, Path]) -> None:
    model_path, sample = keras_model
    server = start_server(
        {
            "MDSERVE_MODEL_NAME": "mlp",
            "MDSERVE_MODEL_URI": str(model_path),
            "MDSERVE_QUANTIZATION": "int8",
            "MDSERVE_QUANTIZATION_SAMPLE": str(sample),
            "MDSERVE_QUANTIZATION_MIN_AGREEMENT": "0.9",
        }
    )
    server.wait_ready()
    metadata = requests.get(f"{server.base}/v2/models/mlp", timeout=30).json()
    assert metadata["platform"] == "tflite"
    assert "agreement" in server.log()
    data = np.load(sample)
    response = requests.post(
        f"{server.base}/v1/models/mlp:predict", json={"instances": data["X"][::15].tolist()}, timeout=30
    )
    predicted = np.asarray(response.json()["predictions"]).argmax(axis=1)
    assert np.mean(predicted == data["y"][::15]) >= 0.8


def test_quantize_cli_refuses_below_threshold(keras_model: tuple[Path, Path], tmp_path: Path) -> None:
    model_path, sample = keras_model
    output = tmp_path / "mlp.tflite"
    command = [
        sys.executable,
        "-m",
        "mdserve",
        "quantize",
        str(model_path),
        "--mode",
        "float16",
        "--sample",
        str(sample),
        "--output",
        str(output),
    ]
    accepted = subprocess.run(
        [*command, "--min-agreement", "0.9"], capture_output=True, text=True, timeout=300
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "agreement" in accepted.stdout and output.stat().st_size > 0
    output.unlink()
    refused = subprocess.run(
        [*command, "--min-agreement", "1.0", "--tolerance", "0"], capture_output=True, text=True, timeout=300
    )
    # Classification agreement is exact arg-max equality, so demanding 1.0 only fails if a class flipped;
    # either way the outcome must be consistent with the printed agreement.
    if refused.returncode == 0:
        assert "agreement: 1.00000" in refused.stdout
    else:
        assert refused.returncode == 1 and "refusing" in refused.stderr and not output.exists()
