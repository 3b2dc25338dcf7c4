"""HTTP/1.1 details through the router: streaming, HEAD, 204, pipelining, 100-continue, connection close."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from tests.integration.router.harness import Processes, overrides, table, write_table

pytestmark = pytest.mark.integration


def _router(procs: Processes, tmp_path: Path) -> str:
    ups = {"stable": procs.upstream("stable")}
    routes = tmp_path / "routes.json"
    write_table(routes, table({"stable": 1}))
    return procs.router(["--routes-file", str(routes), *overrides(ups)]).url


def _raw(url: str, data: bytes, until: bytes, count: int = 1, timeout: float = 20.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        got = b""
        deadline = time.monotonic() + timeout
        while got.count(until) < count and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_streaming_head_and_no_content(procs: Processes, tmp_path: Path) -> None:
    url = _router(procs, tmp_path)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/s?chunks=5") as resp:
                assert resp.status == 200 and resp.headers["transfer-encoding"] == "chunked"
                first = await resp.content.readany()  # arrives before the backend has finished
                rest = await resp.read()
            assert (first + rest).decode() == "".join(f"chunk-{i};" for i in range(5))
            assert first.decode() != "".join(f"chunk-{i};" for i in range(5))
            async with session.head(url + "/big?big=1234") as resp:
                assert resp.status == 200 and resp.headers["content-length"] == "1234"
                assert await resp.read() == b""
            async with session.get(url + "/e?empty=1") as resp:
                assert resp.status == 204 and resp.headers["x-backend"] == "stable"
            async with session.get(url + "/after") as resp:  # the pooled connections are still in step
                assert (await resp.json())["path"] == "/after"

    asyncio.run(scenario())


def test_pipelining_continue_and_close(procs: Processes, tmp_path: Path) -> None:
    url = _router(procs, tmp_path)
    pipelined = b"".join(
        b"GET /p%d HTTP/1.1\r\nhost: x\r\nx-request-id: pipe-%d\r\n\r\n" % (i, i) for i in range(3)
    )
    answer = _raw(url, pipelined, b"x-mdroute-variant", count=3)
    assert [answer.find(b'"path": "/p%d"' % i) for i in range(3)] == sorted(
        answer.find(b'"path": "/p%d"' % i) for i in range(3)
    )
    assert all(b"pipe-%d" % i in answer for i in range(3))

    body = b'{"x": 1}'
    head = b"POST /c HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: %d\r\n\r\n" % len(body)
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        got = b""
        while b'"body"' not in got:
            got += sock.recv(65536)
        assert b'\\"x\\": 1' in got

    closing = _raw(url, b"GET /bye HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", b"\r\n\r\n{never}")
    assert b"connection: close" in closing.lower() and b'"/bye"' in closing  # and the router hung up
    bad = _raw(url, b"NOT HTTP AT ALL\r\n\r\n", b"}")
    assert bad.startswith(b"HTTP/1.1 400") and b"malformed HTTP request" in bad
