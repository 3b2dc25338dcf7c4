"""The HTTPRoute: golden YAML, explicit weights, pinning rules before the weighted rule, mirrors."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.traffic.httproute import build_httproute, route_problem
from modeldeploy.traffic.plan import plan_traffic
from tests.unit.traffic.scenario import CANARY, GATEWAY, check_golden, dump, md, shares, traffic, variants

pytestmark = pytest.mark.unit


def route(canary: int = 20, **changes: Any) -> dict[str, Any]:
    vs, t = variants(), traffic(GATEWAY, **changes)
    assert t.gateway is not None
    return build_httproute(md(), plan_traffic("fraud", vs, shares(vs, canary), t), t.gateway)


def test_golden() -> None:
    check_golden("httproute.yaml", dump([route()]))


def test_every_backend_ref_has_an_explicit_weight() -> None:
    for rule in route()["spec"]["rules"]:
        for ref in rule["backendRefs"]:
            assert isinstance(ref["weight"], int) and ref["port"] == 80 and ref["kind"] == "Service"
    split = route()["spec"]["rules"][-1]
    vs = variants()
    assert [(r["name"], r["weight"]) for r in split["backendRefs"]] == [
        (f"fraud-primary-{vs[0].revision}", 36), (f"fraud-primary-{CANARY}", 9),
        (f"fraud-int8-{vs[1].revision}", 5), (f"fraud-candidate-{vs[2].revision}", 0)]


def test_rules_pin_first_then_split() -> None:
    rules = route()["spec"]["rules"]
    assert [r["name"] for r in rules] == ["rule-beta", "match-candidate", "split"]
    beta, match, _ = rules
    assert beta["matches"] == [{"path": {"type": "PathPrefix", "value": "/"},
                                "headers": [{"type": "Exact", "name": "x-beta", "value": "1"}]}]
    # A variant's match list is ORed: one HTTPRoute match per header condition.
    assert [m["headers"] for m in match["matches"]] == [
        [{"type": "Exact", "name": "x-model-variant", "value": "candidate"}],
        [{"type": "RegularExpression", "name": "x-tester", "value": "qa-[0-9]+"}],
    ]


def test_mirrors_use_fractions_for_non_integer_percents_and_skip_their_own_pins() -> None:
    rules = route()["spec"]["rules"]
    assert "filters" not in rules[0] and "filters" not in rules[1]  # both pin to the shadowed candidate
    (f,) = rules[2]["filters"]
    assert f["requestMirror"]["fraction"] == {"numerator": 1250, "denominator": 10000}
    whole = route(shadow=[{"variant": "int8", "percent": 30}])["spec"]["rules"]
    assert whole[0]["filters"][0]["requestMirror"]["percent"] == 30
    assert whole[0]["filters"][0]["requestMirror"]["backendRef"]["name"].startswith("fraud-int8-")


def test_parent_refs_and_hostnames() -> None:
    spec = route()["spec"]
    gw = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "shared-gw"}
    assert spec["parentRefs"] == [{**gw, "namespace": "gateway-system", "sectionName": "https"}]
    assert spec["hostnames"] == ["fraud.example.com"]
    bare = route(gateway={"parentRefs": [{"name": "gw"}]})["spec"]
    assert "hostnames" not in bare and bare["parentRefs"][0] == {
        "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}


def test_route_problem_reads_parent_conditions() -> None:
    assert route_problem(None) is None
    ok = {"status": {"parents": [{"parentRef": {"name": "gw"},
                                  "conditions": [{"type": "Accepted", "status": "True"}]}]}}
    assert route_problem(ok) is None
    bad = {"status": {"parents": [{"parentRef": {"name": "gw"}, "conditions": [
        {"type": "Accepted", "status": "True"},
        {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "message": "no svc"}]}]}}
    assert route_problem(bad) == "Gateway gw: ResolvedRefs=False (BackendNotFound): no svc"
