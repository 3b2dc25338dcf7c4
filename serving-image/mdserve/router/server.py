"""The proxy port: an HTTP/1.1 server on asyncio protocols (httptools) that forwards by the table.

Callers' connections are ``ClientProtocol``s; each parsed request goes to ``RouterCore.start``,
which answers the router's own endpoints (``/-/healthz``, ``/-/ready``, ``/-/routes``,
``/metrics``) or asks the decider for a variant and hands the request to an ``Exchange``
(``exchange.py``), which relays the backend's answer and then fires the shadow copies. Written on
raw protocols and callbacks because the router's own latency is the product: an aiohttp server +
client pair measured ~15x nginx's added latency (see docs/benchmarks.md for this path).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Coroutine
from typing import Any, cast

import httptools
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mdserve.router.exchange import Exchange
from mdserve.router.feedback import FeedbackMemory, is_feedback, is_inference
from mdserve.router.feedback_proxy import FeedbackRouter
from mdserve.router.http1 import (
    Backend,
    error_response,
    request_head,
    request_id_of,
    request_tail,
    simple_response,
)
from mdserve.router.metrics import RouterMetrics
from mdserve.router.state import ActiveTable, TableHolder
from mdserve.router.upstream import FutureListener, Pool, UpstreamConnection, UpstreamError, UpstreamTimeout

log = logging.getLogger("mdserve.router")

_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_MAX_QUEUED = 8
"""Pipelined requests parsed ahead of the one being served before reading pauses."""


class Request:
    """One parsed request from a caller."""

    __slots__ = ("body", "head_only", "headers", "keep_alive", "method", "target")

    def __init__(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.head_only = method == b"HEAD"


class ClientProtocol(asyncio.Protocol):
    """A caller's connection: parses requests and serves them one at a time, in order."""

    def __init__(self, core: RouterCore) -> None:
        self.core = core
        self.loop = core.loop
        self.transport: asyncio.Transport | None = None
        self.peer = b""
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[Request] = collections.deque()
        self.busy = False
        self.closed = False
        self.paused = False
        self.upstream: UpstreamConnection | None = None
        self.last_active = self.loop.time()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._refused = False

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        self.peer = str(peer[0]).encode() if peer else b""
        self.core.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.core.connections.discard(self)
        if self.upstream is not None:  # nobody will read the rest of a streamed response
            self.upstream.resume()

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        if self._refused:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.refuse(501, "protocol upgrades (e.g. WebSocket) are not supported by the router")
        except httptools.HttpParserError as exc:
            self.refuse(400, f"malformed HTTP request: {exc}")

    def pause_writing(self) -> None:
        self.paused = True
        if self.upstream is not None:
            self.upstream.pause()

    def resume_writing(self) -> None:
        self.paused = False
        if self.upstream is not None:
            self.upstream.resume()

    # -- httptools callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size = b"", [], [], 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        for name, value in self._headers:
            lower = name.lower()
            if lower == b"content-length" and value.isdigit() and int(value) > self.core.max_body:
                self.refuse(413, f"request body larger than {self.core.max_body} bytes")
                return
            if lower == b"expect" and value.lower() == b"100-continue":
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, data: bytes) -> None:
        if self._refused:
            return
        self._size += len(data)
        if self._size > self.core.max_body:
            self.refuse(413, f"request body larger than {self.core.max_body} bytes")
            return
        self._body.append(data)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        method = self.parser.get_method()
        body = b"".join(self._body)
        self.queue.append(Request(method, self._url, self._headers, body, self.parser.should_keep_alive()))
        if len(self.queue) > _MAX_QUEUED and self.transport is not None:
            self.transport.pause_reading()
        if not self.busy:
            self._next()

    # -- serving ---------------------------------------------------------------------------------
    def _next(self) -> None:
        if not self.queue or self.closed:
            self.busy = False
            return
        self.busy = True
        request = self.queue.popleft()
        if len(self.queue) <= _MAX_QUEUED // 2 and self.transport is not None:
            self.transport.resume_reading()
        try:
            self.core.start(self, request)
        except Exception:  # a bug must cost one connection, not the router
            log.exception("request handling failed")
            self.busy = False
            self.close()

    def exchange_done(self, request: Request) -> None:
        """The answer to ``request`` is written; serve the next pipelined request, if any."""
        self.last_active = self.loop.time()
        if not request.keep_alive:
            self.busy = False
            self.close()
        elif self.queue:
            # Not re-entered directly: this may run inside a backend connection's callbacks.
            self.loop.call_soon(self._next)
        else:
            self.busy = False

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def refuse(self, status: int, message: str) -> None:
        """Answer an unusable request and close: the stream cannot be resynchronised."""
        self._refused = True
        self.write(error_response(status, message, request_id_of(None), None, close=True))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class RouterCore:
    """Routing and relaying, shared by all caller connections."""

    def __init__(
        self,
        holder: TableHolder,
        metrics: RouterMetrics,
        loop: asyncio.AbstractEventLoop,
        *,
        pool_size: int,
        keepalive_seconds: float,
        max_body: int,
        shadow_max_inflight: int,
        feedback_memory: int = 0,
    ) -> None:
        self.holder = holder
        self.metrics = metrics
        self.loop = loop
        self.max_body = max_body
        self.pool = Pool(loop, pool_size, keepalive_seconds)
        # A separate pool, so slow shadows can never take the connections callers wait on.
        self.shadow_pool = Pool(loop, max(1, min(pool_size, shadow_max_inflight)), keepalive_seconds)
        self.shadow_max = shadow_max_inflight
        self.connections: set[ClientProtocol] = set()
        self.memory = FeedbackMemory(feedback_memory)
        self.feedback = FeedbackRouter(self)
        self._backends: dict[str, Backend] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._shadow_inflight: dict[str, int] = {}
        self.inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._counters: dict[tuple[str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    def protocol(self) -> ClientProtocol:
        return ClientProtocol(self)

    def backend(self, url: str) -> Backend:
        backend = self._backends.get(url)
        if backend is None:
            backend = self._backends[url] = Backend(url)
        return backend

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine in the background, keeping a reference until it ends."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def observe(self, variant: str, status: int, seconds: float) -> None:
        counter = self._counters.get((variant, status))
        if counter is None:
            counter = self._counters[(variant, status)] = self.metrics.requests.labels(variant, str(status))
        counter.inc()
        histogram = self._histograms.get(variant)
        if histogram is None:
            histogram = self._histograms[variant] = self.metrics.duration.labels(variant)
        histogram.observe(seconds)

    def start(self, proto: ClientProtocol, req: Request) -> None:
        """Begin serving ``req``; ``proto.exchange_done`` is called once its answer is written."""
        target = req.target
        if target.startswith(b"/-/") or target == b"/metrics" or target.startswith(b"/metrics?"):
            proto.write(self._local(req))
            proto.exchange_done(req)
            return
        started = time.perf_counter()
        active = self.holder.active
        wanted = active.decider.header_names if active is not None else frozenset()
        headers: dict[str, str] = {}
        given_id: str | None = None
        for name, value in req.headers:
            lower = name.lower()
            if lower in wanted:
                headers.setdefault(lower.decode("latin-1"), value.decode("latin-1"))
            elif lower == b"x-request-id" and given_id is None:
                given_id = value.decode("latin-1")
        request_id = request_id_of(given_id if given_id is not None else headers.get("x-request-id"))
        if active is None:
            proto.write(error_response(503, "no route table loaded yet", request_id, None))
            proto.exchange_done(req)
            return
        if not target.startswith(b"/"):
            proto.write(error_response(400, "request target must be a path (origin-form)", request_id, None))
            proto.exchange_done(req)
            return
        if is_feedback(req.method, target):
            self.feedback.route(proto, req, active, headers, request_id, started)
            return
        decision = active.decider.decide(headers)
        remember = is_inference(req.method, target)
        self.forward(proto, req, active, decision.variant, decision.shadows, request_id, started, remember)

    def forward(
        self,
        proto: ClientProtocol,
        req: Request,
        active: ActiveTable,
        variant: str,
        shadows: tuple[str, ...],
        request_id: str,
        started: float,
        remember: bool = False,
    ) -> None:
        """Relay ``req`` whole to ``variant`` (then copy it to ``shadows``)."""
        with_length = bool(req.body) or req.method in _BODY_METHODS
        tail = request_tail(req.headers, len(req.body), request_id.encode(), proto.peer, with_length)
        self.exchange_started()
        Exchange(self, proto, req, active, variant, shadows, tail, request_id, started, remember).begin()

    def exchange_started(self) -> None:
        self.inflight += 1
        self._idle.clear()

    def exchange_finished(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    # -- shadows ---------------------------------------------------------------------------------
    def start_shadow(self, active: ActiveTable, variant: str, req: Request, tail: bytes) -> None:
        """Send a fire-and-forget copy of ``req`` to ``variant`` (``tail``: the primary's header lines)."""
        # The bound is per variant: one slow shadow must not crowd out the copies to the others.
        inflight = self._shadow_inflight.get(variant, 0)
        if inflight >= self.shadow_max:
            self.metrics.shadow.labels(variant, "dropped").inc()
            return
        self._shadow_inflight[variant] = inflight + 1
        backend = self.backend(active.backends[variant])
        payload = request_head(req.method, req.target, backend, b"x-mdroute-shadow: 1\r\n" + tail) + req.body
        t = active.table.timeouts
        self.spawn(
            self._shadow(variant, backend, payload, req.head_only, t.connect_seconds, t.shadow_seconds)
        )

    async def _shadow(
        self, variant: str, backend: Backend, payload: bytes, head_only: bool, connect: float, total: float
    ) -> None:
        outcome = "error"
        try:
            conn = await self.shadow_pool.acquire(backend, connect)
            listener = FutureListener(self.loop)
            conn.start(payload, head_only, total, False, listener)
            try:
                head = await listener.head
                reusable = await listener.done
            except BaseException:
                self.shadow_pool.release(conn, False)
                raise
            self.shadow_pool.release(conn, reusable)
            outcome = "ok" if head.status < 500 else "http_error"
        except (UpstreamTimeout, TimeoutError):
            outcome = "timeout"
        except (UpstreamError, OSError) as exc:
            log.debug("shadow to %s failed: %s", variant, exc)
        except Exception:  # a shadow must never take the router down, whatever goes wrong
            log.exception("shadow to %s failed unexpectedly", variant)
        finally:
            self._shadow_inflight[variant] -= 1
            self.metrics.shadow.labels(variant, outcome).inc()

    # -- the router's own endpoints --------------------------------------------------------------
    def _local(self, req: Request) -> bytes:
        path = req.target.split(b"?", 1)[0]
        if req.method not in (b"GET", b"HEAD"):
            return simple_response(
                405, b'{"error": "router endpoints accept GET only"}', close=not req.keep_alive
            )
        if path == b"/-/healthz":
            return self._json(200, {"status": "alive"}, req)
        if path == b"/-/ready":
            active = self.holder.active
            if active is None:
                return self._json(
                    503, {"status": "no route table loaded yet", "last_error": self.holder.last_error}, req
                )
            return self._json(200, {"status": "ready", "version": active.table.version}, req)
        if path == b"/-/routes":
            return self._json(200, self.holder.view(), req)
        if path == b"/metrics":
            body = generate_latest(self.metrics.registry)
            return simple_response(200, body, CONTENT_TYPE_LATEST.encode(), close=not req.keep_alive)
        return self._json(404, {"error": f"no router endpoint {path.decode('latin-1')!r}"}, req)

    @staticmethod
    def _json(status: int, data: object, req: Request) -> bytes:
        return simple_response(status, json.dumps(data).encode(), close=not req.keep_alive)

    # -- lifecycle -------------------------------------------------------------------------------
    def close_idle(self, idle_seconds: float) -> None:
        """Close caller connections idle for longer than ``idle_seconds``."""
        oldest = self.loop.time() - idle_seconds
        for proto in list(self.connections):
            if not proto.busy and proto.last_active < oldest:
                proto.close()

    async def drain(self, grace_seconds: float) -> None:
        """Let in-flight requests finish (up to ``grace_seconds``), then close everything."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        for proto in list(self.connections):
            proto.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        self.pool.close()
        self.shadow_pool.close()
