"""Feedback affinity, the pure parts: the bounded memory, paths, parsing, splitting and merging."""

from __future__ import annotations

import json

import pytest

from mdserve.router.decide import Decider
from mdserve.router.feedback import (
    FeedbackMemory,
    Part,
    is_feedback,
    is_inference,
    merge,
    parse_feedback,
    part_body,
    plan,
)
from mdserve.router.settings import SettingsError, parse_settings
from mdserve.router.table import parse_table

pytestmark = pytest.mark.unit


def test_memory_is_bounded_first_in_first_out() -> None:
    memory = FeedbackMemory(3)
    for i in range(3):
        memory.remember(f"r{i}", "stable")
    memory.remember("r0", "canary")  # known id: updated in place, nothing evicted, order kept
    assert len(memory) == 3 and memory.variant_of("r0") == "canary"
    memory.remember("r3", "canary")  # full: the oldest distinct id goes
    assert memory.variant_of("r0") is None
    assert [memory.variant_of(f"r{i}") for i in (1, 2, 3)] == ["stable", "stable", "canary"]
    for i in range(100):
        memory.remember(f"x{i}", "stable")
    assert len(memory) == 3 and memory.variant_of("x99") == "stable" and memory.variant_of("x96") is None


def test_memory_of_zero_remembers_nothing() -> None:
    memory = FeedbackMemory(0)
    memory.remember("r", "stable")
    assert memory.variant_of("r") is None and len(memory) == 0
    with pytest.raises(ValueError):
        FeedbackMemory(-1)


@pytest.mark.parametrize(
    ("method", "target", "inference", "feedback"),
    [
        (b"POST", b"/v2/models/iris/infer", True, False),
        (b"POST", b"/v2/models/iris/versions/2/infer?x=1", True, False),
        (b"POST", b"/v1/models/iris:predict", True, False),
        (b"GET", b"/v2/models/iris/infer", False, False),
        (b"POST", b"/v1/models/iris:feedback", False, True),
        (b"POST", b"/v1/models/iris/versions/3:feedback?trace=1", False, True),
        (b"POST", b"/v2/models/iris/feedback", False, True),
        (b"POST", b"/v2/models/iris/versions/3/feedback", False, True),
        (b"GET", b"/v1/models/iris:feedback", False, False),
        (b"POST", b"/feedback", False, False),
        (b"POST", b"/v3/models/iris:feedback", False, False),
    ],
)
def test_paths(method: bytes, target: bytes, inference: bool, feedback: bool) -> None:
    assert is_inference(method, target) is inference
    assert is_feedback(method, target) is feedback


def test_parse_feedback_accepts_what_the_model_server_accepts() -> None:
    one = parse_feedback(b'{"request_id": "a", "truth": 1}')
    assert one is not None and one.ids == ("a",) and not one.is_list
    many = parse_feedback(b'[{"request_id": "a", "truth": [1, 2]}, {"request_id": "b", "truth": 0}]')
    assert many is not None and many.ids == ("a", "b") and many.is_list


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'"a"',
        b"[1]",
        b'{"truth": 1}',
        b'{"request_id": "", "truth": 1}',
        b'{"request_id": 7, "truth": 1}',
        b'{"request_id": "a"}',
        b'{"request_id": "a", "truth": null}',
        b'[{"request_id": "a", "truth": 1}, {"request_id": "b"}]',
    ],
)
def test_parse_feedback_refuses_what_the_model_server_refuses(body: bytes) -> None:
    assert parse_feedback(body) is None


def test_plan_groups_by_variant_in_first_item_order_with_one_fallback_decision() -> None:
    memory = {"a": "canary", "b": "stable", "c": "canary"}
    calls: list[str] = []

    def fallback() -> str:
        calls.append("x")
        return "stable"

    parts = plan(["a", "b", "new", "c", "new2"], memory.get, fallback)
    assert calls == ["x"]  # one decision for every unknown id
    assert parts == [Part("canary", (0, 3), 2), Part("stable", (1, 2, 4), 1)]
    assert plan(["a", "c"], memory.get, fallback) == [Part("canary", (0, 1), 2)]
    assert calls == ["x"]  # every id known: the split is not touched


def test_parts_are_lists_and_answers_merge_back_in_order() -> None:
    body = parse_feedback(json.dumps([{"request_id": r, "truth": i} for i, r in enumerate("abc")]).encode())
    assert body is not None
    parts = [Part("canary", (0, 2), 2), Part("stable", (1,), 1)]
    assert json.loads(part_body(body, parts[1])) == [{"request_id": "b", "truth": 1}]
    answers = [
        (
            parts[0],
            b'{"results":[{"request_id":"a","status":"scored"},{"request_id":"c","status":"unknown"}]}',
        ),
        (parts[1], b'{"results":[{"request_id":"b","status":"scored"}]}'),
    ]
    merged = json.loads(merge(3, answers))
    assert [(r["request_id"], r["status"]) for r in merged["results"]] == [
        ("a", "scored"),
        ("b", "scored"),
        ("c", "unknown"),
    ]


@pytest.mark.parametrize("answer", [b"oops", b'{"results": null}', b'{"results": [{}]}', b"[]"])
def test_merge_names_the_variant_with_an_unexpected_answer(answer: bytes) -> None:
    with pytest.raises(ValueError, match="variant canary answered feedback without a 'results' list of 2"):
        merge(2, [(Part("canary", (0, 1), 2), answer)])


def test_rule_variant_leaves_the_split_alone() -> None:
    doc = {
        "version": "v",
        "variants": [
            {"name": "stable", "backend": "http://s:1", "weight": 1},
            {"name": "canary", "backend": "http://c:1", "weight": 1},
        ],
        "rules": [{"name": "t", "variant": "canary", "cookies": [{"name": "ab", "value": "b"}]}],
    }
    decider, reference = Decider(parse_table(json.dumps(doc))), Decider(parse_table(json.dumps(doc)))
    assert decider.rule_variant({"cookie": "ab=b"}) == "canary"
    assert decider.rule_variant({}) is None
    assert [decider.decide({}).variant for _ in range(4)] == [reference.decide({}).variant for _ in range(4)]


def test_feedback_memory_setting() -> None:
    base = ["--routes-file", "r.json"]
    assert parse_settings(base, {}).feedback_memory == 100_000
    assert parse_settings(base, {"MDROUTE_FEEDBACK_MEMORY": "0"}).feedback_memory == 0
    assert parse_settings([*base, "--feedback-memory", "5"], {}).feedback_memory == 5
    with pytest.raises(SettingsError, match="--feedback-memory"):
        parse_settings([*base, "--feedback-memory", "-1"], {})
