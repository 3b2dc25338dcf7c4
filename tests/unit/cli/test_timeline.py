"""`kubectl modeldeploy status|history` views on fixtures produced by real engine runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.cli.kubectl_plugin import parser, request_id
from modeldeploy.cli.timeline import format_history, format_timeline
from modeldeploy.rollout.actions import ManualAction, parse_action

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


def test_status_of_a_canary_in_progress() -> None:
    text = format_timeline(load("canary-in-progress.json"))
    lines = text.splitlines()
    assert lines[0] == "ModelDeployment prod/fraud"
    assert "  Canary:   e5f6a7b8 fraud:7  step 2/4" in lines
    assert "  Weights:  stable 75%  canary 25%" in lines
    assert "Last analysis (2024-05-01 12:03:00): Fail" in lines
    row = next(line for line in lines if line.startswith("  FAIL"))
    assert row.split()[:6] == ["FAIL", "error-rate", "0.2", "-", "0.01", "500"]
    events = [line.split()[4] for line in lines if line.startswith("  2024-")]
    assert events == ["Promoted", "Started", "Step", "Analysis", "Step", "Analysis", "Analysis"]
    assert "Analysis Inconclusive  error-rate: 0 samples < minSamples 20" in text


def test_status_after_rollback_shows_the_reason_and_the_held_revision() -> None:
    text = format_timeline(load("rolled-back.json"))
    assert "Phase:    Degraded (rollout RolledBack)" in text
    assert "error-rate=0.2 above max 0.01" in text.splitlines()[2]
    assert "Held:     e5f6a7b8" in text
    assert "Canary:" not in text


def test_status_speaks_the_strategy() -> None:
    md = load("canary-in-progress.json")
    md["spec"]["rollout"] = {"strategy": "BlueGreen", "interval": "1m"}
    md["status"]["rollout"].update(canaryWeight=100, stepIndex=0)
    lines = format_timeline(md).splitlines()
    where = "blue-green: all traffic, held for analysis before promotion"
    assert f"  New:      e5f6a7b8 fraud:7  {where}" in lines
    assert "  Weights:  stable 0%  new 100%" in lines
    md["spec"]["rollout"] = {}  # the default strategy
    md["status"]["rollout"].update(canaryWeight=0)
    lines = format_timeline(md).splitlines()
    assert "  New:      e5f6a7b8 fraud:7  rolling: promoted once Ready" in lines


def test_history() -> None:
    lines = format_history(load("rolled-back.json")).splitlines()
    assert lines[0].split() == ["REVISION", "MODEL", "OUTCOME", "STARTED", "FINISHED", "REASON"]
    assert lines[1].split()[:3] == ["e5f6a7b8", "fraud:7", "RolledBack"]
    assert lines[2].split()[:4] == ["a1b2c3d4", "(stable)", "fraud:6", "Promoted"]


def test_objects_without_rollout_status() -> None:
    md = {"metadata": {"name": "x", "namespace": "d"}, "status": {"phase": "Pending"}}
    assert "Phase:    Pending" in format_timeline(md)
    assert format_history(md) == "No rollout history yet.\n"
    assert "Stable:   abc" in format_timeline({**md, "status": {"stableRevision": "abc"}})


def test_parser_and_request_ids_make_valid_actions() -> None:
    args = parser().parse_args(["-n", "prod", "rollback", "fraud", "a1b2c3d4"])
    assert (args.namespace, args.command, args.name, args.revision) == (
        "prod",
        "rollback",
        "fraud",
        "a1b2c3d4",
    )
    ids = {request_id() for _ in range(100)}
    assert len(ids) == 100
    for rid in ids:
        assert isinstance(parse_action({"serving.modeldeploy.dev/action": f"promote@{rid}"}), ManualAction)
    with pytest.raises(SystemExit):
        parser().parse_args(["rollback", "fraud"])


def test_status_shows_the_ab_variants_side_by_side() -> None:
    lines = format_timeline(load("ab-test.json")).splitlines()
    start = lines.index("A/B test (measured 2024-05-01 12:04:00, window 60s):")
    header, primary, challenger, warning = lines[start + 1:start + 5]
    assert header.split() == ["VARIANT", "REVISION", "WEIGHT", "REQ/S", "ERRORS", "P50", "P99", "ACCURACY",
                              "FEEDBACK"]
    assert primary.split() == ["primary", "a1b2c3d4", "70%", "12.3", "0.1%", "12.3ms", "1.25s", "96.1%",
                               "412"]
    assert challenger.split() == ["challenger", "e5f6a7b8", "30%", "5.27", "0.0%", "9.81ms", "40.2ms", "-",
                                  "-"]
    assert header.index("P99") == primary.index("1.25s"), "columns aligned"
    assert warning.startswith("  Warning: Prometheus Timeout:")


def test_status_without_ab_test_has_no_table() -> None:
    md = load("ab-test.json")
    del md["status"]["abTest"]
    assert "A/B test" not in format_timeline(md)
    md["status"]["abTest"] = {"observedAt": "2024-05-01T12:05:00Z", "window": "60s", "variants": []}
    assert "A/B test (not measured yet, window 60s):" in format_timeline(md)
