"""The admin port: ``PUT /-/routes`` pushes a table directly (local runs, tests, emergencies)."""

from __future__ import annotations

import hmac
import json

from aiohttp import web

from mdserve.router.state import TableHolder

SOURCE_ADMIN = "admin"


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


def build_admin_app(holder: TableHolder, token: str) -> web.Application:
    """The admin port: ``PUT /-/routes`` replaces the table (bearer token), ``GET`` shows it."""
    expected = f"Bearer {token}".encode()

    def authorized(request: web.Request) -> bool:
        return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected)

    async def put_routes(request: web.Request) -> web.Response:
        if not authorized(request):
            return _json({"error": "missing or wrong bearer token"}, 401)
        outcome = holder.offer(await request.read(), SOURCE_ADMIN)
        if outcome == "invalid":
            return _json({"error": holder.last_error, "outcome": outcome}, 422)
        return _json({"outcome": outcome, "version": holder.active.table.version if holder.active else None})

    async def get_routes(request: web.Request) -> web.Response:
        if not authorized(request):
            return _json({"error": "missing or wrong bearer token"}, 401)
        return _json(holder.view())

    app = web.Application(client_max_size=4 << 20)
    app.router.add_put("/-/routes", put_routes)
    app.router.add_get("/-/routes", get_routes)
    return app
