"""HTTP/1.1 head building: what reaches the backend and what reaches the caller."""

from __future__ import annotations

import json

import pytest

from mdserve.router.http1 import (
    Backend,
    error_response,
    request_head,
    request_id_of,
    request_tail,
    response_head,
)

pytestmark = pytest.mark.unit


def test_request_head_rewrites_host_and_drops_hop_by_hop() -> None:
    headers = [
        (b"Host", b"router.example"),
        (b"Connection", b"keep-alive, x-secret"),
        (b"Content-Length", b"999"),
        (b"Expect", b"100-continue"),
        (b"X-Request-Id", b"old"),
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"Accept", b"application/json"),
        (b"accept", b"text/plain"),
    ]
    tail = request_tail(headers, 12, b"rid-1", b"127.0.0.1", with_length=True)
    head = request_head(b"POST", b"/v2/models/m/infer?x=1", Backend("http://demo-canary.ns.svc:8080"), tail)
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v2/models/m/infer?x=1 HTTP/1.1"
    assert lines[1] == b"host: demo-canary.ns.svc:8080"
    assert b"Accept: application/json" in lines and b"accept: text/plain" in lines  # repeats are kept
    assert b"x-request-id: rid-1" in lines and b"x-forwarded-for: 10.0.0.1, 127.0.0.1" in lines
    assert b"content-length: 12" in lines and b"x-forwarded-proto: http" in lines
    lowered = head.lower()
    assert b"999" not in head and b"expect" not in lowered and b"keep-alive" not in lowered
    assert head.endswith(b"\r\n\r\n")


def test_response_head_keeps_end_to_end_headers_only() -> None:
    upstream = [
        (b"Content-Type", b"application/json"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Set-Cookie", b"a=1"),
    ]
    head = response_head(200, b"", upstream, b"x-mdroute-variant: canary\r\n", b"content-length: 3\r\n")
    assert head == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\n"
        b"x-mdroute-variant: canary\r\ncontent-length: 3\r\n\r\n"
    )


def test_errors_are_json_with_the_request_id() -> None:
    raw = error_response(504, "backend http://x did not answer within 1s", "rid", "canary")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 504 Gateway Timeout") and b"x-request-id: rid" in head
    assert json.loads(body) == {
        "error": "backend http://x did not answer within 1s",
        "request_id": "rid",
        "variant": "canary",
        "source": "mdroute",
    }


@pytest.mark.parametrize("given", [None, "", "x" * 129, "tab\there", "é"])
def test_unusable_request_ids_are_replaced(given: str | None) -> None:
    made = request_id_of(given)
    assert made != given and len(made) == 32 and int(made, 16) >= 0


def test_backend_defaults() -> None:
    assert Backend("https://svc.ns").port == 443 and Backend("http://svc.ns").key == (False, "svc.ns", 80)
