"""The router table: golden JSON, accepted by the router's own parser and ConfigMap reader, versioned."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mdserve.router.source_kube import configmap_step
from mdserve.router.table import ROUTES_KEY, RouteTable, parse_table
from modeldeploy.traffic.plan import plan_traffic
from modeldeploy.traffic.router_objects import build_router_configmap
from modeldeploy.traffic.table import build_route_table
from tests.unit.traffic.scenario import CANARY, check_golden, md, shares, traffic, variants

pytestmark = pytest.mark.unit


def table(canary: int = 20, generation: int = 3, **changes: Any) -> RouteTable:
    vs, t = variants(), traffic(**changes)
    return build_route_table(md(generation=generation), plan_traffic("fraud", vs, shares(vs, canary), t), t)


def test_golden() -> None:
    text = json.dumps(json.loads(table().to_json()), indent=2, sort_keys=True) + "\n"
    check_golden("route-table.json", text)


def test_router_parser_accepts_it_as_stored_in_the_configmap() -> None:
    t = table()
    cm = build_router_configmap(md(), t)
    cm["metadata"]["resourceVersion"] = "42"
    step = configmap_step(cm, "ns1/fraud-routes")
    assert step.kind == "offer" and step.document is not None
    parsed = parse_table(step.document)
    assert parsed == t
    assert cm["data"][ROUTES_KEY] == t.to_json()


def test_content() -> None:
    t = table()
    vs = variants()
    assert [(v.name, v.backend, v.weight) for v in t.variants] == [
        (f"primary-{vs[0].revision}", f"http://fraud-primary-{vs[0].revision}.ns1.svc:80", 36),
        (f"primary-{CANARY}", f"http://fraud-primary-{CANARY}.ns1.svc:80", 9),
        (f"int8-{vs[1].revision}", f"http://fraud-int8-{vs[1].revision}.ns1.svc:80", 5),
        (f"candidate-{vs[2].revision}", f"http://fraud-candidate-{vs[2].revision}.ns1.svc:80", 0),
    ]
    cand = f"candidate-{vs[2].revision}"
    assert [(r.name, r.variant) for r in t.rules] == [
        ("beta", cand), ("match-candidate-0", cand), ("match-candidate-1", cand)]
    beta = t.rules[0]
    assert [(m.name, m.type, m.value) for m in beta.headers] == [("x-region", "regex", "eu-.*")]
    assert [(m.name, m.type, m.value) for m in beta.cookies] == [("beta", "exact", "1")]
    assert t.sticky is not None and (t.sticky.header, t.sticky.salt) == ("x-user-id", "exp-1")
    assert [(s.variant, s.percent) for s in t.shadows] == [(cand, 25.0)]
    assert t.timeouts.request_seconds == 30 and t.timeouts.connect_seconds == 2


def test_version_is_generation_and_content() -> None:
    a, b = table(), table()
    assert a.version == b.version and a.version.startswith("3-")
    moved = table(canary=30)
    assert moved.version.startswith("3-") and moved.version != a.version
    assert table(generation=4).version.split("-")[1] == a.version.split("-")[1]


def test_without_sticky_and_shadow() -> None:
    t = table(sticky=None, shadow=[], rules=[])
    assert t.sticky is None and t.shadows == [] and t.rules[0].name == "match-candidate-0"
