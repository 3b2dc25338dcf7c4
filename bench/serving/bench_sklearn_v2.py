"""mdserve vs MLServer 1.7: sklearn iris LogisticRegression over V2 JSON, 16 connections, same wrk,
same run, alternating rounds. Run: .venv/bin/python bench/serving/bench_sklearn_v2.py"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import joblib
from common import ROOT, free_port, run_wrk, save_part, stop, wait_ready
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

MLSERVER_VENV = ROOT / ".bench-venv" / "mlserver"
BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def ensure_mlserver() -> Path:
    binary = MLSERVER_VENV / "bin" / "mlserver"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        pip = str(MLSERVER_VENV / "bin" / "pip")
        # MLServer 1.7's inference-pool workers call asyncio.get_event_loop() in a fresh process,
        # which uvloop >= 0.22 turns into an error: pin the uvloop it was released with.
        packages = ["mlserver==1.7.*", "mlserver-sklearn==1.7.*", "uvloop<0.22"]
        subprocess.run([pip, "install", "-q", *packages], check=True)
    return Path(binary)


def start_mdserve(model: Path, port: int, micro_batching: bool = True) -> subprocess.Popen[bytes]:
    env = {
        "MDSERVE_MICRO_BATCHING": "true" if micro_batching else "false",
        **os.environ,
        "MDSERVE_MODEL_NAME": "iris",
        "MDSERVE_MODEL_URI": str(model),
        "MDSERVE_TRUST_PICKLE": "true",
        "MDSERVE_HOST": "127.0.0.1",
        "MDSERVE_HTTP_PORT": str(port),
        "MDSERVE_LOG_LEVEL": "warning",
    }
    command = [str(ROOT / ".venv" / "bin" / "python"), "-m", "mdserve", "serve"]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def start_mlserver(binary: Path, model: Path, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    model_dir = workdir / "iris"
    model_dir.mkdir(exist_ok=True)
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "iris",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": str(model), "version": "1"},
            }
        )
    )
    (workdir / "settings.json").write_text(
        json.dumps({"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "debug": False})
    )
    return subprocess.Popen(
        [str(binary), "start", str(workdir)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def check_answer(url: str) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(BODY).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        outputs = json.loads(response.read())["outputs"]
    return outputs[0]["data"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    binary = ensure_mlserver()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        features, labels = load_iris(return_X_y=True)
        model = work / "model.joblib"
        joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), model)
        script = work / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = '{json.dumps(BODY)}'\n"
        )
        servers = ("mdserve", "mdserve-no-batching", "mlserver")
        runs: dict[str, list[dict[str, float]]] = {server: [] for server in servers}
        answers = {}
        urls = {}
        processes = []
        mlwork = work / "mlserver"
        mlwork.mkdir()
        try:
            for server in servers:
                port = free_port()
                if server.startswith("mdserve"):
                    process = start_mdserve(model, port, micro_batching=server == "mdserve")
                else:
                    process = start_mlserver(binary, model, mlwork, port)
                processes.append(process)
                wait_ready(f"http://127.0.0.1:{port}/v2/models/iris/ready", process)
                urls[server] = f"http://127.0.0.1:{port}/v2/models/iris/infer"
                answers[server] = check_answer(urls[server])
                run_wrk(urls[server], script, args.connections, 3)  # warm-up, discarded
            # Rounds alternate between the servers so that drifting background load hits both alike.
            for _ in range(args.rounds):
                for server, url in urls.items():
                    runs[server].append(run_wrk(url, script, args.connections, args.seconds))
                    print(server, runs[server][-1], flush=True)
        finally:
            for process in processes:
                stop(process)
    summary = {
        server: {
            key: statistics.median(r[key] for r in rounds) for key in ("rps", "p50_ms", "p99_ms", "non_2xx")
        }
        for server, rounds in runs.items()
    }
    result = {
        "command": "python bench/serving/bench_sklearn_v2.py "
        f"--rounds {args.rounds} --seconds {args.seconds} --connections {args.connections}",
        "connections": args.connections,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load avg {os.getloadavg()[0]:.1f} at end",
        "answers": answers,
        "runs": runs,
        "median": summary,
        "rps_ratio": summary["mdserve"]["rps"] / summary["mlserver"]["rps"],
        "p99_ratio": summary["mdserve"]["p99_ms"] / summary["mlserver"]["p99_ms"],
    }
    save_part("sklearn_v2", result)
    print(
        json.dumps(result["median"], indent=2),
        f"rps x{result['rps_ratio']:.2f}, p99 x{result['p99_ratio']:.2f}",
    )

    from render import main as render

    render()


if __name__ == "__main__":
    main()
