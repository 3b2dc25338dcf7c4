"""The Go router (`mdroute`) on loopback: split, rules, sticky keys, shadows, reloads, errors, endpoints.

Real processes only: the binary from hack/build-router.sh and the aiohttp upstreams of
tests/integration/router/upstream.py. The Python router's own suite also runs against this binary
(test_python_suite.py); this module checks the issue's list explicitly, plus parity with Python.
"""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.integration.router.harness import (
    Proc,
    free_port,
    get_json,
    load,
    metric,
    overrides,
    send,
    table,
    wait_http,
    write_table,
)
from tests.integration.router_go.conftest import GoProcesses

pytestmark = pytest.mark.integration


def status_of(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_ten_thousand_requests_split_exactly_ninety_ten(procs: GoProcesses, tmp_path: Path) -> None:
    ups = {"stable": procs.upstream("stable"), "canary": procs.upstream("canary")}
    routes = tmp_path / "routes.json"
    write_table(routes, table({"stable": 90, "canary": 10}))
    router = procs.router(["--routes-file", str(routes), *overrides(ups)])

    results = asyncio.run(load(router.url + "/v2/models/m/infer", 10_000, concurrency=16))

    assert [r for r in results if r.status != 200] == []
    seen = collections.Counter(r.backend for r in results)
    assert abs(seen["canary"] / len(results) - 0.10) <= 0.015, seen
    assert seen == {"stable": 9000, "canary": 1000}  # smooth weighted round-robin: exact, not just close
    assert {r.headers["x-mdroute-variant"] for r in results if r.backend == "canary"} == {"canary"}
    served = {n: get_json(p.url + "/-/stats")["total"] for n, p in ups.items()}
    assert served == {"stable": 9000, "canary": 1000}
    assert metric(router.url, "mdroute_requests_total", {"variant": "canary", "code": "200"}) == 1000
    assert metric(router.url, "mdroute_requests_total", {"variant": "stable", "code": "200"}) == 9000
    assert metric(router.url, "mdroute_request_duration_seconds_count", {"variant": "stable"}) == 9000
    assert metric(router.url, "mdroute_weight", {"variant": "canary"}) == 10


def test_header_cookie_rules_and_sticky_keys_always_hold(procs: GoProcesses, tmp_path: Path) -> None:
    ups = {n: procs.upstream(n) for n in ("stable", "canary", "internal")}
    routes = tmp_path / "routes.json"
    write_table(
        routes,
        table(
            {"stable": 50, "canary": 50, "internal": 0},
            rules=[
                {"name": "testers", "variant": "internal", "headers": [{"name": "X-Tester", "value": "yes"}]},
                {
                    "name": "eu-beta",
                    "variant": "canary",
                    "headers": [{"name": "x-region", "value": "eu-", "type": "prefix"}],
                    "cookies": [{"name": "beta", "type": "present"}],
                },
                {
                    "name": "regex",
                    "variant": "internal",
                    "headers": [{"name": "x-build", "value": "b[0-9]+", "type": "regex"}],
                },
            ],
            sticky={"cookie": "uid", "salt": "exp-7"},
        ),
    )
    router = procs.router(["--routes-file", str(routes), *overrides(ups)])

    def headers_for(i: int) -> dict[str, str]:
        kind = i % 5
        if kind == 0:
            return {"x-tester": "yes", "cookie": f"uid=u{i % 89}"}  # the rule beats the sticky key
        if kind == 1:
            return {"x-region": "eu-north", "cookie": f"beta=1; uid=u{i % 89}"}
        if kind == 2:
            return {"x-build": "b42"}
        return {"cookie": f"lang=en; uid=u{i % 89}"}

    results = asyncio.run(load(router.url + "/x", 2_500, concurrency=8, headers_for=headers_for))
    assert all(r.status == 200 for r in results)
    arms: dict[str, set[str | None]] = collections.defaultdict(set)
    for i, r in enumerate(results):
        kind = i % 5
        if kind in (0, 2):
            assert r.backend == "internal", (i, r)
        elif kind == 1:
            assert r.backend == "canary", (i, r)
        else:
            arms[f"u{i % 89}"].add(r.backend)
    assert all(len(a) == 1 for a in arms.values()), arms
    assert {next(iter(a)) for a in arms.values()} == {"stable", "canary"}
    # A regex that only matches a prefix must not match (full match, like Python's re.fullmatch).
    r = asyncio.run(load(router.url + "/x", 1, 1, headers_for=lambda _: {"x-build": "b42-rc"}))[0]
    assert r.backend in ("stable", "canary")


def test_sticky_users_land_on_the_same_arm_as_with_the_python_router(
    procs: GoProcesses, tmp_path: Path
) -> None:
    """Switching the router image must not reshuffle sticky users (same blake2b ranges)."""
    ups = {"stable": procs.upstream("stable"), "canary": procs.upstream("canary")}
    routes = tmp_path / "routes.json"
    write_table(routes, table({"stable": 70, "canary": 30}, sticky={"header": "x-user-id", "salt": "s1"}))
    go = procs.router(["--routes-file", str(routes), *overrides(ups)])
    port = free_port()
    py = procs.spawn(
        "router-python",
        [sys.executable, "-m", "mdserve.router", "--host", "127.0.0.1", "--port", str(port),
         "--routes-file", str(routes), *overrides(ups)],
        f"http://127.0.0.1:{port}",
    )  # fmt: skip
    wait_http(py.url + "/-/ready", py)
    users = [f"user-{i}" for i in range(300)]

    def arms(proc: Proc) -> list[str | None]:
        results = asyncio.run(
            load(proc.url + "/x", len(users), concurrency=8, headers_for=lambda i: {"x-user-id": users[i]})
        )
        return [r.backend for r in results]

    go_arms, py_arms = arms(go), arms(py)
    assert go_arms == py_arms
    assert 0.2 < go_arms.count("canary") / len(users) < 0.4


def test_shadow_never_changes_the_callers_response(procs: GoProcesses, tmp_path: Path) -> None:
    ups = {
        "stable": procs.upstream("stable"),
        "shadowfail": procs.upstream("shadowfail", mode="fail"),
        "shadowslow": procs.upstream("shadowslow", mode="slow", delay=2.0),
    }
    routes = tmp_path / "routes.json"
    write_table(
        routes,
        table(
            {"stable": 1, "shadowfail": 0, "shadowslow": 0},
            shadows=[{"variant": "shadowfail", "percent": 25}, {"variant": "shadowslow", "percent": 10}],
            timeouts={"shadow_seconds": 0.5},
        ),
    )
    router = procs.router(["--routes-file", str(routes), *overrides(ups)])
    body = b'{"inputs": [1, 2, 3]}'
    results = asyncio.run(
        load(router.url + "/v2/models/m/infer", 400, concurrency=8, body_for=lambda _: body)
    )
    assert {(r.status, r.backend) for r in results} == {(200, "stable")}
    assert all(r.body is not None and r.body["body"] == body.decode() for r in results)
    assert max(r.seconds for r in results) < 1.5  # never waited for the 2 s shadow
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (
            metric(
                router.url, "mdroute_shadow_requests_total", {"variant": "shadowslow", "outcome": "timeout"}
            )
            == 40
        ):
            break
        time.sleep(0.1)
    assert get_json(ups["shadowfail"].url + "/-/stats") == {"total": 100, "shadow": 100}  # exactly 25 %
    assert (
        metric(
            router.url, "mdroute_shadow_requests_total", {"variant": "shadowfail", "outcome": "http_error"}
        )
        == 100
    )
    assert (
        metric(router.url, "mdroute_shadow_requests_total", {"variant": "shadowslow", "outcome": "timeout"})
        == 40
    )
    assert metric(router.url, "mdroute_requests_total", {"variant": "stable", "code": "200"}) == 400


def test_table_change_within_a_second_and_invalid_table_keeps_last_good(
    procs: GoProcesses, tmp_path: Path
) -> None:
    ups = {"stable": procs.upstream("stable"), "canary": procs.upstream("canary")}
    routes = tmp_path / "routes.json"
    write_table(routes, table({"stable": 100, "canary": 0}, "good-0"))
    router = procs.router(["--routes-file", str(routes), *overrides(ups)])
    url = router.url + "/x"

    async def until(want: str) -> float:
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            while time.perf_counter() - started < 5:
                if (await send(session, url)).backend == want:
                    return time.perf_counter() - started
        raise AssertionError(f"{want} not reached")

    delays = []
    for n, target in enumerate(["canary", "stable", "canary"], start=1):
        write_table(
            routes,
            table(
                {"stable": 0 if target == "canary" else 100, "canary": 100 if target == "canary" else 0},
                f"good-{n}",
            ),
        )
        delays.append(asyncio.run(until(target)))
    assert max(delays) < 1.0, delays

    routes.write_text('{"version": "broken", "variants": [{"name": "stable", "weight": 100}], "typo": 1}')
    deadline = time.monotonic() + 5
    while metric(router.url, "mdroute_table_rejected") != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    view = get_json(router.url + "/-/routes")
    assert view["version"] == "good-3" and view["source"] == "file"
    assert "variants.0.backend: Field required" in view["last_error"]
    assert "typo: Extra inputs are not permitted" in view["last_error"]
    assert view["backends"] == {"stable": ups["stable"].url, "canary": ups["canary"].url}
    assert metric(router.url, "mdroute_table_reloads_total", {"source": "file", "outcome": "invalid"}) == 1
    assert metric(router.url, "mdroute_table_reloads_total", {"source": "file", "outcome": "applied"}) == 4
    assert metric(router.url, "mdroute_table_info", {"version": "good-3"}) == 1
    assert {(r.status, r.backend) for r in asyncio.run(load(url, 40, 4))} == {(200, "canary")}
    assert "rejected route table from file, keeping version good-3" in router.log_text()
    write_table(routes, table({"stable": 100, "canary": 0}, "good-4"))  # a good table clears the error
    asyncio.run(until("stable"))
    assert metric(router.url, "mdroute_table_rejected") == 0
    assert get_json(router.url + "/-/routes")["last_error"] is None


def test_backend_failures_are_502_503_504_with_a_message(procs: GoProcesses, tmp_path: Path) -> None:
    missing = tmp_path / "later.json"
    router = procs.router(["--routes-file", str(missing)], wait_ready=False)
    code, body = status_of(router.url + "/-/ready")
    assert code == 503 and "cannot read" in str(body["last_error"])

    async def no_table() -> None:
        async with aiohttp.ClientSession() as session:
            r = await send(session, router.url + "/v2/models/m/infer", {"x-request-id": "early-1"})
            assert r.status == 503 and r.body is not None
            assert r.body == {
                "error": "no route table loaded yet",
                "request_id": "early-1",
                "variant": None,
                "source": "mdroute",
            }

    asyncio.run(no_table())

    ups = {
        "slow": procs.upstream("slow", mode="slow", delay=3.0),
        "reset": procs.upstream("reset", mode="reset"),
    }
    dead = f"http://127.0.0.1:{free_port()}"
    write_table(
        missing,
        table(
            {"slow": 1, "reset": 0, "dead": 0},
            rules=[
                {"name": n, "variant": n, "headers": [{"name": "x-to", "value": n}]}
                for n in ("slow", "reset", "dead")
            ],
            timeouts={"request_seconds": 0.3, "connect_seconds": 1},
        ),
    )
    router2 = procs.router(
        ["--routes-file", str(missing), *overrides(ups), "--backend-override", f"dead={dead}"]
    )
    wait_http(router.url + "/-/ready", router)  # the first router picked the file up too

    async def failures() -> None:
        async with aiohttp.ClientSession() as session:
            url = router2.url + "/v2/models/m/infer"
            r = await send(session, url, {"x-to": "slow", "x-request-id": "t-504"})
            assert r.status == 504 and r.body is not None and r.seconds < 2
            assert r.body["error"] == f"backend {ups['slow'].url} did not answer within 0.3s"
            assert (r.body["request_id"], r.body["variant"], r.body["source"]) == ("t-504", "slow", "mdroute")
            assert (r.headers["x-request-id"], r.headers["x-mdroute-variant"]) == ("t-504", "slow")
            r = await send(session, url, {"x-to": "reset"})
            assert r.status == 502 and r.body is not None
            assert "closed the connection before answering" in r.body["error"]
            r = await send(session, url, {"x-to": "dead"})
            assert r.status == 502 and r.body is not None
            assert r.body["error"] == f"backend {dead} refused the connection: connection refused"
            r = await send(session, url, {"x-to": "slow"}, body=b"")
            assert r.status == 504

    asyncio.run(failures())
    assert metric(router2.url, "mdroute_requests_total", {"variant": "slow", "code": "504"}) == 2
    assert metric(router2.url, "mdroute_upstream_errors_total", {"variant": "slow", "kind": "timeout"}) == 2
    assert metric(router2.url, "mdroute_upstream_errors_total", {"variant": "dead", "kind": "connect"}) == 1
    assert metric(router2.url, "mdroute_requests_total", {"variant": "reset", "code": "502"}) == 1
    assert "request t-504 to slow" in router2.log_text()


def test_request_id_propagation_and_endpoints(procs: GoProcesses, tmp_path: Path) -> None:
    ups = {"stable": procs.upstream("stable"), "canary": procs.upstream("canary")}
    routes = tmp_path / "routes.json"
    write_table(routes, table({"stable": 1, "canary": 1}, "ep-1"))
    router = procs.router(["--routes-file", str(routes), *overrides(ups)])

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            r = await send(
                session, router.url + "/v2/x?a=1", {"x-request-id": "given-42", "x-forwarded-for": "10.0.0.1"}
            )
            assert r.status == 200 and r.body is not None
            assert r.body["request_id"] == "given-42" and r.headers["x-request-id"] == "given-42"
            assert r.body["headers"]["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
            assert r.body["headers"]["x-forwarded-proto"] == "http"
            assert r.body["path"] == "/v2/x?a=1"
            assert r.headers["x-mdroute-variant"] == r.body["backend"]
            r = await send(session, router.url + "/v2/x")
            assert r.body is not None and len(r.body["request_id"]) == 32
            assert r.headers["x-request-id"] == r.body["request_id"]
            r = await send(session, router.url + "/v2/x", {"x-request-id": "bad\tid"})
            assert (
                r.body is not None and r.body["request_id"] != "bad\tid" and len(r.body["request_id"]) == 32
            )

    asyncio.run(scenario())
    assert status_of(router.url + "/-/healthz") == (200, {"status": "alive"})
    assert status_of(router.url + "/-/ready") == (200, {"status": "ready", "version": "ep-1"})
    view = get_json(router.url + "/-/routes")
    assert view["version"] == "ep-1" and view["source"] == "file" and view["last_error"] is None
    assert view["table"]["timeouts"] == {"connect_seconds": 2, "request_seconds": 60, "shadow_seconds": 10}
    assert [v["name"] for v in view["table"]["variants"]] == ["stable", "canary"]
    assert status_of(router.url + "/-/nothing")[0] == 404
    with urllib.request.urlopen(router.url + "/metrics", timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/plain")
        text = resp.read().decode()
    names = [
        "mdroute_requests_total",
        "mdroute_request_duration_seconds_bucket",
        "mdroute_table_reloads_total",
        "mdroute_table_info",
        "mdroute_weight",
        "mdroute_table_rejected",
        "mdroute_table_last_applied_timestamp_seconds",
    ]
    for name in names:
        assert name in text, name
    assert (
        metric(router.url, "mdroute_requests_total", {"variant": "stable", "code": "200"})
        + metric(router.url, "mdroute_requests_total", {"variant": "canary", "code": "200"})
        == 3
    )
    assert metric(router.url, "mdroute_table_last_applied_timestamp_seconds") > time.time() - 600


def test_sigterm_drains_in_flight_and_exits_zero(procs: GoProcesses, tmp_path: Path) -> None:
    ups = {"stable": procs.upstream("stable")}
    routes = tmp_path / "routes.json"
    write_table(routes, table({"stable": 1}))
    router = procs.router(["--routes-file", str(routes), *overrides(ups)])

    async def scenario() -> list[int]:
        async with aiohttp.ClientSession() as session:
            slow = [asyncio.create_task(send(session, router.url + "/x?sleep=1.0")) for _ in range(3)]
            await asyncio.sleep(0.3)
            router.popen.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
            late = await send(session, router.url + "/x")  # new connections are refused once stopping
            assert late.status == -1
            return [(await t).status for t in slow]

    assert asyncio.run(scenario()) == [200, 200, 200]
    assert router.popen.wait(timeout=30) == 0
    assert "stopping: finishing in-flight requests" in router.log_text()
