"""Route changes: applied under load without failures, in effect within a second, bad tables refused."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.integration.router.harness import (
    Processes,
    free_port,
    get_json,
    load,
    metric,
    overrides,
    send,
    table,
    write_table,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_weight_changes_under_load_fail_no_request(procs: Processes, tmp_path: Path) -> None:
    ups = {"stable": procs.upstream("stable"), "canary": procs.upstream("canary")}
    routes = tmp_path / "routes.json"
    write_table(routes, table({"stable": 90, "canary": 10}, "v0"))
    router = procs.router(["--routes-file", str(routes), *overrides(ups)])
    plan = [(50, 50), (0, 100), (100, 0), (75, 25), (90, 10)]

    async def scenario() -> list[str]:
        traffic = asyncio.create_task(load(router.url + "/v2/models/m/infer", 4_000, concurrency=12))
        applied = []
        for n, (stable, canary) in enumerate(plan, start=1):
            await asyncio.sleep(0.4)
            write_table(routes, table({"stable": stable, "canary": canary}, f"v{n}"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                view = await asyncio.to_thread(get_json, router.url + "/-/routes")
                if view["version"] == f"v{n}":
                    applied.append(view["version"])
                    break
                await asyncio.sleep(0.05)
        results = await traffic
        assert not traffic.cancelled()
        failed = [r for r in results if r.status != 200]
        assert failed == [], failed[:5]
        assert len(results) == 4_000
        return applied

    assert asyncio.run(scenario()) == [f"v{n}" for n in range(1, len(plan) + 1)]
    assert metric(router.url, "mdroute_table_reloads_total", {"source": "file", "outcome": "applied"}) == 6


async def _until_backend(url: str, want: str, limit: float) -> float:
    """Seconds until requests reach ``want`` (sequential requests, as a caller would notice)."""
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() - started < limit:
            r = await send(session, url)
            if r.backend == want:
                return time.perf_counter() - started
    raise AssertionError(f"{want} never reached within {limit}s")


def test_route_change_takes_effect_within_a_second(procs: Processes, tmp_path: Path) -> None:
    ups = {"stable": procs.upstream("stable"), "canary": procs.upstream("canary")}
    routes = tmp_path / "routes.json"
    write_table(routes, table({"stable": 100, "canary": 0}, "v0"))
    admin_port = free_port()
    router = procs.router(
        ["--routes-file", str(routes), "--admin-port", str(admin_port), *overrides(ups)],
        env={"MDROUTE_ADMIN_TOKEN": "t0ken"},
    )
    url = router.url + "/v2/models/m/infer"
    file_delays = []
    for n in range(3):  # a rollback (canary → 0) and a promotion, both through the polled file
        target = "canary" if n % 2 == 0 else "stable"
        write_table(
            routes,
            table(
                {"stable": 0 if target == "canary" else 100, "canary": 100 if target == "canary" else 0},
                f"f{n}",
            ),
        )
        file_delays.append(asyncio.run(_until_backend(url, target, 5.0)))
    assert max(file_delays) < 1.0, file_delays

    def put(doc: dict[str, object], token: str = "t0ken") -> tuple[int, dict[str, object]]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{admin_port}/-/routes",
            data=json.dumps(doc).encode(),
            method="PUT",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert put(table({"stable": 1, "canary": 0}), token="wrong")[0] == 401
    started = time.perf_counter()
    assert put(table({"stable": 1, "canary": 0}, "a1")) == (200, {"outcome": "applied", "version": "a1"})
    admin_delay = asyncio.run(_until_backend(url, "stable", 5.0)) + (time.perf_counter() - started)
    assert admin_delay < 1.0
    status, answer = put({"version": "bad", "variants": []})
    assert status == 422 and "at least one variant" in str(answer["error"])
    print(
        f"route change -> in effect: file {[round(d, 3) for d in file_delays]} s, admin {admin_delay:.3f} s"
    )


def test_invalid_table_keeps_last_good_one(procs: Processes, tmp_path: Path) -> None:
    ups = {"stable": procs.upstream("stable"), "canary": procs.upstream("canary")}
    routes = tmp_path / "routes.json"
    write_table(routes, table({"stable": 100, "canary": 0}, "good"))
    router = procs.router(["--routes-file", str(routes), *overrides(ups)])
    routes.write_text('{"version": "broken", "variants": [{"name": "stable", "weight": 100}]}')
    deadline = time.monotonic() + 10
    while metric(router.url, "mdroute_table_rejected") != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    view = get_json(router.url + "/-/routes")
    assert view["version"] == "good"
    assert "variants.0.backend: Field required" in view["last_error"]
    assert metric(router.url, "mdroute_table_reloads_total", {"source": "file", "outcome": "invalid"}) == 1
    assert metric(router.url, "mdroute_table_info", {"version": "good"}) == 1
    results = asyncio.run(load(router.url + "/x", 50, concurrency=4))
    assert {(r.status, r.backend) for r in results} == {(200, "stable")}
    assert "rejected route table from file, keeping version good" in router.log_text()
    routes.unlink()  # a vanished file is a source error, not an empty table
    time.sleep(0.6)
    assert get_json(router.url + "/-/routes")["version"] == "good"
    assert {r.status for r in asyncio.run(load(router.url + "/x", 10, concurrency=2))} == {200}
