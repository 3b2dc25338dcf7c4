"""Protocol-level tests against a real server process: tritonclient (V2), TF-Serving JSON (V1),
errors, request ids, metrics and feedback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.model_server import ServerProcess

from .conftest import iris_env

pytestmark = pytest.mark.integration

LABELS = {"model": "iris", "version": "4", "variant": "canary", "revision": "7"}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, iris_artifact: tuple[Path, str]
) -> Iterator[ServerProcess]:
    env = iris_env(
        iris_artifact,
        MDSERVE_MODEL_VERSION="4",
        MDSERVE_VARIANT="canary",
        MDSERVE_REVISION="7",
        MDSERVE_MAX_REQUEST_BYTES="20000",
    )
    process = ServerProcess(env, tmp_path_factory.mktemp("protocols") / "server.log")
    try:
        process.wait_ready()
        yield process
    finally:
        process.close()


def metric_values(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{server.base}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(values: dict[Any, float], name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted({**LABELS, **labels}.items()))), 0.0)


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_v2(server: ServerProcess, iris_data: tuple[Any, Any], binary: bool) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "4")
    metadata = client.get_model_metadata("iris")
    assert metadata["inputs"][0]["shape"] == [-1, 4] and metadata["versions"] == ["4"]
    features, labels = iris_data
    batch = features[::10].astype(np.float32)
    tensor = triton.InferInput("input-0", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=binary),
        triton.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = client.infer("iris", [tensor], outputs=outputs, model_version="4", request_id="triton-1")
    predicted = result.as_numpy("predict")
    assert predicted is not None and predicted.shape == (len(batch),)
    assert np.mean(predicted == labels[::10]) > 0.9
    proba = result.as_numpy("predict_proba")
    assert proba is not None and np.allclose(proba.sum(axis=1), 1.0)
    default = client.infer("iris", [tensor])  # no outputs named: tritonclient asks for binary outputs
    assert np.array_equal(default.as_numpy("predict"), predicted)


def test_v1_tf_serving_json(server: ServerProcess) -> None:
    url = f"{server.base}/v1/models/iris"
    status = requests.get(url, timeout=10).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert requests.get(f"{url}/metadata", timeout=10).json()["model_spec"]["version"] == "4"
    rows = requests.post(
        f"{url}:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1]]}, timeout=10
    )
    assert rows.status_code == 200 and rows.json() == {"predictions": [0, 2]}
    columns = requests.post(
        f"{url}/versions/4:predict",
        json={"inputs": [[6.9, 3.1, 5.4, 2.1]], "signature_name": "predict_proba"},
        timeout=10,
    )
    assert columns.status_code == 200 and int(np.argmax(columns.json()["outputs"][0])) == 2


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("post", "/v2/models/iris/infer", b"{not json", 400, "not valid JSON"),
        ("post", "/v2/models/iris/infer", b'{"inputs": []}', 400, "inputs"),
        (
            "post",
            "/v2/models/iris/infer",
            b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}',
            400,
            "[-1, 4]",
        ),
        (
            "post",
            "/v2/models/iris/infer",
            b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ["a", 2, 3, 4]}]}',
            400,
            "FP32",
        ),
        ("post", "/v2/models/nope/infer", b"{}", 404, "unknown model"),
        ("post", "/v2/models/iris/versions/9/infer", b"{}", 404, "no version"),
        ("post", "/v1/models/iris:predict", b'{"rows": []}', 400, "instances"),
        ("post", "/v2/models/iris/infer", b"[" + b"1," * 15000 + b"1]", 413, "20000"),
        ("get", "/v2/models/iris/infer", b"", 405, "POST"),
        ("get", "/v3/anything", b"", 404, "nothing is served"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(
    server: ServerProcess, method: str, path: str, body: bytes, status: int, fragment: str
) -> None:
    response = requests.request(method, server.base + path, data=body, timeout=10)
    assert response.status_code == status
    assert fragment in response.json()["error"]
    assert response.headers["x-request-id"]
    ok = requests.post(
        f"{server.base}/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}, timeout=10
    )
    assert ok.status_code == 200


def test_request_ids_and_feedback_drive_accuracy_counters(server: ServerProcess) -> None:
    before = metric_values(server)
    url = f"{server.base}/v1/models/iris:predict"
    setosa = requests.post(
        url, json={"instances": [[5.1, 3.5, 1.4, 0.2]]}, headers={"x-request-id": "fb-1"}, timeout=10
    )
    assert setosa.headers["x-request-id"] == "fb-1"
    pair = requests.post(url, json={"instances": [[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1]]}, timeout=10)
    generated = pair.headers["x-request-id"]
    assert generated and generated != "fb-1"
    feedback = requests.post(
        f"{server.base}/v1/models/iris:feedback",
        json=[
            {"request_id": "fb-1", "truth": 0},
            {"request_id": generated, "truth": [0, 1]},
            {"request_id": "x", "truth": 1},
        ],
        timeout=10,
    )
    assert feedback.status_code == 200
    assert [r["status"] for r in feedback.json()["results"]] == ["scored", "scored", "unknown"]
    again = requests.post(
        f"{server.base}/v1/models/iris:feedback", json={"request_id": "fb-1", "truth": 0}, timeout=10
    )
    assert again.status_code == 404 and "unknown" in again.json()["error"]
    after = metric_values(server)
    gained = {
        outcome: metric(after, "mdserve_feedback_total", outcome=outcome)
        - metric(before, "mdserve_feedback_total", outcome=outcome)
        for outcome in ("correct", "incorrect")
    }
    assert gained == {"correct": 2.0, "incorrect": 1.0}
    assert metric(after, "mdserve_predictions_total", **{"class": "2"}) > metric(
        before, "mdserve_predictions_total", **{"class": "2"}
    )


def test_metrics_cover_requests_latency_errors_and_model_info(server: ServerProcess) -> None:
    requests.post(f"{server.base}/v2/models/iris/infer", data=b"{", timeout=10)
    values = metric_values(server)
    assert metric(values, "mdserve_requests_total", protocol="v2", code="400") >= 1
    assert metric(values, "mdserve_errors_total", kind="bad_json") >= 1
    assert metric(values, "mdserve_request_duration_seconds_count", protocol="v1") >= 1
    assert metric(values, "mdserve_model_ready") == 1
    assert metric(values, "mdserve_model_load_seconds") > 0
    info = [key for key in values if key[0] == "mdserve_model_info"]
    assert len(info) == 1 and ("format", "sklearn") in info[0][1]
    buckets = [dict(key[1])["le"] for key in values if key[0] == "mdserve_request_duration_seconds_bucket"]
    assert "0.0001" in buckets and "10.0" in buckets
