"""Keep-alive connection pools to backends, on asyncio protocols with httptools' response parser.

One ``UpstreamConnection`` carries one exchange at a time and reports it to a ``Listener`` by
plain callbacks (head, body chunks, end or error), so the proxy's hot path needs no task and no
future: the response is relayed from inside ``data_received``. ``FutureListener`` adapts the
callbacks to awaitables for code where latency does not matter (shadow copies).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from dataclasses import dataclass
from typing import Protocol, cast

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


class Listener(Protocol):
    """Receives one exchange's events; exactly one of ``on_end``/``on_error`` ends it."""

    def on_head(self, head: Head) -> None: ...

    def on_body(self, data: bytes) -> None: ...

    def on_received(self) -> None:
        """Called after each batch of bytes while the exchange is still open (a streaming hint)."""

    def on_end(self, keep_alive: bool) -> None: ...

    def on_error(self, exc: UpstreamError) -> None: ...


class FutureListener:
    """Awaitable view of an exchange whose body is not needed (``head`` then ``done``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.head: asyncio.Future[Head] = loop.create_future()
        self.done: asyncio.Future[bool] = loop.create_future()

    def on_head(self, head: Head) -> None:
        self.head.set_result(head)

    def on_body(self, data: bytes) -> None:
        pass

    def on_received(self) -> None:
        pass

    def on_end(self, keep_alive: bool) -> None:
        self.done.set_result(keep_alive)

    def on_error(self, exc: UpstreamError) -> None:
        for fut in (self.head, self.done):
            if not fut.done():
                fut.set_exception(exc)
        self.done.exception()  # mark retrieved: after a failed head nobody awaits ``done``


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
        self._listener: Listener | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._head_only = False
        self._head_seen = False
        self._framed = False
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
        if self._listener is None:
            return
        if self._head_seen and not self._framed:
            self._end(False)  # a body delimited by the connection closing (HTTP/1.0 style)
        elif self._head_seen:
            self._fail(UpstreamClosed(f"closed the connection mid-response ({exc or 'EOF'})", False))
        else:
            silent = not self._got_bytes
            self._fail(UpstreamClosed(f"closed the connection before answering ({exc or 'EOF'})", silent))

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
            return
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"sent an invalid HTTP response: {exc}"))
            self._abort()
            return
        listener = self._listener
        if listener is not None and self._head_seen:
            listener.on_received()

    # -- httptools callbacks ---------------------------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser, listener = self._parser, self._listener
        if parser is None or listener is None:
            return
        status = parser.get_status_code()
        if 100 <= status < 200:  # interim response (e.g. 103): skip it, the real one follows
            self._informational = True
            self._headers, self._reason = [], b""
            return
        for name, _ in self._headers:
            lower = name.lower()
            if lower == b"content-length" or lower == b"transfer-encoding":
                self._framed = True
        has_body = not (self._head_only or status in NO_BODY_STATUS)
        self._head_seen = True
        listener.on_head(Head(status, self._reason, self._headers, has_body))
        if not has_body:
            self._end(parser.should_keep_alive())

    def on_body(self, data: bytes) -> None:
        if self._listener is not None:
            self._listener.on_body(data)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self._parser is not None:
            self._end(self._parser.should_keep_alive())

    # -- exchange --------------------------------------------------------------------------------
    def start(
        self, payload: bytes, head_only: bool, timeout: float, idle_timeout: bool, listener: Listener
    ) -> None:
        """Write a complete request; ``timeout`` bounds silence (``idle_timeout``) or the whole exchange."""
        assert self.transport is not None
        self._listener = listener
        self._parser = httptools.HttpResponseParser(self)
        self._headers, self._reason = [], b""
        self._head_only, self._head_seen, self._framed = head_only, False, False
        self._informational, self._got_bytes = False, False
        self._timeout, self._idle_timeout = timeout, idle_timeout
        self._last_data = self.loop.time()
        self._timer = self.loop.call_at(self._last_data + timeout, self._check_timeout)
        self.transport.write(payload)

    def pause(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def _check_timeout(self) -> None:
        self._timer = None
        if self._listener is None:
            return
        if self._idle_timeout:
            remaining = self._last_data + self._timeout - self.loop.time()
            if remaining > 0.001:
                self._timer = self.loop.call_later(remaining, self._check_timeout)
                return
        self._fail(UpstreamTimeout(f"no answer within {self._timeout:g}s"))
        self._abort()

    def _finish_exchange(self) -> Listener | None:
        listener, self._listener, self._parser = self._listener, None, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return listener

    def _end(self, keep_alive: bool) -> None:
        listener = self._finish_exchange()
        if listener is not None:
            listener.on_end(keep_alive and not self.closed)

    def _fail(self, exc: UpstreamError) -> None:
        listener = self._finish_exchange()
        if listener is not None:
            listener.on_error(exc)

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
        self._busy: dict[tuple[bool, str, int], int] = {}
        self._waiters: dict[tuple[bool, str, int], collections.deque[asyncio.Future[None]]] = {}
        self._all: set[UpstreamConnection] = set()
        self._tls: ssl.SSLContext | None = None

    def take_idle(self, backend: Backend) -> UpstreamConnection | None:
        """An idle connection to ``backend`` right now, or ``None`` (then use ``acquire``)."""
        key = backend.key
        if self._busy.get(key, 0) >= self.limit:
            return None
        conn = self._pop_idle(key)
        if conn is not None:
            self._busy[key] = self._busy.get(key, 0) + 1
        return conn

    def _pop_idle(self, key: tuple[bool, str, int]) -> UpstreamConnection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest_ok = self.loop.time() - self.keepalive
        while idle and idle[0].idle_since < oldest_ok:  # expire from the cold end
            stale = idle.popleft()
            if stale.transport is not None:
                stale.transport.close()
        while idle:
            conn = idle.pop()  # the most recently used: least likely to have been closed by the server
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    async def acquire(
        self, backend: Backend, connect_timeout: float, fresh: bool = False
    ) -> UpstreamConnection:
        """A connection to ``backend`` (a new one if ``fresh``), waiting for a free slot if needed."""
        key = backend.key
        async with asyncio.timeout(connect_timeout):
            while self._busy.get(key, 0) >= self.limit:
                waiter = self.loop.create_future()
                self._waiters.setdefault(key, collections.deque()).append(waiter)
                try:
                    await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self._wake(key)  # pass on a wake-up this waiter can no longer use
                    else:
                        self._waiters[key].remove(waiter)
                    raise
            self._busy[key] = self._busy.get(key, 0) + 1
            try:
                conn = None if fresh else self._pop_idle(key)
                return conn if conn is not None else await self._connect(backend)
            except BaseException:
                self._release_slot(key)
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

    def _wake(self, key: tuple[bool, str, int]) -> None:
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _release_slot(self, key: tuple[bool, str, int]) -> None:
        self._busy[key] -= 1
        self._wake(key)

    def release(self, conn: UpstreamConnection, reusable: bool) -> None:
        """Return a connection after its exchange; close it unless ``reusable``."""
        self._release_slot(conn.backend.key)
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
