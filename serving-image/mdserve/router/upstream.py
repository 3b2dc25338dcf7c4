"""Keep-alive connection pools to backends, on asyncio protocols with httptools' response parser.

One ``UpstreamConnection`` carries one exchange at a time. ``send`` returns two futures: the
response head, then completion (whether the connection may be reused). Body bytes either
accumulate (``take_body``: the usual small response, sent on in one write) or, once a sink is
attached, go straight to the caller (streaming, with back-pressure through ``pause``/``resume``).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httptools

from mdserve.router.http1 import NO_BODY_STATUS, Backend


class UpstreamError(Exception):
    """The backend exchange failed; ``kind`` is the metric label."""

    kind = "connect"


class UpstreamClosed(UpstreamError):
    """The backend closed the connection; ``silent`` if it sent no byte of a response first."""

    def __init__(self, message: str, silent: bool) -> None:
        super().__init__(message)
        self.silent = silent


class UpstreamTimeout(UpstreamError):
    """The backend went quiet for longer than the request timeout."""

    kind = "timeout"


class UpstreamProtocolError(UpstreamError):
    """The backend's response was not valid HTTP/1.1."""

    kind = "protocol"


@dataclass(slots=True)
class Head:
    """Status line and headers of a backend response."""

    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    has_body: bool


class UpstreamConnection(asyncio.Protocol):
    """A pooled connection to one backend."""

    def __init__(self, pool: Pool, backend: Backend) -> None:
        self.pool = pool
        self.backend = backend
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._head: asyncio.Future[Head] | None = None
        self._done: asyncio.Future[bool] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._body: list[bytes] = []
        self._sink: Callable[[bytes], None] | None = None
        self._head_only = False
        self._informational = False
        self._got_bytes = False
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self._idle_timeout = True
        self._last_data = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self._head is not None and not self._head.done():
            silent = not self._got_bytes
            self._fail(UpstreamClosed(f"closed the connection before answering ({exc or 'EOF'})", silent))
        elif self._done is not None and not self._done.done():
            self._fail(UpstreamClosed(f"closed the connection mid-response ({exc or 'EOF'})", False))

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        self._last_data = self.loop.time()
        parser = self._parser
        if parser is None:  # bytes outside an exchange: the connection is out of step, drop it
            self._abort()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("tried to switch protocols"))
            self._abort()
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"sent an invalid HTTP response: {exc}"))
            self._abort()

    def pause_writing(self) -> None:  # request bodies are written at once; nothing to pause
        pass

    # -- httptools callbacks ---------------------------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None and self._head is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # interim response (e.g. 103): skip it, the real one follows
            self._informational = True
            self._headers, self._reason = [], b""
            return
        has_body = not (self._head_only or status in NO_BODY_STATUS)
        if not self._head.done():
            self._head.set_result(Head(status, self._reason, self._headers, has_body))
        if not has_body:
            self._complete(self._parser.should_keep_alive())

    def on_body(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink(data)
        else:
            self._body.append(data)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self._parser is not None:
            self._complete(self._parser.should_keep_alive())

    # -- exchange --------------------------------------------------------------------------------
    def send(
        self, payload: bytes, head_only: bool, timeout: float, idle_timeout: bool = True
    ) -> tuple[asyncio.Future[Head], asyncio.Future[bool]]:
        """Write a complete request; ``timeout`` bounds silence (``idle_timeout``) or the whole exchange."""
        assert self.transport is not None
        self._parser = httptools.HttpResponseParser(self)
        self._head, self._done = self.loop.create_future(), self.loop.create_future()
        self._headers, self._reason, self._body, self._sink = [], b"", [], None
        self._head_only, self._informational, self._got_bytes = head_only, False, False
        self._timeout, self._idle_timeout = timeout, idle_timeout
        self._last_data = self.loop.time()
        self._timer = self.loop.call_at(self._last_data + timeout, self._check_timeout)
        self.transport.write(payload)
        return self._head, self._done

    def take_body(self) -> bytes:
        """The body bytes received so far (all of it once ``done`` is set)."""
        body = b"".join(self._body)
        self._body = []
        return body

    def attach(self, sink: Callable[[bytes], None]) -> None:
        """Send the rest of the body to ``sink``, starting with what has already arrived."""
        for chunk in self._body:
            sink(chunk)
        self._body = []
        self._sink = sink

    def pause(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def _check_timeout(self) -> None:
        self._timer = None
        if self._done is None or self._done.done():
            return
        if self._idle_timeout:
            remaining = self._last_data + self._timeout - self.loop.time()
            if remaining > 0.001:
                self._timer = self.loop.call_later(remaining, self._check_timeout)
                return
        self._fail(UpstreamTimeout(f"no answer within {self._timeout:g}s"))
        self._abort()

    def _complete(self, keep_alive: bool) -> None:
        self._parser = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._done is not None and not self._done.done():
            self._done.set_result(keep_alive and not self.closed)

    def _fail(self, exc: UpstreamError) -> None:
        self._parser = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fut in (self._head, self._done):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
        # Nobody may await ``done`` after a failed head: mark its exception as retrieved.
        if self._done is not None and self._done.done() and not self._done.cancelled():
            self._done.exception()

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Idle keep-alive connections per backend, and a cap on connections in use per backend."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, keepalive: float) -> None:
        self.loop = loop
        self.limit = limit
        self.keepalive = keepalive
        self._idle: dict[tuple[bool, str, int], collections.deque[UpstreamConnection]] = {}
        self._slots: dict[tuple[bool, str, int], asyncio.Semaphore] = {}
        self._all: set[UpstreamConnection] = set()
        self._tls: ssl.SSLContext | None = None

    async def acquire(self, backend: Backend, connect_timeout: float) -> UpstreamConnection:
        """A connection to ``backend``: the most recently used idle one, or a new one."""
        key = backend.key
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(self.limit)
        if slots.locked():  # all connections busy: waiting counts against the connect timeout
            async with asyncio.timeout(connect_timeout):
                await slots.acquire()
        else:
            await slots.acquire()  # returns at once; no timer on the hot path
        try:
            idle = self._idle.get(key)
            if idle:
                oldest_ok = self.loop.time() - self.keepalive
                while idle and idle[0].idle_since < oldest_ok:  # expire from the cold end
                    stale = idle.popleft()
                    if stale.transport is not None:
                        stale.transport.close()
                while idle:
                    conn = idle.pop()
                    if not conn.closed:
                        conn.reused = True
                        return conn
            async with asyncio.timeout(connect_timeout):
                return await self._connect(backend)
        except BaseException:
            slots.release()
            raise

    async def _connect(self, backend: Backend) -> UpstreamConnection:
        tls: ssl.SSLContext | None = None
        if backend.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        _, proto = await self.loop.create_connection(
            lambda: UpstreamConnection(self, backend), backend.host, backend.port, ssl=tls
        )
        self._all.add(proto)
        return proto

    def release(self, conn: UpstreamConnection, reusable: bool) -> None:
        """Return a connection after its exchange; close it unless ``reusable``."""
        self._slots[conn.backend.key].release()
        if reusable and not conn.closed:
            conn.idle_since = self.loop.time()
            self._idle.setdefault(conn.backend.key, collections.deque()).append(conn)
        elif conn.transport is not None:
            conn.closed = True
            conn.transport.close()

    def forget(self, conn: UpstreamConnection) -> None:
        self._all.discard(conn)
        idle = self._idle.get(conn.backend.key)
        if idle and conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        for conn in list(self._all):
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
