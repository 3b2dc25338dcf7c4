"""The router in front of two real model servers (``python -m mdserve serve``), as issue 5 asks."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import joblib
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mdserve.sources import sha256_file
from tests.integration.router.harness import (
    Proc,
    Processes,
    free_port,
    load,
    metric,
    table,
    wait_http,
    write_table,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1], [5.9, 3.0, 4.2, 1.5], [6.3, 2.5, 5.0, 1.9]]


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    features, labels = load_iris(return_X_y=True)
    path = tmp_path_factory.mktemp("iris") / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), path)
    return path, sha256_file(path)


def model_server(procs: Processes, variant: str, model: tuple[Path, str]) -> Proc:
    port = free_port()
    env = {
        "MDSERVE_MODEL_NAME": "iris",
        "MDSERVE_MODEL_URI": str(model[0]),
        "MDSERVE_MODEL_SHA256": model[1],
        "MDSERVE_VARIANT": variant,
        "MDSERVE_HOST": "127.0.0.1",
        "MDSERVE_HTTP_PORT": str(port),
        "MDSERVE_CACHE_DIR": str(procs.tmp / f"cache-{variant}"),
    }
    proc = procs.spawn(
        f"mdserve-{variant}", [sys.executable, "-m", "mdserve", "serve"], f"http://127.0.0.1:{port}", env
    )
    wait_http(proc.url + "/v2/health/ready", proc, timeout=180)
    return proc


def served(server: Proc, variant: str) -> float:
    """Successful v1 predictions a model server counted itself (its own metrics, not the router's)."""
    total = 0.0
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
        for family in text_string_to_metric_families(resp.read().decode()):
            for s in family.samples:
                if (
                    s.name == "mdserve_requests_total"
                    and s.labels.get("variant") == variant
                    and s.labels.get("code") == "200"
                    and s.labels.get("protocol") == "v1"
                ):
                    total += s.value
    return total


def body_for(i: int) -> bytes:
    return json.dumps({"instances": [ROWS[i % len(ROWS)]]}).encode()


def routed_model_servers(
    procs: Processes, tmp_path: Path, model: tuple[Path, str], weights: dict[str, int]
) -> tuple[dict[str, Proc], Proc]:
    """One model server per variant of ``weights`` and a router splitting between them."""
    servers = {v: model_server(procs, v, model) for v in weights}
    routes = tmp_path / "routes.json"
    write_table(routes, table(weights))
    args = ["--routes-file", str(routes)]
    for v, s in servers.items():
        args += ["--backend-override", f"{v}={s.url}"]
    return servers, procs.router(args)


def test_ninety_ten_across_two_model_servers(
    procs: Processes, tmp_path: Path, iris_model: tuple[Path, str]
) -> None:
    servers, router = routed_model_servers(procs, tmp_path, iris_model, {"stable": 90, "canary": 10})
    before = {v: served(s, v) for v, s in servers.items()}

    results = asyncio.run(
        load(router.url + "/v1/models/iris:predict", 10_000, concurrency=16, body_for=body_for)
    )

    assert [r for r in results if r.status != 200][:3] == []
    counted = {v: served(s, v) - before[v] for v, s in servers.items()}
    assert counted["stable"] + counted["canary"] == 10_000
    assert abs(counted["canary"] / 10_000 - 0.10) <= 0.015, counted
    seen = sum(r.headers.get("x-mdroute-variant") == "canary" for r in results)
    assert seen == counted["canary"]
    assert all(r.body == {"predictions": [[0, 2, 1, 2][i % 4]]} for i, r in enumerate(results))


def test_shadow_to_a_model_server_is_invisible(
    procs: Processes, tmp_path: Path, iris_model: tuple[Path, str]
) -> None:
    servers = {v: model_server(procs, v, iris_model) for v in ("stable", "canary")}
    overrides = [a for v, s in servers.items() for a in ("--backend-override", f"{v}={s.url}")]
    plain, mirrored = tmp_path / "plain.json", tmp_path / "mirrored.json"
    write_table(plain, table({"stable": 100, "canary": 0}))
    write_table(
        mirrored, table({"stable": 100, "canary": 0}, shadows=[{"variant": "canary", "percent": 100}])
    )
    routers = {
        "plain": procs.router(["--routes-file", str(plain), *overrides]),
        "mirrored": procs.router(["--routes-file", str(mirrored), *overrides]),
    }
    medians: dict[str, list[float]] = {"plain": [], "mirrored": []}
    for _ in range(3):  # alternate, so load drift on the shared cores hits both alike
        for name, router in routers.items():
            results = asyncio.run(
                load(router.url + "/v1/models/iris:predict", 300, concurrency=4, body_for=body_for)
            )
            assert all(r.status == 200 and r.headers["x-mdroute-variant"] == "stable" for r in results)
            assert all(r.body == {"predictions": [[0, 2, 1, 2][i % 4]]} for i, r in enumerate(results))
            medians[name].append(statistics.median(r.seconds for r in results))
    deadline = time.monotonic() + 60
    while served(servers["canary"], "canary") < 900 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served(servers["canary"], "canary") == 900  # every copy arrived; callers saw none
    assert (
        metric(
            routers["mirrored"].url, "mdroute_shadow_requests_total", {"variant": "canary", "outcome": "ok"}
        )
        == 900
    )
    plain_p50, mirrored_p50 = statistics.median(medians["plain"]), statistics.median(medians["mirrored"])
    print(f"p50 plain {plain_p50 * 1000:.2f} ms, with 100% shadow {mirrored_p50 * 1000:.2f} ms")
    # The copy costs CPU on the same two cores (the canary computes too), so allow for contention;
    # test_shadow.py checks strictly that a shadow's own delay never reaches the caller.
    assert mirrored_p50 <= plain_p50 * 3.0 + 0.005, (plain_p50, mirrored_p50)
