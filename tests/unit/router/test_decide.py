"""Pure routing decisions: exact split, rules, sticky keys, shadows."""

from __future__ import annotations

import collections
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdserve.router.decide import Decider, SmoothWeightedRoundRobin, parse_cookies, sticky_point
from mdserve.router.table import parse_table

pytestmark = pytest.mark.unit


def table(weights: dict[str, int], **extra: Any) -> Decider:
    variants = [{"name": n, "backend": f"http://{n}:8080", "weight": w} for n, w in weights.items()]
    return Decider(parse_table(json.dumps({"version": "t", "variants": variants, **extra})))


def test_ninety_ten_is_exact_in_every_window_of_ten() -> None:
    d = table({"stable": 90, "canary": 10})
    picks = [d.decide({}).variant for _ in range(10_000)]
    assert collections.Counter(picks) == {"stable": 9000, "canary": 1000}
    for start in range(0, 10_000, 10):
        assert picks[start : start + 10].count("canary") == 1


@pytest.mark.parametrize("weights", [{"a": 0, "b": 100}, {"a": 100, "b": 0}, {"a": 0, "b": 1, "c": 0}])
def test_zero_weight_never_picked(weights: dict[str, int]) -> None:
    d = table(weights)
    winners = {d.decide({}).variant for _ in range(500)}
    assert winners == {n for n, w in weights.items() if w > 0}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=6).filter(lambda ws: sum(ws) > 0)
)
def test_split_is_exact_over_any_multiple_of_total(weights: list[int]) -> None:
    rr = SmoothWeightedRoundRobin(weights)
    total = sum(weights)
    counts = collections.Counter(rr.pick() for _ in range(3 * total))
    assert [counts.get(i, 0) for i in range(len(weights))] == [3 * w for w in weights]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=30), min_size=2, max_size=5))
def test_split_never_drifts_more_than_one_request_per_arm(weights: list[int]) -> None:
    rr = SmoothWeightedRoundRobin(weights)
    total = sum(weights)
    counts = [0] * len(weights)
    for n in range(1, 2 * total + 1):
        counts[rr.pick()] += 1
        for i, w in enumerate(weights):
            # nginx's smooth WRR keeps every prefix within (n_arms - 1) of the ideal share.
            assert abs(counts[i] - n * w / total) <= len(weights) - 1 + 1e-9


def test_first_matching_rule_wins_whatever_the_weights() -> None:
    d = table(
        {"stable": 100, "canary": 0, "dark": 0},
        rules=[
            {"name": "qa", "variant": "canary", "headers": [{"name": "X-Tester", "value": "yes"}]},
            {"name": "beta", "variant": "dark", "cookies": [{"name": "beta", "value": "on"}]},
            {"name": "any-tester", "variant": "dark", "headers": [{"name": "x-tester", "type": "present"}]},
        ],
    )
    assert d.decide({"x-tester": "yes"}).variant == "canary"
    assert d.decide({"x-tester": "yes"}).reason == "rule:qa"
    assert d.decide({"x-tester": "no"}).variant == "dark"
    assert d.decide({"cookie": "a=1; beta=on"}).variant == "dark"
    assert d.decide({"cookie": "beta=off"}).variant == "stable"
    assert d.decide({}).reason == "split"


def test_rule_needs_all_conditions() -> None:
    d = table(
        {"stable": 1, "canary": 0},
        rules=[
            {
                "name": "both",
                "variant": "canary",
                "headers": [{"name": "x-region", "value": "eu-", "type": "prefix"}],
                "cookies": [{"name": "uid", "value": "[0-9]+", "type": "regex"}],
            }
        ],
    )
    assert d.decide({"x-region": "eu-west", "cookie": "uid=42"}).variant == "canary"
    assert d.decide({"x-region": "eu-west", "cookie": "uid=42x"}).variant == "stable"
    assert d.decide({"x-region": "us-east", "cookie": "uid=42"}).variant == "stable"
    assert d.decide({"cookie": "uid=42"}).variant == "stable"


def test_sticky_key_always_lands_on_the_same_arm() -> None:
    d = table({"stable": 90, "canary": 10}, sticky={"header": "x-user-id"})
    for user in range(300):
        first = d.decide({"x-user-id": f"u{user}"})
        assert first.reason == "sticky"
        assert all(d.decide({"x-user-id": f"u{user}"}).variant == first.variant for _ in range(5))


def test_sticky_share_follows_weights_and_only_moves_users_towards_the_grown_arm() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    before = table({"stable": 90, "canary": 10}, sticky={"cookie": "uid"})
    after = table({"stable": 80, "canary": 20}, sticky={"cookie": "uid"})
    was = {u: before.decide({"cookie": f"uid={u}"}).variant for u in users}
    now = {u: after.decide({"cookie": f"uid={u}"}).variant for u in users}
    share = sum(v == "canary" for v in was.values()) / len(users)
    assert abs(share - 0.10) < 0.015
    assert all(now[u] == "canary" for u in users if was[u] == "canary")
    assert abs(sum(v == "canary" for v in now.values()) / len(users) - 0.20) < 0.015


def test_sticky_salt_reshuffles_and_missing_key_uses_split() -> None:
    assert sticky_point("u1", "a", 1000) != sticky_point("u1", "b", 1000) or sticky_point(
        "u2", "a", 1000
    ) != sticky_point("u2", "b", 1000)
    d = table({"stable": 1, "canary": 1}, sticky={"header": "x-user-id"})
    assert [d.decide({"x-user-id": ""}).reason for _ in range(2)] == ["split", "split"]


def test_shadow_percentage_is_exact_and_skips_its_own_primary() -> None:
    d = table({"stable": 1, "canary": 0, "shadow": 0}, shadows=[{"variant": "shadow", "percent": 12.5}])
    mirrored = [d.decide({}).shadows for _ in range(800)]
    assert sum(1 for m in mirrored if m == ("shadow",)) == 100
    assert all(m in ((), ("shadow",)) for m in mirrored)
    d = table(
        {"stable": 1, "canary": 0},
        rules=[{"name": "r", "variant": "canary", "headers": [{"name": "x", "type": "present"}]}],
        shadows=[{"variant": "canary", "percent": 100}],
    )
    assert d.decide({"x": "1"}).shadows == ()
    assert d.decide({}).shadows == ("canary",)


def test_parse_cookies_is_lenient() -> None:
    assert parse_cookies('a=1; b="two"; junk; =x; a=3; c=') == {"a": "1", "b": "two", "c": ""}
    assert parse_cookies(None) == {}


def test_only_the_headers_the_table_uses_are_needed() -> None:
    assert table({"a": 1}).header_names == frozenset()
    d = table(
        {"a": 1, "b": 0},
        rules=[
            {"name": "r", "variant": "b", "headers": [{"name": "X-Tester", "type": "present"}]},
            {"name": "c", "variant": "b", "cookies": [{"name": "beta", "type": "present"}]},
        ],
        sticky={"header": "X-User-Id"},
    )
    assert d.header_names == {b"x-tester", b"cookie", b"x-user-id"}
