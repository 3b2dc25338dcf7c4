"""Route table source in a cluster: watch one ConfigMap through the Kubernetes API.

A watch delivers a change within milliseconds of the write (a mounted ConfigMap can lag a
minute behind). The loop is list → watch from the list's resourceVersion → re-watch when the
server ends the stream → re-list on ``410 Gone``; any error is reported, retried with capped
exponential backoff, and never touches the table in use.

RBAC: ``get``, ``list`` and ``watch`` on ``configmaps``, which may be restricted with
``resourceNames: [<md-name>-routes]`` because every request carries a ``metadata.name`` selector.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from mdserve.router.kubeauth import KubeAccess
from mdserve.router.state import TableHolder
from mdserve.router.table import ROUTES_KEY

SOURCE = "kubernetes"


class KubeApiError(RuntimeError):
    """The API server answered with an error status."""


@dataclass(frozen=True)
class WatchStep:
    """What one list result or watch event means for the router."""

    kind: Literal["offer", "missing", "bookmark", "expired", "error"]
    """``offer`` a document, the ConfigMap or key is ``missing``, a ``bookmark``, the resourceVersion
    ``expired`` (re-list), or an ``error`` event."""
    resource_version: str | None = None
    """Where to resume watching from."""
    document: str | None = None
    """The route table text, for ``offer``."""
    message: str = ""
    """Explanation, for ``missing`` and ``error``."""


def configmap_step(obj: Mapping[str, Any] | None, where: str, key: str = ROUTES_KEY) -> WatchStep:
    """The step for a ConfigMap object (``None`` if it does not exist)."""
    if obj is None:
        return WatchStep("missing", message=f"ConfigMap {where} not found")
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    data = obj.get("data") or {}
    if key not in data:
        return WatchStep("missing", rv, message=f"ConfigMap {where} has no key {key!r}")
    return WatchStep("offer", rv, document=str(data[key]))


def interpret_event(event: Mapping[str, Any], where: str, key: str = ROUTES_KEY) -> WatchStep:
    """The step for one decoded watch event."""
    kind = event.get("type")
    obj = event.get("object") or {}
    if kind in ("ADDED", "MODIFIED"):
        return configmap_step(obj, where, key)
    if kind == "DELETED":
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        return WatchStep("missing", rv, message=f"ConfigMap {where} was deleted")
    if kind == "BOOKMARK":
        return WatchStep("bookmark", (obj.get("metadata") or {}).get("resourceVersion"))
    if kind == "ERROR" and obj.get("code") == 410:
        return WatchStep("expired", message=str(obj.get("message", "resourceVersion too old")))
    return WatchStep("error", message=f"unexpected watch event {kind}: {str(obj.get('message', obj))[:200]}")


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    # Split by hand: events can exceed aiohttp's readline limit for large ConfigMaps.
    buffer = b""
    async for chunk in content.iter_any():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


class ConfigMapSource:
    """Keeps the holder in sync with ``<namespace>/<name>`` key ``routes.json``."""

    def __init__(
        self,
        holder: TableHolder,
        load_access: Callable[[], KubeAccess],
        name: str,
        namespace: str | None,
        *,
        key: str = ROUTES_KEY,
        watch_seconds: int = 60,
        min_backoff: float = 0.2,
        max_backoff: float = 5.0,
    ) -> None:
        self.holder = holder
        self._load_access = load_access
        self.name = name
        self.namespace = namespace
        self.key = key
        self.watch_seconds = watch_seconds
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.connected = asyncio.Event()
        """Set once a list succeeded; cleared on errors (for readiness and tests)."""

    def _apply(self, step: WatchStep) -> None:
        if step.kind == "offer" and step.document is not None:
            self.holder.offer(step.document, SOURCE)
        elif step.kind == "missing":
            self.holder.source_error(SOURCE, step.message)

    async def run(self) -> None:
        """List and watch until cancelled."""
        backoff = self.min_backoff
        while True:
            try:
                access = await asyncio.to_thread(self._load_access)
                namespace = self.namespace or access.namespace or "default"
                ssl_ctx = await asyncio.to_thread(access.ssl_context)
                auth = await asyncio.to_thread(access.auth_headers)
                timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=self.watch_seconds + 15)
                async with aiohttp.ClientSession(headers=auth, timeout=timeout) as session:
                    base = f"{access.server}/api/v1/namespaces/{quote(namespace)}/configmaps"
                    selector = f"fieldSelector={quote('metadata.name=' + self.name)}"
                    where = f"{namespace}/{self.name}"
                    while True:  # one iteration per (re-)list
                        rv: str | None = await self._list(session, f"{base}?{selector}", ssl_ctx, where)
                        backoff = self.min_backoff
                        self.connected.set()
                        while rv is not None:  # one iteration per watch request
                            rv = await self._watch(session, f"{base}?{selector}", ssl_ctx, where, rv)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: keep the table, report, retry
                self.connected.clear()
                self.holder.source_error(SOURCE, f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff)

    async def _get_json(self, resp: aiohttp.ClientResponse) -> Any:
        if resp.status != 200:
            text = await resp.text()
            with contextlib.suppress(ValueError, AttributeError):
                text = json.loads(text).get("message", text)
            raise KubeApiError(f"API server answered {resp.status}: {str(text)[:300]}")
        return await resp.json(content_type=None)

    async def _list(self, session: aiohttp.ClientSession, url: str, ssl_ctx: Any, where: str) -> str:
        async with session.get(url, ssl=ssl_ctx) as resp:
            body = await self._get_json(resp)
        items = body.get("items") or []
        self._apply(configmap_step(items[0] if items else None, where, self.key))
        return str((body.get("metadata") or {}).get("resourceVersion", ""))

    async def _watch(
        self, session: aiohttp.ClientSession, url: str, ssl_ctx: Any, where: str, rv: str
    ) -> str | None:
        """Follow one watch stream; the resourceVersion to resume from, or ``None`` to re-list."""
        params = f"&watch=1&allowWatchBookmarks=true&timeoutSeconds={self.watch_seconds}&resourceVersion={rv}"
        async with session.get(url + params, ssl=ssl_ctx) as resp:
            if resp.status == 410:
                return None
            if resp.status != 200:
                await self._get_json(resp)  # raises with the server's message
            async for line in _lines(resp.content):
                step = interpret_event(json.loads(line), where, self.key)
                if step.kind == "expired":
                    return None
                if step.kind == "error":
                    raise KubeApiError(step.message)
                self._apply(step)
                if step.resource_version:
                    rv = step.resource_version
        return rv
