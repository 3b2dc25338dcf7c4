"""Route table schema: what is accepted, what is refused and with which message."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from mdserve.router.table import RouteTable, RouteTableError, Variant, parse_table

pytestmark = pytest.mark.unit


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": "7-abc",
        "variants": [
            {"name": "stable", "backend": "http://demo-stable.ns.svc:8080", "weight": 90},
            {"name": "canary", "backend": "http://demo-canary.ns.svc:8080/", "weight": 10},
        ],
    }
    base.update(overrides)
    return base


def test_full_table_round_trips() -> None:
    table = parse_table(
        json.dumps(
            doc(
                rules=[{"name": "qa", "variant": "canary", "headers": [{"name": "X-QA", "type": "present"}]}],
                sticky={"header": "x-user-id", "salt": "exp-1"},
                shadows=[{"variant": "canary", "percent": 12.5}],
                timeouts={"connect_seconds": 1, "request_seconds": 5},
            )
        )
    )
    assert table.variant("canary").backend == "http://demo-canary.ns.svc:8080"  # trailing slash dropped
    assert table.timeouts.shadow_seconds == 10.0
    assert parse_table(table.to_json()) == table


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"variants": []}, "at least one variant"),
        ({"variants": [{"name": "a", "backend": "http://a:1", "weight": 0}]}, "positive weight"),
        (
            {"variants": [{"name": "a", "backend": "http://a:1", "weight": 1}] * 2},
            "duplicate variant names: ['a']",
        ),
        ({"variants": [{"name": "a", "backend": "http://a:1", "weight": -1}]}, "greater than or equal to 0"),
        ({"variants": [{"name": "a", "backend": "http://a:1", "weight": 10**7}]}, "less than or equal"),
        ({"variants": [{"name": "a", "backend": "a:1", "weight": 1}]}, "absolute http(s) URL"),
        ({"variants": [{"name": "a", "backend": "http://a:1/v2", "weight": 1}]}, "path, query"),
        ({"variants": [{"name": "a", "backend": "http://a:99999", "weight": 1}]}, "out of range"),
        ({"variants": [{"name": "a b", "backend": "http://a:1", "weight": 1}]}, "variant name 'a b'"),
        ({"rules": [{"name": "r", "variant": "nope", "headers": [{"name": "x"}]}]}, "unknown variant 'nope'"),
        ({"rules": [{"name": "r", "variant": "canary"}]}, "at least one header or cookie"),
        (
            {
                "rules": [
                    {
                        "name": "r",
                        "variant": "canary",
                        "headers": [{"name": "x", "value": "(", "type": "regex"}],
                    }
                ]
            },
            "bad regex",
        ),
        ({"rules": [{"name": "r", "variant": "canary", "headers": [{"name": "x y"}]}]}, "not a valid header"),
        ({"rules": [{"name": "r", "variant": "canary", "headers": [{"name": "x", "type": "glob"}]}]}, "type"),
        ({"sticky": {}}, "exactly one of 'header' or 'cookie'"),
        ({"sticky": {"header": "a", "cookie": "b"}}, "exactly one of 'header' or 'cookie'"),
        ({"shadows": [{"variant": "ghost", "percent": 5}]}, "unknown variant 'ghost'"),
        (
            {"shadows": [{"variant": "canary", "percent": 5}, {"variant": "canary", "percent": 6}]},
            "at most one",
        ),
        ({"shadows": [{"variant": "canary", "percent": 0}]}, "greater than 0"),
        ({"shadows": [{"variant": "canary", "percent": 101}]}, "less than or equal to 100"),
        ({"version": ""}, "version must be"),
        ({"schema_version": 2}, "schema_version"),
        ({"weights": {"stable": 1}}, "weights: Extra inputs are not permitted"),
        ({"timeouts": {"request_seconds": 0}}, "request_seconds"),
    ],
)
def test_invalid_tables_say_why(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RouteTableError) as err:
        parse_table(json.dumps(doc(**change)))
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"), [("{", "not valid JSON"), ("[]", "JSON object"), (b"\xff", "JSON")]
)
def test_non_json_is_refused(text: str | bytes, message: str) -> None:
    with pytest.raises(RouteTableError, match=message):
        parse_table(text)


def test_weights_zero_and_hundred_are_valid() -> None:
    table = parse_table(
        json.dumps(
            doc(
                variants=[
                    {"name": "stable", "backend": "http://s:1", "weight": 0},
                    {"name": "canary", "backend": "http://c:1", "weight": 100},
                ]
            )
        )
    )
    assert [v.weight for v in table.variants] == [0, 100]


def test_operator_can_build_tables_in_python() -> None:
    table = RouteTable(version="1", variants=[Variant(name="a", backend="http://a:8080", weight=1)])
    assert json.loads(table.to_json())["variants"][0]["weight"] == 1


def test_table_module_does_not_import_aiohttp() -> None:
    code = "import sys, mdserve.router.table; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"
