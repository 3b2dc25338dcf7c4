"""Bad traffic settings are refused with a message naming the field, before anything is rendered."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from modeldeploy.traffic.validate import traffic_errors
from tests.unit.traffic.scenario import GATEWAY, SPEC, shares, traffic, variants

pytestmark = pytest.mark.unit


def errors(raw: dict[str, Any] | None = None, spec: dict[str, Any] | None = None,
           canary: int | None = 20, **changes: Any) -> list[str]:
    vs = variants(spec)
    return traffic_errors("fraud", vs, shares(vs, canary), traffic(raw, **changes))


def test_the_scenarios_are_valid() -> None:
    assert errors() == []
    assert errors(GATEWAY) == []
    assert errors({"provider": "none"}, spec={"model": SPEC["model"]}) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"rules": [{"name": "r", "variant": "nope", "headers": [{"name": "x", "value": "1"}]}]},
         "traffic.rules[0] (r): unknown variant 'nope'"),
        ({"shadow": [{"variant": "ghost", "percent": 5}]}, "traffic.shadow[0]: unknown variant 'ghost'"),
        ({"shadow": [{"variant": "int8", "percent": 0}]}, "percent must be in (0, 100]"),
        ({"shadow": [{"variant": "int8", "percent": 5}, {"variant": "int8", "percent": 6}]},
         "at most one entry per variant"),
        ({"rules": [{"name": "r", "variant": "int8"}]}, "needs at least one header or cookie condition"),
        ({"rules": [{"name": "r", "variant": "int8", "headers": [{"name": "x"}]}]},
         "set exactly one of value or regex"),
        ({"rules": [{"name": "r", "variant": "int8", "headers": [{"name": "x", "regex": "("}]}]},
         "bad regex"),
        ({"rules": [{"name": "r", "variant": "int8", "headers": [{"name": "x", "value": "1"}]}] * 2},
         "traffic.rules[].name must be unique"),
        ({"sticky": {"header": "x-a", "cookie": "b"}}, "set exactly one of header or cookie"),
    ],
)
def test_router_errors(changes: dict[str, Any], expected: str) -> None:
    found = errors(**changes)
    assert any(expected in e for e in found), found


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"gateway": {"parentRefs": []}}, "needs at least one gateway.parentRefs"),
        ({"sticky": {"header": "x-user-id"}}, "sticky needs provider router"),
        ({"rules": [{"name": "c", "variant": "int8", "cookies": [{"name": "ab", "value": "b"}]}]},
         "cookie conditions need provider router"),
        ({"rules": [{"name": "h", "variant": "int8", "headers": [{"name": "X-A", "value": "1"},
                                                                 {"name": "x-a", "value": "2"}]}]},
         "give each header once"),
    ],
)
def test_gateway_errors(changes: dict[str, Any], expected: str) -> None:
    found = errors(GATEWAY, **changes)
    assert any(expected in e for e in found), found


def test_gateway_limits_of_one_httproute() -> None:
    spec = copy.deepcopy(SPEC)
    spec["variants"] = [{"name": f"v{i}", "match": [{"header": "x-v", "value": str(i)}]} for i in range(8)]
    rules = [{"name": f"r{i}", "variant": "primary", "headers": [{"name": "x-r", "value": str(i)}]}
             for i in range(8)]
    found = errors(GATEWAY, spec=spec, rules=rules, shadow=[])
    assert any("exceed the HTTPRoute limit of 16 rules" in e for e in found), found
    # 9 variants x 2 revisions would need 18 backendRefs in the weighted rule.
    spec["variants"] = [{"name": f"v{i}", "weight": 10} for i in range(8)]
    vs = variants(spec)
    sh = {v.name: {v.revision: 50, "c0ffee0" + str(i): 50} for i, v in enumerate(vs)}
    found = traffic_errors("fraud", vs, sh, traffic(GATEWAY, rules=[], shadow=[]))
    assert any("18 backends" in e for e in found), found


def test_none_cannot_pin_or_mirror() -> None:
    found = errors({"provider": "none", "shadow": [{"variant": "int8", "percent": 5}]})
    assert any("provider none cannot pin or mirror" in e for e in found)
    assert any("provider none cannot route variants[].match" in e for e in found)


def test_revision_shares_that_cannot_be_honoured() -> None:
    vs = variants()
    bad = {**shares(vs), "primary": {vs[0].revision: 70, "c0ffee00": 20}}
    assert any("must be >= 0 and sum to 100" in e for e in traffic_errors("fraud", vs, bad, traffic()))
    missing = {k: v for k, v in shares(vs).items() if k != "int8"}
    assert "variant int8: no serving revision to route to" in traffic_errors("fraud", vs, missing, traffic())


def test_all_weights_zero_is_refused() -> None:
    # Unreachable through the CRD (the primary takes the remainder), but a hand-made or migrated object
    # must still be refused rather than rendered into a table no request can be split by.
    zero = [dataclasses.replace(v, weight=0) for v in variants()]
    found = traffic_errors("fraud", zero, shares(zero), traffic())
    assert found == ["every variant has weight 0: no variant would receive unpinned traffic"]
