"""One proxied request, driven by callbacks from the backend connection.

The common case costs no task and no future: a pooled connection is taken synchronously, the
request written, and the response relayed to the caller from inside the backend connection's
``data_received`` — in one write when it arrived whole, streamed (with back-pressure) otherwise.
A task is created only to open a new connection or wait for a free one.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from mdserve.router.http1 import Backend, error_response, request_head, response_head
from mdserve.router.table import Timeouts
from mdserve.router.upstream import Head, UpstreamClosed, UpstreamConnection, UpstreamError, UpstreamTimeout

if TYPE_CHECKING:
    from mdserve.router.server import ClientProtocol, Request, RouterCore
    from mdserve.router.state import ActiveTable

log = logging.getLogger("mdserve.router")


class Exchange:
    """Forwards ``req`` to ``variant`` and relays the answer to ``proto``; implements ``Listener``."""

    __slots__ = (
        "active",
        "attempt",
        "backend",
        "body",
        "chunked",
        "conn",
        "core",
        "head",
        "payload",
        "proto",
        "remember",
        "req",
        "request_id",
        "shadow_tail",
        "shadows",
        "started",
        "streaming",
        "timeouts",
        "variant",
    )

    def __init__(
        self,
        core: RouterCore,
        proto: ClientProtocol,
        req: Request,
        active: ActiveTable,
        variant: str,
        shadows: tuple[str, ...],
        tail: bytes,
        request_id: str,
        started: float,
        remember: bool = False,
    ) -> None:
        self.core, self.proto, self.req, self.active = core, proto, req, active
        self.variant, self.shadows, self.request_id, self.started = variant, shadows, request_id, started
        self.backend: Backend = core.backend(active.backends[variant])
        self.timeouts: Timeouts = active.table.timeouts
        self.payload = request_head(req.method, req.target, self.backend, tail) + req.body
        self.shadow_tail = tail if shadows else b""
        self.attempt = 0
        self.conn: UpstreamConnection | None = None
        self.head: Head | None = None
        self.body: list[bytes] = []
        self.streaming = False
        self.chunked = False
        self.remember = remember
        """A prediction: on success, remember which variant served its request id (for feedback)."""

    def begin(self) -> None:
        conn = self.core.pool.take_idle(self.backend)
        if conn is not None:
            self._send(conn)
        else:
            self.core.spawn(self._connect(fresh=False))

    async def _connect(self, fresh: bool) -> None:
        t = self.timeouts
        try:
            conn = await self.core.pool.acquire(self.backend, t.connect_seconds, fresh=fresh)
        except TimeoutError:
            self._fail(504, "timeout", f"gave no connection within {t.connect_seconds:g}s")
            return
        except OSError as exc:
            self._fail(502, "connect", f"refused the connection: {exc.strerror or exc or type(exc).__name__}")
            return
        self._send(conn)

    def _send(self, conn: UpstreamConnection) -> None:
        self.conn = conn
        conn.start(self.payload, self.req.head_only, self.timeouts.request_seconds, True, self)

    # -- Listener --------------------------------------------------------------------------------
    def on_head(self, head: Head) -> None:
        self.head = head

    def on_body(self, data: bytes) -> None:
        if not data:
            return
        if not self.streaming:
            self.body.append(data)
        elif self.chunked:
            self.proto.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.proto.write(data)

    def on_received(self) -> None:
        # The response is still open after a batch of bytes: stop buffering and stream the rest.
        if not self.streaming and self.head is not None and self.head.has_body:
            self._start_streaming(self.head)

    def on_end(self, keep_alive: bool) -> None:
        head, conn = self.head, self.conn
        assert head is not None and conn is not None
        self.conn = None
        if self.streaming:
            if self.chunked:
                self.proto.write(b"0\r\n\r\n")
            self.proto.upstream = None
        elif not head.has_body:
            # HEAD answers keep the length of the body a GET would get; 204/304 have none.
            length = _content_length(head) if self.req.head_only else None
            framing = b"content-length: %s\r\n" % length if length is not None else b""
            self.proto.write(response_head(head.status, head.reason, head.headers, self._extra(), framing))
        else:
            body = b"".join(self.body)
            framing = b"content-length: %d\r\n" % len(body)
            self.proto.write(
                response_head(head.status, head.reason, head.headers, self._extra(), framing) + body
            )
        self.core.pool.release(conn, keep_alive)
        self._finish(head.status)

    def on_error(self, exc: UpstreamError) -> None:
        conn = self.conn
        assert conn is not None
        self.conn = None
        self.core.pool.release(conn, False)
        if self.streaming:
            # Headers are already sent: the only honest signal left is to cut the connection.
            self.proto.upstream = None
            self.core.metrics.upstream_errors.labels(self.variant, "stream").inc()
            log.warning("request %s to %s: response stream broke: %s", self.request_id, self.variant, exc)
            self.proto.abort()
            self._finish(self.head.status if self.head else 502)
            return
        if isinstance(exc, UpstreamClosed) and exc.silent and conn.reused and self.attempt == 0:
            # A pooled connection the backend closed as we reused it: the request never reached
            # the application, so one retry on a fresh connection is safe.
            log.debug(
                "request %s to %s: pooled connection was closed, retrying", self.request_id, self.variant
            )
            self.attempt, self.head, self.body = 1, None, []
            self.core.spawn(self._connect(fresh=True))
            return
        if isinstance(exc, UpstreamTimeout):
            self._fail(504, "timeout", f"did not answer within {self.timeouts.request_seconds:g}s")
        else:
            self._fail(502, exc.kind, str(exc))

    # -- helpers ---------------------------------------------------------------------------------
    def _extra(self) -> bytes:
        extra = b"x-request-id: %s\r\nx-mdroute-variant: %s\r\n" % (
            self.request_id.encode(),
            self.variant.encode(),
        )
        return extra if self.req.keep_alive else extra + b"connection: close\r\n"

    def _start_streaming(self, head: Head) -> None:
        length = _content_length(head)
        self.chunked = length is None
        framing = b"transfer-encoding: chunked\r\n" if length is None else b"content-length: %s\r\n" % length
        self.proto.write(response_head(head.status, head.reason, head.headers, self._extra(), framing))
        self.streaming = True
        buffered, self.body = self.body, []
        for chunk in buffered:
            self.on_body(chunk)
        conn = self.conn
        if conn is not None:
            self.proto.upstream = conn
            if self.proto.paused:
                conn.pause()

    def _fail(self, status: int, kind: str, message: str) -> None:
        message = f"backend {self.backend.url} {message}"
        self.core.metrics.upstream_errors.labels(self.variant, kind).inc()
        log.warning("request %s to %s: %s", self.request_id, self.variant, message)
        self.proto.write(error_response(status, message, self.request_id, self.variant))
        self._finish(status)

    def _finish(self, status: int) -> None:
        self.core.observe(self.variant, status, time.perf_counter() - self.started)
        if self.remember and 200 <= status < 300:
            self.core.memory.remember(self.request_id, self.variant)
        if self.shadows:  # after the caller's answer is written: copies never delay it
            for variant in self.shadows:
                self.core.start_shadow(self.active, variant, self.req, self.shadow_tail)
        self.core.exchange_finished()
        self.proto.exchange_done(self.req)


def _content_length(head: Head) -> bytes | None:
    for name, value in head.headers:
        if name.lower() == b"content-length":
            return value
    return None
