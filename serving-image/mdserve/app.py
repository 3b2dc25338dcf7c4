"""The HTTP edge: a raw ASGI application (no framework, for latency) that routes, reads bodies
within a size limit, calls the data plane and turns typed errors into JSON 4xx/5xx answers."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mdserve import __version__
from mdserve.dataplane import DataPlane
from mdserve.errors import MdserveError, MethodNotAllowed, NotFound, NotReady, PayloadTooLarge
from mdserve.routing import Route, route

log = logging.getLogger("mdserve.app")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
OCTET = b"application/octet-stream"
_BINARY_HEADER = b"inference-header-content-length"
_MAX_REQUEST_ID = 128


class ClientGone(Exception):
    """The client disconnected before its body arrived; nothing to answer."""


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's `x-request-id` when it is short printable ASCII, else a fresh random id."""
    for key, value in headers:
        if key == b"x-request-id":
            if 0 < len(value) <= _MAX_REQUEST_ID and value.isascii() and value.decode().isprintable():
                return value.decode()
            break
    return os.urandom(12).hex()


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """Read the whole body, refusing (413) as soon as it is known to exceed `limit` bytes."""
    declared = _header(scope["headers"], b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class MdserveApp:
    """ASGI callable serving one data plane."""

    def __init__(self, dataplane: DataPlane, max_request_bytes: int) -> None:
        self.dataplane = dataplane
        self.metrics = dataplane.metrics
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        request_id = request_id_from(headers)
        found = route(scope["path"])
        protocol = found.protocol if found is not None else "other"
        inflight = self.metrics.inflight_child
        inflight.inc()
        extra: list[tuple[bytes, bytes]] = []
        content_type = JSON
        try:
            if found is None:
                raise NotFound(f"nothing is served at {scope['path'][:128]}")
            if scope["method"] != found.method:
                raise MethodNotAllowed(f"{scope['path'][:128]} accepts {found.method}, not {scope['method']}")
            status, body, binary_length = await self._dispatch(found, scope, receive, request_id)
            if binary_length is not None:
                content_type = OCTET
                extra.append((_BINARY_HEADER, str(binary_length).encode()))
        except MdserveError as error:
            status, body = error.status, orjson.dumps({"error": error.message})
            self.metrics.observe_error(error.kind)
        except ClientGone:
            inflight.dec()
            return
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"][:128])
            status, body = 500, orjson.dumps({"error": "internal server error"})
            self.metrics.observe_error("internal")
        if found is not None and found.action == "metrics" and status == 200:
            content_type = CONTENT_TYPE_LATEST.encode()
        response_headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            *extra,
        ]
        if self.dataplane.draining:
            # Make keep-alive clients reconnect (and so reach a pod that is not going away).
            response_headers.append((b"connection", b"close"))
        try:
            await send({"type": "http.response.start", "status": status, "headers": response_headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            inflight.dec()
            self.metrics.observe_request(protocol, status, time.perf_counter() - started)

    async def _dispatch(
        self, found: Route, scope: Scope, receive: Receive, request_id: str
    ) -> tuple[int, bytes, int | None]:
        plane = self.dataplane
        action = found.action
        if action == "v2_infer":
            body = await read_body(scope, receive, self.max_request_bytes)
            raw_length = _header(scope["headers"], _BINARY_HEADER)
            json_length = int(raw_length) if raw_length is not None and raw_length.isdigit() else None
            payload, binary_length = await plane.infer_v2(
                found.model, found.version, body, json_length, request_id
            )
            return 200, payload, binary_length
        if action == "v1_predict":
            body = await read_body(scope, receive, self.max_request_bytes)
            return 200, await plane.predict_v1(found.model, found.version, body, request_id), None
        if action == "feedback":
            body = await read_body(scope, receive, self.max_request_bytes)
            return 200, plane.feedback(found.model, found.version, body), None
        if action == "live":
            return 200, b'{"live":true}', None
        if action == "ready":
            if not plane.ready:
                raise NotReady(
                    "the model is not loaded yet" if plane.served is None else "the server is shutting down"
                )
            return 200, b'{"ready":true}', None
        if action == "metrics":
            return 200, generate_latest(self.metrics.registry), None
        if action == "server_metadata":
            return (
                200,
                orjson.dumps(
                    {"name": "mdserve", "version": __version__, "extensions": ["binary_tensor_data"]}
                ),
                None,
            )
        if action == "v2_metadata":
            return 200, plane.metadata_v2(found.model, found.version), None
        if action == "v2_model_ready":
            if not plane.model_ready(found.model, found.version):
                raise NotReady(f"model {found.model!r} is not ready")
            return 200, orjson.dumps({"name": found.model, "ready": True}), None
        if action == "v1_status":
            return 200, plane.status_v1(found.model, found.version), None
        if action == "v1_metadata":
            return 200, plane.metadata_v1(found.model, found.version), None
        raise NotFound(f"no handler for {action}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
