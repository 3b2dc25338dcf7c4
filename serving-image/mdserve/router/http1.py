"""HTTP/1.1 message building for the proxy: request heads to backends, response heads to callers.

Byte-level and allocation-light on purpose: this runs for every request.
"""

from __future__ import annotations

import json
import os
from http import HTTPStatus
from urllib.parse import urlsplit

# RFC 9110 §7.6.1 hop-by-hop headers, plus the framing headers the proxy recomputes itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)
# Request headers the proxy replaces (or must not pass: the body is sent whole, so no 100-continue).
_REQUEST_DROP = HOP_BY_HOP | {b"host", b"expect", b"x-request-id", b"x-forwarded-for"}
_RESPONSE_DROP = HOP_BY_HOP | {b"x-request-id", b"x-mdroute-variant"}

MAX_REQUEST_ID = 128
"""Longest client request id passed on; the model server applies the same rule."""
NO_BODY_STATUS = frozenset({204, 304})
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def request_id_of(given: str | None) -> str:
    """The client's ``x-request-id`` when it is short printable ASCII, else a fresh random id."""
    if given and len(given) <= MAX_REQUEST_ID and given.isascii() and given.isprintable():
        return given
    return os.urandom(16).hex()  # 128 random bits, like a uuid4, at a fraction of the cost


class Backend:
    """A backend base URL split into what connecting and addressing it need."""

    __slots__ = ("host", "host_header", "key", "port", "tls", "url")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.host_header = parts.netloc.encode("idna")
        self.key = (self.tls, self.host, self.port)


def request_tail(
    headers: list[tuple[bytes, bytes]], body_length: int, request_id: bytes, peer: bytes, with_length: bool
) -> bytes:
    """Everything after the ``Host`` line of the upstream request head, ending with the blank line."""
    out = []
    forwarded = b""
    has_proto = False
    for name, value in headers:
        lower = name.lower()
        if lower in _REQUEST_DROP:
            if lower == b"x-forwarded-for" and not forwarded:
                forwarded = value + b", "
            continue
        if lower == b"x-forwarded-proto":
            has_proto = True
        out.append(b"%s: %s\r\n" % (name, value))
    out.append(b"x-request-id: %s\r\nx-forwarded-for: %s%s\r\n" % (request_id, forwarded, peer))
    if not has_proto:
        out.append(b"x-forwarded-proto: http\r\n")
    if with_length:
        out.append(b"content-length: %d\r\n" % body_length)
    out.append(b"\r\n")
    return b"".join(out)


def request_head(method: bytes, target: bytes, backend: Backend, tail: bytes) -> bytes:
    """Request line and ``Host`` for one backend, plus the shared ``tail``."""
    return b"%s %s HTTP/1.1\r\nhost: %s\r\n%s" % (method, target, backend.host_header, tail)


def response_head(
    status: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]],
    extra: bytes,
    framing: bytes,
) -> bytes:
    """A response head: upstream headers minus hop-by-hop ones, then ``extra`` and ``framing`` lines."""
    out = [b"HTTP/1.1 %d %s\r\n" % (status, reason or _REASONS.get(status, b"Unknown"))]
    for name, value in headers:
        if name.lower() not in _RESPONSE_DROP:
            out.append(b"%s: %s\r\n" % (name, value))
    out.append(extra)
    out.append(framing)
    out.append(b"\r\n")
    return b"".join(out)


def simple_response(
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    extra: bytes = b"",
    close: bool = False,
) -> bytes:
    """A complete response the router produces itself."""
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s%s\r\n%s" % (
        status,
        _REASONS.get(status, b"Unknown"),
        content_type,
        len(body),
        extra,
        b"connection: close\r\n" if close else b"",
        body,
    )


def error_response(
    status: int, message: str, request_id: str, variant: str | None, close: bool = False
) -> bytes:
    """A JSON error from the router (``source: mdroute`` tells it apart from a backend's error)."""
    body = json.dumps({"error": message, "request_id": request_id, "variant": variant, "source": "mdroute"})
    extra = b"x-request-id: %s\r\n" % request_id.encode()
    if variant:
        extra += b"x-mdroute-variant: %s\r\n" % variant.encode()
    return simple_response(status, body.encode(), extra=extra, close=close)
