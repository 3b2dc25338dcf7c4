"""The proxy port: an HTTP/1.1 server on asyncio protocols (httptools) that forwards by the table.

Callers' connections are ``ClientProtocol``s; each parsed request goes to ``RouterCore.handle``,
which answers the router's own endpoints (``/-/healthz``, ``/-/ready``, ``/-/routes``,
``/metrics``) or asks the decider for a variant and relays the backend's response, then fires
the shadow copies. Written on raw protocols because the router's own latency is the product:
an aiohttp server + client pair measured ~15x nginx's added latency, this path a few times it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from typing import Any, cast

import httptools
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mdserve.router.http1 import (
    Backend,
    error_response,
    request_head,
    request_id_of,
    request_tail,
    response_head,
    simple_response,
)
from mdserve.router.metrics import RouterMetrics
from mdserve.router.state import ActiveTable, TableHolder
from mdserve.router.upstream import Pool, UpstreamClosed, UpstreamConnection, UpstreamError, UpstreamTimeout

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
        self.task: asyncio.Task[None] | None = None
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
            self.busy = True
            self.task = self.loop.create_task(self._serve_queue())

    # -- serving ---------------------------------------------------------------------------------
    async def _serve_queue(self) -> None:
        try:
            while self.queue and not self.closed:
                request = self.queue.popleft()
                await self.core.handle(self, request)
                if not request.keep_alive:
                    self.close()
                    return
                if len(self.queue) <= _MAX_QUEUED // 2 and self.transport is not None:
                    self.transport.resume_reading()
        except Exception:  # a bug must cost one connection, not the router
            log.exception("request handling failed")
            self.close()
        finally:
            self.busy = False
            self.last_active = self.loop.time()

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
        self._backends: dict[str, Backend] = {}
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._shadow_inflight: dict[str, int] = {}
        self._counters: dict[tuple[str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    def protocol(self) -> ClientProtocol:
        return ClientProtocol(self)

    def _backend(self, url: str) -> Backend:
        backend = self._backends.get(url)
        if backend is None:
            backend = self._backends[url] = Backend(url)
        return backend

    def _observe(self, variant: str, status: int, seconds: float) -> None:
        counter = self._counters.get((variant, status))
        if counter is None:
            counter = self._counters[(variant, status)] = self.metrics.requests.labels(variant, str(status))
        counter.inc()
        histogram = self._histograms.get(variant)
        if histogram is None:
            histogram = self._histograms[variant] = self.metrics.duration.labels(variant)
        histogram.observe(seconds)

    async def handle(self, proto: ClientProtocol, req: Request) -> None:
        """Serve one request on ``proto``."""
        target = req.target
        if target.startswith(b"/-/") or target == b"/metrics" or target.startswith(b"/metrics?"):
            proto.write(self._local(req))
            return
        started = time.perf_counter()
        headers: dict[str, str] = {}
        for name, value in req.headers:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        request_id = request_id_of(headers.get("x-request-id"))
        active = self.holder.active
        if active is None:
            proto.write(error_response(503, "no route table loaded yet", request_id, None))
            return
        if not target.startswith(b"/"):
            proto.write(error_response(400, "request target must be a path (origin-form)", request_id, None))
            return
        decision = active.decider.decide(headers)
        with_length = bool(req.body) or req.method in _BODY_METHODS
        rid = request_id.encode()
        tail = request_tail(req.headers, len(req.body), rid, proto.peer, with_length)
        status = await self._forward(proto, req, active, decision.variant, tail, request_id)
        self._observe(decision.variant, status, time.perf_counter() - started)
        if decision.shadows:
            shadow_tail = b"x-mdroute-shadow: 1\r\n" + tail
            for variant in decision.shadows:
                self._start_shadow(active, variant, req, shadow_tail)

    async def _forward(
        self,
        proto: ClientProtocol,
        req: Request,
        active: ActiveTable,
        variant: str,
        tail: bytes,
        request_id: str,
    ) -> int:
        backend = self._backend(active.backends[variant])
        t = active.table.timeouts
        payload = request_head(req.method, req.target, backend, tail) + req.body
        for attempt in (0, 1):
            try:
                conn = await self.pool.acquire(backend, t.connect_seconds)
            except TimeoutError:
                return self._fail(
                    proto,
                    504,
                    variant,
                    "timeout",
                    f"backend {backend.url} gave no connection within {t.connect_seconds:g}s",
                    request_id,
                )
            except OSError as exc:
                reason = exc.strerror or str(exc) or type(exc).__name__
                return self._fail(
                    proto,
                    502,
                    variant,
                    "connect",
                    f"cannot connect to backend {backend.url}: {reason}",
                    request_id,
                )
            head_future, done = conn.send(payload, req.head_only, t.request_seconds)
            try:
                head = await head_future
            except UpstreamClosed as exc:
                self.pool.release(conn, False)
                if exc.silent and conn.reused and attempt == 0:
                    # A pooled connection the backend closed as we reused it: the request never
                    # reached the application, so retrying on a fresh connection is safe.
                    log.debug("request %s to %s: pooled connection was closed, retrying", request_id, variant)
                    continue
                return self._fail(proto, 502, variant, "connect", f"backend {backend.url} {exc}", request_id)
            except UpstreamTimeout:
                self.pool.release(conn, False)
                return self._fail(
                    proto,
                    504,
                    variant,
                    "timeout",
                    f"backend {backend.url} did not answer within {t.request_seconds:g}s",
                    request_id,
                )
            except UpstreamError as exc:
                self.pool.release(conn, False)
                return self._fail(proto, 502, variant, exc.kind, f"backend {backend.url} {exc}", request_id)
            except BaseException:
                self.pool.release(conn, False)
                raise
            return await self._relay(
                proto,
                req,
                conn,
                head.status,
                head.reason,
                head.headers,
                head.has_body,
                done,
                variant,
                request_id,
            )
        raise AssertionError("unreachable: the second attempt always returns")

    async def _relay(
        self,
        proto: ClientProtocol,
        req: Request,
        conn: UpstreamConnection,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        has_body: bool,
        done: asyncio.Future[bool],
        variant: str,
        request_id: str,
    ) -> int:
        extra = b"x-request-id: %s\r\nx-mdroute-variant: %s\r\n" % (request_id.encode(), variant.encode())
        if not req.keep_alive:
            extra += b"connection: close\r\n"
        length = None
        for name, value in headers:
            if name.lower() == b"content-length":
                length = value
        if not has_body:
            # HEAD answers keep the length of the body a GET would get; 204/304 have none.
            framing = b"content-length: %s\r\n" % length if req.head_only and length is not None else b""
            proto.write(response_head(status, reason, headers, extra, framing))
            self.pool.release(conn, done.done() and not done.exception() and done.result())
            return status
        if done.done():  # the usual case: the whole response is already here, send it in one write
            try:
                reusable = done.result()
            except UpstreamError as exc:
                self.pool.release(conn, False)
                return self._fail(
                    proto, 502, variant, exc.kind, f"backend {conn.backend.url} {exc}", request_id
                )
            body = conn.take_body()
            proto.write(
                response_head(status, reason, headers, extra, b"content-length: %d\r\n" % len(body)) + body
            )
            self.pool.release(conn, reusable)
            return status
        chunked = length is None
        framing = b"transfer-encoding: chunked\r\n" if chunked else b"content-length: %s\r\n" % length
        proto.write(response_head(status, reason, headers, extra, framing))

        def sink(data: bytes) -> None:
            if data:
                proto.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)

        proto.upstream = conn
        conn.attach(sink)
        if proto.paused:
            conn.pause()
        try:
            reusable = await done
        except UpstreamError as exc:
            # Headers are already sent: the only honest signal left is to cut the connection.
            self.metrics.upstream_errors.labels(variant, "stream").inc()
            log.warning("request %s to %s: response stream broke: %s", request_id, variant, exc)
            self.pool.release(conn, False)
            proto.abort()
            return status
        finally:
            proto.upstream = None
        if chunked:
            proto.write(b"0\r\n\r\n")
        self.pool.release(conn, reusable)
        return status

    def _fail(
        self, proto: ClientProtocol, status: int, variant: str, kind: str, message: str, request_id: str
    ) -> int:
        self.metrics.upstream_errors.labels(variant, kind).inc()
        log.warning("request %s to %s: %s", request_id, variant, message)
        proto.write(error_response(status, message, request_id, variant))
        return status

    # -- shadows ---------------------------------------------------------------------------------
    def _start_shadow(self, active: ActiveTable, variant: str, req: Request, tail: bytes) -> None:
        # The bound is per variant: one slow shadow must not crowd out the copies to the others.
        inflight = self._shadow_inflight.get(variant, 0)
        if inflight >= self.shadow_max:
            self.metrics.shadow.labels(variant, "dropped").inc()
            return
        self._shadow_inflight[variant] = inflight + 1
        backend = self._backend(active.backends[variant])
        payload = request_head(req.method, req.target, backend, tail) + req.body
        t = active.table.timeouts
        task = self.loop.create_task(
            self._shadow(variant, backend, payload, req.head_only, t.connect_seconds, t.shadow_seconds)
        )
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(
        self, variant: str, backend: Backend, payload: bytes, head_only: bool, connect: float, total: float
    ) -> None:
        outcome = "error"
        conn: UpstreamConnection | None = None
        try:
            conn = await self.shadow_pool.acquire(backend, connect)
            head_future, done = conn.send(payload, head_only, total, idle_timeout=False)
            conn.attach(lambda _: None)  # the response is never used: do not keep it
            head = await head_future
            reusable = await done
            self.shadow_pool.release(conn, reusable)
            conn = None
            outcome = "ok" if head.status < 500 else "http_error"
        except (UpstreamTimeout, TimeoutError):
            outcome = "timeout"
        except (UpstreamError, OSError) as exc:
            log.debug("shadow to %s failed: %s", variant, exc)
        except Exception:  # a shadow must never take the router down, whatever goes wrong
            log.exception("shadow to %s failed unexpectedly", variant)
        finally:
            if conn is not None:
                self.shadow_pool.release(conn, False)
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
        running = [p.task for p in self.connections if p.busy and p.task is not None]
        if running:
            await asyncio.wait(running, timeout=grace_seconds)
        for proto in list(self.connections):
            proto.close()
        if self._shadow_tasks:
            await asyncio.wait(list(self._shadow_tasks), timeout=2.0)
        self.pool.close()
        self.shadow_pool.close()
