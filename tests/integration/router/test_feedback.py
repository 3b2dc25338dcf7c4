"""Feedback follows its prediction: two real model servers behind an unsticky 50/50 split, every
feedback item sent through the router must be scored by the server that made the prediction."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.router.harness import Proc, Processes, metric
from tests.integration.router.test_model_servers import ROWS, body_for, iris_model, routed_model_servers

__all__ = ["iris_model", "test_feedback_reaches_the_variant_that_predicted"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRUTH = [0, 2, 1, 2]
"""The iris classes of ``ROWS`` (what the model predicts for them, too)."""
N = 40


def post(url: str, body: Any, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={**(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, got, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, got, raw = exc.code, exc.headers, exc.read()
    return status, {k.lower(): v for k, v in got.items()}, json.loads(raw)


def feedback_counted(server: Proc, variant: str) -> float:
    """Feedback rows a model server scored itself (``mdserve_feedback_total``, both outcomes)."""
    total = 0.0
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
        for family in text_string_to_metric_families(resp.read().decode()):
            for s in family.samples:
                if s.name == "mdserve_feedback_total" and s.labels.get("variant") == variant:
                    total += s.value
    return total


def item(i: int) -> dict[str, Any]:
    return {"request_id": f"fb-{i}", "truth": TRUTH[i % len(ROWS)]}


def assert_scored(results: Sequence[dict[str, Any]], ids: Sequence[int]) -> None:
    assert [r["request_id"] for r in results] == [f"fb-{i}" for i in ids]  # original order
    assert all(r["status"] == "scored" and r["correct"] == 1 for r in results), results


def test_feedback_reaches_the_variant_that_predicted(
    procs: Processes, tmp_path: Path, iris_model: tuple[Path, str]
) -> None:
    servers, router = routed_model_servers(procs, tmp_path, iris_model, {"stable": 50, "canary": 50})

    served_by: dict[int, str] = {}
    for i in range(N):
        status, headers, _ = post(
            router.url + "/v1/models/iris:predict", body_for(i), {"x-request-id": f"fb-{i}"}
        )
        assert status == 200
        served_by[i] = headers["x-mdroute-variant"]
    assert sorted(set(served_by.values())) == ["canary", "stable"]
    by_variant = {v: [i for i in range(N) if served_by[i] == v] for v in servers}

    # Singles, grouped by variant: the split alone (which alternates) would send half to the wrong one.
    singles = by_variant["stable"][:5] + by_variant["canary"][:5]
    for i in singles:
        status, headers, body = post(router.url + "/v1/models/iris:feedback", item(i))
        assert status == 200, body
        assert headers["x-mdroute-variant"] == served_by[i]
        assert_scored(body["results"], [i])

    # Lists mixing both variants, on the V1 and the V2 path: split per variant, merged in order.
    rest = [i for i in range(N) if i not in singles]
    for n, start in enumerate(range(0, len(rest), 10)):
        ids = rest[start : start + 10]
        path = "/v2/models/iris/feedback" if n % 2 else "/v1/models/iris:feedback"
        status, headers, body = post(router.url + path, [item(i) for i in ids])
        assert status == 200, body
        assert sorted(headers["x-mdroute-variant"].split(",")) == sorted({served_by[i] for i in ids})
        assert_scored(body["results"], ids)

    for v, server in servers.items():
        assert feedback_counted(server, v) == len(by_variant[v])  # each scored by its own server
    remembered = {
        v: metric(router.url, "mdroute_feedback_routed_total", {"variant": v, "how": "remembered"})
        for v in servers
    }
    assert remembered == {v: len(by_variant[v]) for v in servers}

    # Unknown ids fall back to the split: in a list they come back "unknown", next to a known one.
    status, headers, _ = post(
        router.url + "/v1/models/iris:predict", body_for(0), {"x-request-id": "fb-late"}
    )
    late = headers["x-mdroute-variant"]
    mixed = [{"request_id": "fb-nobody-1", "truth": 0}, {"request_id": "fb-late", "truth": 0}]
    status, _, body = post(router.url + "/v1/models/iris:feedback", mixed)
    assert status == 200, body
    assert [r["status"] for r in body["results"]] == ["unknown", "scored"]
    status, _, body = post(router.url + "/v1/models/iris:feedback", {"request_id": "fb-nobody-2", "truth": 1})
    assert status == 404 and "unknown" in body["error"]  # the model server's answer, as before
    fallback = sum(
        metric(router.url, "mdroute_feedback_routed_total", {"variant": v, "how": "fallback"})
        for v in servers
    )
    assert fallback == 2
    assert feedback_counted(servers[late], late) == len(by_variant[late]) + 1

    # Explicit routing wins over the memory: a pin to the other variant reaches it (which never saw the id).
    status, headers, _ = post(router.url + "/v1/models/iris:predict", body_for(1), {"x-request-id": "fb-pin"})
    other = "canary" if headers["x-mdroute-variant"] == "stable" else "stable"
    status, headers, body = post(
        router.url + "/v1/models/iris:feedback",
        item(1) | {"request_id": "fb-pin"},
        {"x-mdroute-variant": other},
    )
    assert (status, headers["x-mdroute-variant"]) == (404, other), body
    status, _, body = post(router.url + "/v1/models/iris:feedback", item(1), {"x-mdroute-variant": "nosuch"})
    assert status == 400 and "nosuch" in body["error"] and body["source"] == "mdroute"

    # A malformed list is not split: forwarded whole, the model server says what is wrong.
    bad = [item(0), {"request_id": "fb-1"}]
    status, _, body = post(router.url + "/v1/models/iris:feedback", bad)
    assert status == 400 and "truth" in body["error"], body
