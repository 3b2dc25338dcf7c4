"""Classification of Prometheus HTTP API answers (the socket side is covered by the integration test)."""

from __future__ import annotations

import json
import math

import pytest

from modeldeploy.analysis.duration import parse_duration, promql_range
from modeldeploy.prometheus import ProviderErrorKind, parse_response

pytestmark = pytest.mark.unit


def body(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_vector_with_labels_and_special_values() -> None:
    doc = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"class": "a"}, "value": [1.0, "3"]},
                {"metric": {"class": "b"}, "value": [1.0, "NaN"]},
                {"metric": {}, "value": [1.0, "+Inf"]},
            ],
        },
    }
    r = parse_response("q", 200, body(doc))
    assert r.ok
    assert [dict(s.labels) for s in r.samples] == [{"class": "a"}, {"class": "b"}, {}]
    assert r.samples[0].value == 3 and math.isnan(r.samples[1].value) and math.isinf(r.samples[2].value)


def test_scalar_and_empty_vector() -> None:
    assert (
        parse_response(
            "q", 200, body({"status": "success", "data": {"resultType": "scalar", "result": [1, "0.5"]}})
        )
        .samples[0]
        .value
        == 0.5
    )
    empty = parse_response(
        "q", 200, body({"status": "success", "data": {"resultType": "vector", "result": []}})
    )
    assert empty.ok and empty.samples == ()


@pytest.mark.parametrize(
    ("status", "payload", "kind"),
    [
        (
            400,
            body({"status": "error", "errorType": "bad_data", "error": "parse error"}),
            ProviderErrorKind.BAD_QUERY,
        ),
        (422, body({"status": "error", "errorType": "execution", "error": "x"}), ProviderErrorKind.BAD_QUERY),
        (503, body({"status": "error", "errorType": "unavailable", "error": "x"}), ProviderErrorKind.HTTP),
        (502, b"<html>Bad Gateway</html>", ProviderErrorKind.HTTP),
        (200, b"not json", ProviderErrorKind.BAD_RESPONSE),
        (200, body({"status": "success", "data": {}}), ProviderErrorKind.BAD_RESPONSE),
        (
            200,
            body({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, None]}]}}),
            ProviderErrorKind.BAD_RESPONSE,
        ),
        (
            200,
            body({"status": "success", "data": {"resultType": "matrix", "result": []}}),
            ProviderErrorKind.BAD_QUERY,
        ),
    ],
)
def test_errors_are_classified(status: int, payload: bytes, kind: ProviderErrorKind) -> None:
    r = parse_response("q", status, payload)
    assert not r.ok and r.error is not None and r.error.kind == kind and r.samples == ()


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("1m", 60), ("1h30m", 5400), ("1.5m", 90), ("500ms", 0.5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "m", "1d", "1m 2s", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_promql_range_is_whole_seconds() -> None:
    assert promql_range(90.4) == "90s" and promql_range(0.2) == "1s"
