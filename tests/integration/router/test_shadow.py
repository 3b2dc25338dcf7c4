"""Shadow traffic: copies go out, but the caller never sees their responses, failures or delays."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest

from tests.integration.router.harness import (
    Processes,
    Result,
    get_json,
    load,
    metric,
    overrides,
    percentile,
    table,
    write_table,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHADOW_DELAY = 2.0


def test_shadow_never_changes_what_the_caller_sees(procs: Processes, tmp_path: Path) -> None:
    ups = {
        "stable": procs.upstream("stable"),
        "slow": procs.upstream("slow", mode="slow", delay=SHADOW_DELAY),
        "broken": procs.upstream("broken", mode="reset"),
        "failing": procs.upstream("failing", mode="fail"),
    }
    weights = {"stable": 100, "slow": 0, "broken": 0, "failing": 0}
    plain, mirrored = tmp_path / "plain.json", tmp_path / "mirrored.json"
    write_table(plain, table(weights))
    write_table(
        mirrored,
        table(
            weights,
            shadows=[
                {"variant": "slow", "percent": 100},
                {"variant": "broken", "percent": 50},
                {"variant": "failing", "percent": 100},
            ],
            timeouts={"shadow_seconds": 5},
        ),
    )
    # Two routers in front of the same primary, measured in alternating rounds, so machine load
    # drifts hit both alike; only the shadow table differs.
    routers = {
        "plain": procs.router(["--routes-file", str(plain), *overrides(ups)]),
        "mirrored": procs.router(["--routes-file", str(mirrored), *overrides(ups)]),
    }

    def body_for(i: int) -> bytes:
        return f'{{"inputs": [{i}]}}'.encode()

    def headers_for(i: int) -> dict[str, str]:
        return {"x-request-id": f"req-{i}"}

    latencies: dict[str, list[float]] = {"plain": [], "mirrored": []}
    medians: dict[str, list[float]] = {"plain": [], "mirrored": []}
    for _round in range(4):
        for name, router in routers.items():
            results: list[Result] = asyncio.run(
                load(
                    router.url + "/v2/models/m/infer",
                    250,
                    concurrency=4,
                    headers_for=headers_for,
                    body_for=body_for,
                )
            )
            for i, r in enumerate(results):
                assert r.status == 200, r
                assert r.body is not None
                assert (r.backend, r.body["body"], r.body["request_id"]) == (
                    "stable",
                    body_for(i).decode(),
                    f"req-{i}",
                )
                assert r.headers["x-mdroute-variant"] == "stable"
            latencies[name] += [r.seconds for r in results]
            medians[name].append(statistics.median(r.seconds for r in results))

    plain_p50, mirrored_p50 = statistics.median(medians["plain"]), statistics.median(medians["mirrored"])
    # Same latency within noise; the 2 s shadow delay must never show up in what callers wait for.
    assert mirrored_p50 <= plain_p50 * 1.5 + 0.003, (plain_p50, mirrored_p50)
    assert percentile(latencies["mirrored"], 0.99) < SHADOW_DELAY / 2, percentile(latencies["mirrored"], 0.99)

    mirrored_url = routers["mirrored"].url

    def outcomes(variant: str) -> dict[str, float]:
        kinds = ("ok", "http_error", "error", "timeout", "dropped")
        return {
            k: metric(mirrored_url, "mdroute_shadow_requests_total", {"variant": variant, "outcome": k})
            for k in kinds
        }

    # Copies really went out (exactly 100 % / 50 % / 100 % of 1000 requests, each accounted for once
    # finished), every failure is counted, and none of it was visible above.
    expected = {"slow": 1000, "broken": 500, "failing": 1000}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(sum(outcomes(v).values()) < n for v, n in expected.items()):
        time.sleep(0.2)
    slow, broken, failing = outcomes("slow"), outcomes("broken"), outcomes("failing")
    assert sum(slow.values()) == 1000 and slow["ok"] > 0 and slow["http_error"] == slow["error"] == 0, slow
    assert (
        sum(broken.values()) == 500 and broken["error"] > 0 and broken["ok"] == broken["http_error"] == 0
    ), broken
    assert sum(failing.values()) == 1000 and failing["http_error"] > 0 and failing["ok"] == 0, failing
    stats = get_json(ups["failing"].url + "/-/stats")
    assert stats["total"] == stats["shadow"] == failing["http_error"]
    assert metric(mirrored_url, "mdroute_requests_total", {"variant": "stable", "code": "200"}) == 1000
