"""Backend failures become clear 502/503/504 answers; request ids and bodies pass through intact."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.integration.router.harness import Processes, free_port, metric, overrides, send, table, write_table

pytestmark = pytest.mark.integration


def test_failures_are_clear(procs: Processes, tmp_path: Path) -> None:
    ups = {
        "slow": procs.upstream("slow", mode="slow", delay=3.0),
        "reset": procs.upstream("reset", mode="reset"),
    }
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    rules = [
        {"name": f"to-{n}", "variant": n, "headers": [{"name": "x-to", "value": n}]}
        for n in ("slow", "reset", "dead")
    ]
    routes = tmp_path / "routes.json"
    write_table(
        routes,
        table(
            {"slow": 1, "reset": 0, "dead": 0},
            rules=rules,
            timeouts={"request_seconds": 0.3, "connect_seconds": 1},
        ),
    )
    router = procs.router(
        ["--routes-file", str(routes), *overrides(ups), "--backend-override", f"dead={dead}"]
    )

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            url = router.url + "/v2/models/m/infer"
            r = await send(session, url, {"x-to": "slow", "x-request-id": "abc-1"})
            assert r.status == 504 and r.body is not None
            assert "did not answer within 0.3s" in r.body["error"]
            assert (r.body["request_id"], r.headers["x-request-id"], r.body["variant"]) == (
                "abc-1",
                "abc-1",
                "slow",
            )
            assert r.seconds < 2.0
            r = await send(session, url, {"x-to": "reset"})
            assert (
                r.status == 502
                and r.body is not None
                and "closed the connection before answering" in r.body["error"]
            )
            r = await send(session, url, {"x-to": "dead"})
            assert r.status == 502 and r.body is not None and dead in r.body["error"]

    asyncio.run(scenario())
    assert metric(router.url, "mdroute_requests_total", {"variant": "slow", "code": "504"}) == 1
    assert metric(router.url, "mdroute_upstream_errors_total", {"variant": "dead", "kind": "connect"}) == 1
    assert "request abc-1 to slow" in router.log_text()


def test_no_table_yet_is_503_and_not_ready(procs: Processes, tmp_path: Path) -> None:
    routes = tmp_path / "absent.json"
    router = procs.router(["--routes-file", str(routes)], wait_ready=False)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            r = await send(session, router.url + "/anything")
            assert r.status == 503 and r.body is not None and r.body["error"] == "no route table loaded yet"
            async with session.get(router.url + "/-/ready") as resp:
                assert resp.status == 503
                assert "cannot read" in (await resp.json())["last_error"]

    asyncio.run(scenario())


def test_request_ids_headers_and_bodies_pass_through(procs: Processes, tmp_path: Path) -> None:
    ups = {"stable": procs.upstream("stable")}
    routes = tmp_path / "routes.json"
    write_table(routes, table({"stable": 1}))
    router = procs.router(["--routes-file", str(routes), "--max-body-bytes", str(4 << 20), *overrides(ups)])

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            payload = bytes(range(256)) * 8192  # 2 MiB, binary
            async with session.put(
                router.url + "/v2/x?a=1&b=%20", data=payload, headers={"x-custom": "1"}
            ) as resp:
                echoed = await resp.json()
                assert resp.status == 200
            assert echoed["method"] == "PUT" and echoed["path"] == "/v2/x?a=1&b=%20"
            assert (
                echoed["headers"]["x-custom"] == "1" and echoed["headers"]["x-forwarded-for"] == "127.0.0.1"
            )
            generated = echoed["request_id"]
            assert generated and len(generated) == 32
            assert resp.headers["x-request-id"] == generated and resp.headers["set-cookie"] == "seen=stable"
            async with session.get(router.url + "/big?big=3000000") as resp:  # streamed, not buffered
                body = await resp.read()
                assert resp.status == 200 and len(body) == 3_000_000 and resp.headers["x-backend"] == "stable"
            assert hashlib.sha256(body).hexdigest() == hashlib.sha256(b"x" * 3_000_000).hexdigest()
            too_long = "r" * 200  # the model server refuses such ids too: a fresh one is made
            r = await send(session, router.url + "/x", {"x-request-id": too_long})
            assert r.body is not None and r.body["request_id"] not in (too_long, None)
            async with session.post(router.url + "/x", data=b"0" * (5 << 20)) as resp:
                assert resp.status == 413
            async with session.get(router.url + "/x?status=418") as resp:  # backend errors pass unchanged
                assert resp.status == 418 and (await resp.json()) == {"backend": "stable"}

    asyncio.run(scenario())


def test_sigterm_finishes_in_flight_requests_and_exits_cleanly(procs: Processes, tmp_path: Path) -> None:
    ups = {"stable": procs.upstream("stable")}
    routes = tmp_path / "routes.json"
    write_table(routes, table({"stable": 1}))
    router = procs.router(["--routes-file", str(routes), *overrides(ups)])

    async def scenario() -> int:
        async with aiohttp.ClientSession() as session:
            slow = asyncio.create_task(send(session, router.url + "/x?sleep=1.0"))
            await asyncio.sleep(0.3)  # the request is in flight at the backend
            router.popen.send_signal(signal.SIGTERM)
            return (await slow).status

    assert asyncio.run(scenario()) == 200
    assert router.popen.wait(timeout=30) == 0
    assert "stopping: finishing in-flight requests" in router.log_text()
