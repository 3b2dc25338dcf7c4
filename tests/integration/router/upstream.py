"""A small real HTTP upstream for router tests: ``python upstream.py --name NAME --port PORT``.

It answers every request with JSON naming itself, so a test can tell which backend served a
request without trusting the router's own headers. ``--mode`` makes it misbehave on purpose:
``fail`` answers 500, ``slow`` waits ``--delay`` seconds, ``reset`` drops the connection.
``GET /-/stats`` returns how many requests (and shadow copies) it has seen.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web


def build(name: str, mode: str, delay: float) -> web.Application:
    stats = {"total": 0, "shadow": 0}

    async def stats_handler(_: web.Request) -> web.Response:
        return web.json_response(stats)

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        stats["total"] += 1
        if request.headers.get("x-mdroute-shadow"):
            stats["shadow"] += 1
        if mode == "slow":
            await asyncio.sleep(delay)
        elif mode == "fail":
            return web.json_response({"backend": name, "error": "failing on purpose"}, status=500)
        elif mode == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if "sleep" in request.query:
            await asyncio.sleep(float(request.query["sleep"]))
        if "status" in request.query:
            return web.json_response({"backend": name}, status=int(request.query["status"]))
        if "chunks" in request.query:  # unsized, chunked, spread over time: must stream through
            response = web.StreamResponse(headers={"x-backend": name})
            await response.prepare(request)
            for i in range(int(request.query["chunks"])):
                await response.write(f"chunk-{i};".encode())
                await asyncio.sleep(0.05)
            await response.write_eof()
            return response
        if "empty" in request.query:
            return web.Response(status=204, headers={"x-backend": name})
        if "big" in request.query:
            return web.Response(body=b"x" * int(request.query["big"]), headers={"x-backend": name})
        payload = {
            "backend": name,
            "method": request.method,
            "path": request.path_qs,
            "request_id": request.headers.get("x-request-id"),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode(errors="replace"),
        }
        return web.Response(
            text=json.dumps(payload),
            content_type="application/json",
            headers={"x-backend": name, "set-cookie": f"seen={name}"},
        )

    app = web.Application(client_max_size=16 << 20)
    app.router.add_get("/-/stats", stats_handler)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=["ok", "fail", "slow", "reset"], default="ok")
    p.add_argument("--delay", type=float, default=0.5)
    a = p.parse_args()
    web.run_app(build(a.name, a.mode, a.delay), host="127.0.0.1", port=a.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
