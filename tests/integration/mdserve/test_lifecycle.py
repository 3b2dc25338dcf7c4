"""Start-up failures, http(s) sources and graceful shutdown of the real server process."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import urllib3

from tests.integration.model_server import ServerProcess

from .conftest import iris_env

pytestmark = pytest.mark.integration

Start = Callable[[dict[str, str]], ServerProcess]


def test_hash_mismatch_is_never_ready_and_exits_non_zero(
    start_server: Start, iris_artifact: tuple[Path, str]
) -> None:
    server = start_server(iris_env(iris_artifact, MDSERVE_MODEL_SHA256="0" * 64))
    assert server.wait_exit() == 1
    assert "NOT READY" in server.log() and "sha256 mismatch" in server.log()


def test_unpinned_pickle_is_refused(start_server: Start, iris_artifact: tuple[Path, str]) -> None:
    server = start_server(iris_env(iris_artifact, MDSERVE_MODEL_SHA256=""))
    assert server.wait_exit() == 1
    assert "MDSERVE_TRUST_PICKLE" in server.log()


def test_corrupt_model_and_bad_config_exit_non_zero(start_server: Start, tmp_path: Path) -> None:
    corrupt = tmp_path / "model.pkl"
    corrupt.write_bytes(b"\x80\x04garbage")
    broken = start_server(
        {"MDSERVE_MODEL_NAME": "m", "MDSERVE_MODEL_URI": str(corrupt), "MDSERVE_TRUST_PICKLE": "1"}
    )
    misconfigured = start_server(
        {"MDSERVE_MODEL_NAME": "m", "MDSERVE_MODEL_URI": str(corrupt), "MDSERVE_MODEL_FORMAT": "xgb"}
    )
    assert broken.wait_exit() == 1 and "cannot unpickle" in broken.log()
    assert misconfigured.wait_exit() == 2 and "MDSERVE_MODEL_FORMAT" in misconfigured.log()


@pytest.fixture()
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_source_with_sha256(
    start_server: Start, iris_artifact: tuple[Path, str], http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    path, sha = iris_artifact
    (root / "iris.joblib").write_bytes(path.read_bytes())
    good = start_server(
        {
            "MDSERVE_MODEL_NAME": "iris",
            "MDSERVE_MODEL_URI": f"{base}/iris.joblib",
            "MDSERVE_MODEL_SHA256": sha,
        }
    )
    missing = start_server(
        {
            "MDSERVE_MODEL_NAME": "iris",
            "MDSERVE_MODEL_URI": f"{base}/nope.joblib",
            "MDSERVE_MODEL_SHA256": sha,
        }
    )
    good.wait_ready()
    response = requests.post(
        f"{good.base}/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}, timeout=10
    )
    assert response.json() == {"predictions": [0]}
    assert missing.wait_exit() == 1 and "cannot download" in missing.log()


def test_sigterm_under_load_loses_no_request(start_server: Start, iris_artifact: tuple[Path, str]) -> None:
    """Like a rolling update: clients keep sending until the endpoint is withdrawn (here: until
    they see readiness turn 503, as the endpoints controller would), slow requests are in flight
    when the listener closes. Every request sent must get a 200; afterwards connections are refused."""
    server = start_server(iris_env(iris_artifact, MDSERVE_SHUTDOWN_DRAIN_SECONDS="2"))
    server.wait_ready()
    url = f"{server.base}/v2/models/iris/infer"
    small = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    rows = np.tile([[5.1, 3.5, 1.4, 0.2]], (60_000, 1))
    big = {
        "inputs": [
            {"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
        ],
        "outputs": [{"name": "predict_proba"}],
    }
    withdrawn = threading.Event()
    outcomes: dict[str, int] = {"ok": 0, "failed": 0}
    failures: list[str] = []
    lock = threading.Lock()

    def watch_readiness() -> None:
        while not withdrawn.is_set():
            try:
                if requests.get(f"{server.base}/v2/health/ready", timeout=5).status_code == 503:
                    withdrawn.set()
            except requests.RequestException:
                withdrawn.set()
            time.sleep(0.05)

    def client(body: dict[str, Any]) -> None:
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=urllib3.Retry(0)))
        while not withdrawn.is_set():
            try:
                response = session.post(url, json=body, timeout=60)
                kind = "ok" if response.status_code == 200 else "failed"
            except requests.RequestException as error:
                kind = "failed"
                failures.append(repr(error))
            with lock:
                outcomes[kind] += 1

    with ThreadPoolExecutor(max_workers=7) as pool:
        futures = [pool.submit(client, small) for _ in range(4)] + [
            pool.submit(client, big) for _ in range(2)
        ]
        watcher = pool.submit(watch_readiness)
        time.sleep(1.5)
        server.terminate()
        assert server.wait_exit(timeout=60) == 0
        for future in [*futures, watcher]:
            future.result(timeout=120)
    assert outcomes["failed"] == 0, (outcomes, failures[:3])
    assert outcomes["ok"] > 10, outcomes
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json=small, timeout=5)


def test_sigterm_finishes_in_flight_requests(start_server: Start, iris_artifact: tuple[Path, str]) -> None:
    server = start_server(iris_env(iris_artifact))  # no drain: the listener closes at once
    server.wait_ready()
    rows = np.tile([[6.9, 3.1, 5.4, 2.1]], (150_000, 1))
    body = {
        "inputs": [
            {"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
        ]
    }
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(requests.post, f"{server.base}/v2/models/iris/infer", json=body, timeout=120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = requests.get(f"{server.base}/metrics", timeout=10).text
            inflight = next(
                line for line in text.splitlines() if line.startswith("mdserve_inflight_requests{")
            )
            if float(inflight.rsplit(" ", 1)[1]) >= 2:  # the big request and this scrape
                break
            time.sleep(0.01)
        server.terminate()
        response = pending.result(timeout=120)
    assert response.status_code == 200
    assert response.json()["outputs"][0]["shape"] == [150_000]
    assert server.wait_exit(timeout=60) == 0


def test_sklearn_served_as_onnx_after_startup_conversion(
    start_server: Start, iris_artifact: tuple[Path, str], tmp_path: Path
) -> None:
    sample = tmp_path / "sample.npz"
    rng = np.random.default_rng(0)
    np.savez(sample, X=rng.normal([5.8, 3.0, 3.8, 1.2], 0.5, size=(40, 4)))
    server = start_server(
        iris_env(
            iris_artifact,
            MDSERVE_QUANTIZATION="dynamic",
            MDSERVE_QUANTIZATION_SAMPLE=str(sample),
            MDSERVE_QUANTIZATION_MIN_AGREEMENT="0.95",
        )
    )
    server.wait_ready()
    assert requests.get(f"{server.base}/v2/models/iris", timeout=10).json()["platform"] == "onnx"
    response = requests.post(
        f"{server.base}/v1/models/iris:predict",
        json={"instances": [[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1]]},
        timeout=10,
    )
    assert response.json() == {"predictions": [0, 2]}
    assert "agreement" in server.log()
