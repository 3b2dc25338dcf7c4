"""Keras MLP: per-request latency of the float SavedModel path vs TFLite dynamic/float16/int8,
in-process (runtime call) and over HTTP (V2 JSON, one connection, sequential), with accuracy.
Run: .venv/bin/python bench/serving/bench_keras_tflite.py"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from common import free_port, run_wrk, save_part, stop, wait_ready


def train(work: Path) -> tuple[Path, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    import keras
    from sklearn.datasets import make_classification

    features, labels = make_classification(
        n_samples=3000, n_features=20, n_informative=12, n_classes=4, random_state=0
    )
    features = features.astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((20,), name="features"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(features[:2000], labels[:2000], epochs=15, batch_size=64, verbose=0)
    saved = work / "saved_model"
    model.export(str(saved), verbose=False)
    return saved, features[2000:], labels[2000:]


def launch(model_uri: Path, port: int, micro_batching: bool = True) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MDSERVE_MICRO_BATCHING": "true" if micro_batching else "false",
        "MDSERVE_MODEL_NAME": "mlp",
        "MDSERVE_MODEL_URI": str(model_uri),
        "MDSERVE_HOST": "127.0.0.1",
        "MDSERVE_HTTP_PORT": str(port),
        "MDSERVE_LOG_LEVEL": "warning",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mdserve", "serve"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def http_latency(model_uri: Path, rows: np.ndarray[Any, Any], calls: int) -> dict[str, float]:
    port = free_port()
    process = launch(model_uri, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", process)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        timings = []
        for i in range(calls):
            row = rows[i % len(rows)]
            body = json.dumps(
                {"inputs": [{"name": "features", "shape": [1, 20], "datatype": "FP32", "data": row.tolist()}]}
            )
            start = time.perf_counter()
            connection.request("POST", "/v2/models/mlp/infer", body, {"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            timings.append((time.perf_counter() - start) * 1000)
            assert response.status == 200
        connection.close()
    finally:
        stop(process)
    timings = timings[len(timings) // 10 :]  # first calls warm caches
    return {"p50_ms": statistics.median(timings), "p99_ms": float(np.percentile(timings, 99))}


def http_throughput(
    model_uri: Path, row: np.ndarray[Any, Any], micro_batching: bool, work: Path
) -> dict[str, float]:
    """wrk at 16 connections, single-row V2 requests: what adaptive micro-batching buys a TF model."""
    port = free_port()
    process = launch(model_uri, port, micro_batching)
    body = json.dumps(
        {"inputs": [{"name": "features", "shape": [1, 20], "datatype": "FP32", "data": row.tolist()}]}
    )
    script = work / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'{body}\'\n'
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", process)
        url = f"http://127.0.0.1:{port}/v2/models/mlp/infer"
        run_wrk(url, script, 16, 3)
        result: dict[str, float] = run_wrk(url, script, 16, 10)
        return result
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    from mdserve.quantize.convert import tensorflow_to_tflite
    from mdserve.quantize.report import compare
    from mdserve.runtimes.tensorflow import load_tensorflow
    from mdserve.runtimes.tflite import TFLiteModel

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        saved, features, labels = train(work)
        original = load_tensorflow(saved)
        variants: dict[str, Any] = {}
        size = sum(p.stat().st_size for p in saved.rglob("*") if p.is_file())
        for mode in ("dynamic", "float16", "int8"):
            content = tensorflow_to_tflite(saved, mode, features[:300])
            path = work / f"mlp-{mode}.tflite"
            path.write_bytes(content)
            report = compare(original, TFLiteModel(content), mode, size, len(content), features, labels, 1e-3)
            variants[mode] = {"report": report.as_dict(), "http": http_latency(path, features, args.calls)}
        float_http = http_latency(saved, features, args.calls)
        concurrency = {
            "batched": http_throughput(saved, features[0], True, work),
            "unbatched": http_throughput(saved, features[0], False, work),
        }
        float_report = compare(original, original, "float", size, size, features, labels, 1e-3)
    result = {
        "command": f"python bench/serving/bench_keras_tflite.py --calls {args.calls}",
        "float": {"report": float_report.as_dict(), "http": float_http},
        "variants": variants,
        "concurrency": concurrency,
    }
    save_part("keras_tflite", result)
    print(json.dumps(result, indent=2))

    from render import main as render

    render()


if __name__ == "__main__":
    main()
