"""Feedback affinity, the I/O: a feedback request goes whole to one variant through the normal
proxy path or, when its items belong to several variants, as one request per variant whose
answers are merged back into one.

Precedence (docs/router.md, "Feedback"): an ``x-mdroute-variant`` request header, then the table's
rules (both explicit: the client or the operator chose), then the memory of which variant served
each request id, then the usual sticky key / split for ids the memory does not know.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mdserve.router.decide import Decision
from mdserve.router.feedback import VARIANT_HEADER, FeedbackBody, Part, merge, parse_feedback, part_body, plan
from mdserve.router.http1 import error_response, request_head, request_tail, response_head, simple_response
from mdserve.router.upstream import Head, UpstreamClosed, UpstreamError, UpstreamTimeout

if TYPE_CHECKING:
    from mdserve.router.server import ClientProtocol, Request, RouterCore
    from mdserve.router.state import ActiveTable


class _Collect:
    """A ``Listener`` that keeps a whole (bounded) response: feedback answers are small JSON."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.head: Head | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.done: asyncio.Future[bool] = loop.create_future()

    def on_head(self, head: Head) -> None:
        self.head = head

    def on_body(self, data: bytes) -> None:
        self.size += len(data)
        if self.size <= self.limit:
            self.chunks.append(data)

    def on_received(self) -> None:
        pass

    def on_end(self, keep_alive: bool) -> None:
        self.done.set_result(keep_alive)

    def on_error(self, exc: UpstreamError) -> None:
        self.done.set_exception(exc)


@dataclass(frozen=True, slots=True)
class _Answer:
    """One part's outcome: the backend's response, or an error the router makes (``head`` None)."""

    part: Part
    status: int
    body: bytes
    head: Head | None = None

    def render(self, request_id: str, keep_alive: bool) -> bytes:
        if self.head is None:
            return error_response(self.status, self.body.decode(), request_id, self.part.variant)
        extra = b"x-request-id: %s\r\nx-mdroute-variant: %s\r\n" % (
            request_id.encode(),
            self.part.variant.encode(),
        )
        if not keep_alive:
            extra += b"connection: close\r\n"
        framing = b"content-length: %d\r\n" % len(self.body)
        return response_head(self.status, self.head.reason, self.head.headers, extra, framing) + self.body


def _pinned(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == VARIANT_HEADER:
            return value.decode("latin-1").strip() or None
    return None


class FeedbackRouter:
    """Routes ``POST …:feedback`` requests for one ``RouterCore``."""

    def __init__(self, core: RouterCore) -> None:
        self.core = core

    def route(
        self,
        proto: ClientProtocol,
        req: Request,
        active: ActiveTable,
        headers: Mapping[str, str],
        request_id: str,
        started: float,
    ) -> None:
        core, decider = self.core, active.decider
        body = parse_feedback(req.body)
        count = len(body.ids) if body is not None else 1
        explicit = _pinned(req.headers)
        if explicit is not None and explicit not in active.backends:
            names = ", ".join(active.backends)
            message = f"x-mdroute-variant '{explicit[:64]}' names no variant of the route table ({names})"
            proto.write(error_response(400, message, request_id, None))
            proto.exchange_done(req)
            return
        if explicit is not None:
            core.metrics.feedback_routed.labels(explicit, "explicit").inc(count)
            core.forward(proto, req, active, explicit, (), request_id, started)
            return
        if decider.rule_variant(headers) is not None:  # routed (and mirrored) by its rule, as before
            decision = decider.decide(headers)
            core.metrics.feedback_routed.labels(decision.variant, "explicit").inc(count)
            core.forward(proto, req, active, decision.variant, decision.shadows, request_id, started)
            return
        if body is None:  # forwarded whole as before: the model server's 400 says what is wrong
            decision = decider.decide(headers)
            core.metrics.feedback_routed.labels(decision.variant, "fallback").inc()
            core.forward(proto, req, active, decision.variant, decision.shadows, request_id, started)
            return
        fallback: Decision | None = None

        def decide() -> str:
            nonlocal fallback
            fallback = decider.decide(headers)
            return fallback.variant

        def known(rid: str) -> str | None:
            variant = core.memory.variant_of(rid)
            return variant if variant in active.backends else None  # a variant since removed: unknown

        parts = plan(body.ids, known, decide)
        for part in parts:
            if part.remembered:
                core.metrics.feedback_routed.labels(part.variant, "remembered").inc(part.remembered)
            if len(part.indices) > part.remembered:
                core.metrics.feedback_routed.labels(part.variant, "fallback").inc(
                    len(part.indices) - part.remembered
                )
        if len(parts) == 1:
            # Today's routing, shadows included, when the memory played no part.
            only = parts[0]
            shadows = fallback.shadows if fallback is not None and not only.remembered else ()
            core.forward(proto, req, active, only.variant, shadows, request_id, started)
            return
        core.exchange_started()
        core.spawn(self._split(proto, req, active, body, parts, request_id, started))

    async def _split(
        self,
        proto: ClientProtocol,
        req: Request,
        active: ActiveTable,
        body: FeedbackBody,
        parts: list[Part],
        request_id: str,
        started: float,
    ) -> None:
        core = self.core
        try:
            answers = await asyncio.gather(
                *(self._send(proto, req, active, body, p, request_id) for p in parts)
            )
            seconds = time.perf_counter() - started
            for answer in answers:
                core.observe(answer.part.variant, answer.status, seconds)
            failed = next((a for a in answers if a.status != 200), None)
            if failed is not None:
                # Atomic per variant only: the other parts may be scored already (docs/router.md).
                proto.write(failed.render(request_id, req.keep_alive))
                return
            try:
                merged = merge(len(body.ids), [(a.part, a.body) for a in answers])
            except ValueError as exc:
                proto.write(error_response(502, str(exc), request_id, None))
                return
            variants = ",".join(p.variant for p in parts)
            extra = b"x-request-id: %s\r\nx-mdroute-variant: %s\r\n" % (
                request_id.encode(),
                variants.encode(),
            )
            proto.write(simple_response(200, merged, extra=extra, close=not req.keep_alive))
        finally:
            core.exchange_finished()
            proto.exchange_done(req)

    async def _send(
        self,
        proto: ClientProtocol,
        req: Request,
        active: ActiveTable,
        body: FeedbackBody,
        part: Part,
        rid: str,
    ) -> _Answer:
        core = self.core
        content = part_body(body, part)
        tail = request_tail(req.headers, len(content), rid.encode(), proto.peer, True)
        backend = core.backend(active.backends[part.variant])
        payload = request_head(req.method, req.target, backend, tail) + content
        t = active.table.timeouts

        def failed(status: int, kind: str, message: str) -> _Answer:
            core.metrics.upstream_errors.labels(part.variant, kind).inc()
            return _Answer(part, status, f"backend {backend.url} {message}".encode())

        for attempt in range(2):
            try:
                conn = core.pool.take_idle(backend) if attempt == 0 else None
                if conn is None:
                    conn = await core.pool.acquire(backend, t.connect_seconds, fresh=attempt > 0)
            except TimeoutError:
                return failed(504, "timeout", f"gave no connection within {t.connect_seconds:g}s")
            except OSError as exc:
                reason = exc.strerror or exc or type(exc).__name__
                return failed(502, "connect", f"refused the connection: {reason}")
            collect = _Collect(core.loop, core.max_body)
            conn.start(payload, False, t.request_seconds, True, collect)
            try:
                keep_alive = await collect.done
            except UpstreamError as exc:
                core.pool.release(conn, False)
                if isinstance(exc, UpstreamClosed) and exc.silent and conn.reused and attempt == 0:
                    continue  # a pooled connection closed as we reused it: the request never arrived
                if isinstance(exc, UpstreamTimeout):
                    return failed(504, "timeout", f"did not answer within {t.request_seconds:g}s")
                return failed(502, exc.kind, str(exc))
            core.pool.release(conn, keep_alive)
            if collect.size > collect.limit:
                return failed(502, "protocol", f"answered feedback with more than {collect.limit} bytes")
            assert collect.head is not None
            return _Answer(part, collect.head.status, b"".join(collect.chunks), collect.head)
        raise AssertionError("unreachable: the second attempt always returns")
