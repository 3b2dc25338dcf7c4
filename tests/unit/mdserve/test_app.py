"""The ASGI edge driven in memory through the ASGI interface (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mdserve.app import MdserveApp
from mdserve.dataplane import DataPlane
from mdserve.feedback import FeedbackStore
from mdserve.metrics import ServerMetrics
from mdserve.runtimes.sklearn import SklearnModel

pytestmark = pytest.mark.unit


def make_app(model: SklearnModel | None, limit: int = 4096) -> MdserveApp:
    dataplane = DataPlane("iris", "1", ServerMetrics("iris", "1", "stable", "1"), FeedbackStore(100))
    if model is not None:
        dataplane.install(model)
    return MdserveApp(dataplane, limit)


def call(
    app: MdserveApp,
    method: str,
    path: str,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    chunks: int = 1,
) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {"type": "http", "method": method, "path": path, "headers": headers or []}
    size = -(-len(body) // chunks)
    pieces = [body[i * size : (i + 1) * size] for i in range(chunks)]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body_message = sent
    return start["status"], dict(start["headers"]), body_message["body"]


INFER = orjson.dumps(
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
)


def test_request_id_is_echoed_or_generated(iris_model: SklearnModel) -> None:
    app = make_app(iris_model)
    status, headers, _ = call(app, "POST", "/v2/models/iris/infer", INFER, [(b"x-request-id", b"abc-1")])
    assert status == 200 and headers[b"x-request-id"] == b"abc-1"
    status, headers, _ = call(app, "GET", "/nowhere")
    assert status == 404 and len(headers[b"x-request-id"]) == 24
    _, headers, _ = call(app, "GET", "/v2/health/live", headers=[(b"x-request-id", b"bad\x01id")])
    assert headers[b"x-request-id"] != b"bad\x01id"


def test_errors_are_json_with_status(iris_model: SklearnModel) -> None:
    app = make_app(iris_model)
    status, _, body = call(app, "GET", "/v2/models/iris/infer")
    assert status == 405 and b"accepts POST" in body
    status, _, body = call(app, "POST", "/v2/models/iris/infer", b"{")
    assert status == 400 and "not valid JSON" in orjson.loads(body)["error"]
    status, _, body = call(app, "POST", "/v2/models/iris/infer", b"x" * 5000, [(b"content-length", b"5000")])
    assert status == 413 and b"4096" in body
    status, _, body = call(app, "POST", "/v2/models/iris/infer", b"x" * 5000, chunks=3)
    assert status == 413
    status, _, _ = call(app, "POST", "/v2/models/iris/infer", INFER, chunks=3)
    assert status == 200


def test_readiness_follows_the_model_and_draining(iris_model: SklearnModel) -> None:
    loading = make_app(None)
    assert call(loading, "GET", "/v2/health/ready")[0] == 503
    assert call(loading, "GET", "/v2/health/live")[0] == 200
    assert call(loading, "POST", "/v2/models/iris/infer", INFER)[0] == 503
    app = make_app(iris_model)
    assert call(app, "GET", "/v2/health/ready")[0] == 200
    assert call(app, "GET", "/v2/models/iris/ready")[0] == 200
    app.dataplane.draining = True
    status, headers, _ = call(app, "GET", "/v2/health/ready")
    assert status == 503 and headers[b"connection"] == b"close"
    assert call(app, "POST", "/v2/models/iris/infer", INFER)[0] == 200


def test_metrics_are_prometheus_text_with_contract_names(iris_model: SklearnModel) -> None:
    app = make_app(iris_model)
    call(app, "POST", "/v2/models/iris/infer", INFER, [(b"x-request-id", b"r")])
    call(app, "POST", "/v1/models/iris:predict", b'{"instances": [[1, 2]]}')
    call(app, "POST", "/v1/models/iris:feedback", b'{"request_id": "r", "truth": 1}')
    status, headers, body = call(app, "GET", "/metrics")
    assert status == 200 and headers[b"content-type"].startswith(b"text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    base = (("model", "iris"), ("revision", "1"), ("variant", "stable"), ("version", "1"))

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted((*base, *labels.items()))))]

    assert value("mdserve_requests_total", protocol="v2", code="200") == 1
    assert value("mdserve_requests_total", protocol="v1", code="400") == 1
    assert value("mdserve_errors_total", kind="wrong_shape") == 1
    assert value("mdserve_predictions_total", **{"class": "0"}) == 1
    assert value("mdserve_feedback_total", outcome="incorrect") == 1
    assert value("mdserve_request_duration_seconds_count", protocol="v2") == 1
    assert value("mdserve_inflight_requests") == 1  # the /metrics request itself
    # Error series exist from the start at 0, so increase() sees the first 5xx burst of a canary.
    assert value("mdserve_requests_total", protocol="v2", code="500") == 0
    assert value("mdserve_requests_total", protocol="v1", code="503") == 0


def test_every_error_status_is_pre_declared() -> None:
    from mdserve.errors import ERROR_STATUSES

    assert {400, 404, 405, 413, 415, 500, 503} <= set(ERROR_STATUSES)
