"""The OpenAPI fragments, the pydantic parses and the older RolloutSpec stay in step; action annotations."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from modeldeploy.analysis.config import AnalysisMetric
from modeldeploy.api.schema import _rollout
from modeldeploy.api.spec import RolloutSpec
from modeldeploy.rollout.actions import InvalidAction, ManualAction, format_action, parse_action
from modeldeploy.rollout.config import RolloutConfig, parse_rollout
from modeldeploy.rollout.schema import ROLLOUT_SPEC_SCHEMA, ROLLOUT_STATUS_SCHEMA
from modeldeploy.rollout.state import RolloutState, from_status

pytestmark = pytest.mark.unit


def aliases(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def test_spec_schema_matches_the_parse() -> None:
    assert set(ROLLOUT_SPEC_SCHEMA["properties"]) == aliases(RolloutConfig)
    metric = ROLLOUT_SPEC_SCHEMA["properties"]["metrics"]["items"]["properties"]
    assert set(metric) == aliases(AnalysisMetric)


def test_status_schema_matches_the_state() -> None:
    assert set(ROLLOUT_STATUS_SCHEMA["properties"]) == aliases(RolloutState)


def test_extends_the_existing_rollout_schema_and_spec() -> None:
    old = _rollout()["properties"]
    mine = ROLLOUT_SPEC_SCHEMA["properties"]
    assert set(old) <= set(mine)
    for key, node in old.items():
        if key == "metrics":
            assert set(node["items"]["properties"]) <= set(mine[key]["items"]["properties"])
            continue
        assert mine[key].get("default") == node.get("default"), key
        assert mine[key]["type"] == node["type"], key
    assert aliases(RolloutSpec) <= aliases(RolloutConfig)
    for name, field in RolloutSpec.model_fields.items():
        assert RolloutConfig.model_fields[name].default == field.default, name


def test_defaults_in_schema_match_parse_defaults() -> None:
    parsed = parse_rollout({}).model_dump(by_alias=True)
    for key, node in ROLLOUT_SPEC_SCHEMA["properties"].items():
        if "default" in node:
            assert parsed[key] == node["default"], key


def test_every_schema_node_has_a_description() -> None:
    def walk(node: dict[str, Any], path: str) -> None:
        assert node.get("description"), path
        for key, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{key}")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(ROLLOUT_SPEC_SCHEMA, "rollout")
    walk(ROLLOUT_STATUS_SCHEMA, "status.rollout")


def test_existing_example_parses() -> None:
    cfg = parse_rollout(
        {
            "strategy": "Canary",
            "interval": "1m",
            "failureLimit": 2,
            "steps": [
                {"setWeight": 10, "pause": {"duration": "5m"}},
                {"setWeight": 25},
                {"setWeight": 50, "pause": {}},
            ],
            "metrics": [
                {"name": "error-rate", "thresholdRange": {"max": 0.01}},
                {"name": "latency-p99", "thresholdRange": {"max": 0.25}},
                {"name": "accuracy", "thresholdRange": {"min": 0.95}},
            ],
        }
    )
    assert [cfg.hold_seconds(i) for i in range(3)] == [300, 60, None]


@pytest.mark.parametrize(
    "raw",
    [
        {"steps": [{"setWeight": 50}, {"setWeight": 10}]},
        {"interval": "soon"},
        {"failureLimit": -1},
        {"unknown": 1},
        {"steps": [{"setWeight": 101}]},
    ],
)
def test_invalid_rollouts(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_rollout(raw)


def test_unreadable_status_restarts_from_the_stable_revision() -> None:
    assert from_status({"stepIndex": "many"}, "abc").stable_revision == "abc"
    assert from_status(None).stable_revision is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("promote@1700000000-ab12", ManualAction("promote", "1700000000-ab12")),
        ("rollback=1a2b3c4d@x", ManualAction("rollback", "x", "1a2b3c4d")),
        (" pause@p ", ManualAction("pause", "p")),
    ],
)
def test_parse_action(value: str, expected: ManualAction) -> None:
    assert parse_action({"serving.modeldeploy.dev/action": value}) == expected


@pytest.mark.parametrize("value", ["promote", "explode@1", "rollback@1", "abort=abc@1", "promote@"])
def test_invalid_action(value: str) -> None:
    assert isinstance(parse_action({"serving.modeldeploy.dev/action": value}), InvalidAction)


def test_action_round_trip_and_absent() -> None:
    assert parse_action(
        {"serving.modeldeploy.dev/action": format_action("rollback", "r1", "abc")}
    ) == ManualAction("rollback", "r1", "abc")
    assert parse_action({}) is None and parse_action(None) is None
