"""Rolling and BlueGreen through the engine on a simulated clock: promotion, history, rollback targets, the
blue-green switch and hold, progressDeadlineSeconds, and the strategy rules of the parse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from rollout_sim import Sim

from modeldeploy.analysis.verdict import Outcome
from modeldeploy.rollout.config import parse_rollout
from modeldeploy.rollout.state import HistoryOutcome, Phase, from_status, md_phase

pytestmark = pytest.mark.unit
P, F = Outcome.PASS, Outcome.FAIL
ROLLING: dict[str, Any] = {"strategy": "Rolling", "scaleDownDelaySeconds": 30, "historyLimit": 3}
BLUE_GREEN: dict[str, Any] = {
    "strategy": "BlueGreen",
    "interval": "1m",
    "scaleDownDelaySeconds": 30,
    "consecutiveFailureLimit": 0,  # the first failed analysis rolls back
    "metrics": [{"name": "error-rate", "thresholdRange": {"max": 0.01}}],
}


def sim_of(raw: dict[str, Any]) -> Sim:
    return Sim(parse_rollout(raw))


def starting(raw: dict[str, Any]) -> Sim:
    """rev1 stable, rev2 created and not Ready yet."""
    sim = sim_of(raw)
    sim.deploy("rev1", "m:1")
    sim.ready = False
    sim.deploy("rev2", "m:2")
    return sim


def test_effective_steps_per_strategy() -> None:
    assert parse_rollout(ROLLING).effective_steps == ()
    (switch,) = parse_rollout(BLUE_GREEN).effective_steps
    assert switch.set_weight == 100 and switch.pause is None  # held one interval
    canary = parse_rollout({"strategy": "Canary", "steps": [{"setWeight": 10}, {"setWeight": 60}]})
    assert [s.set_weight for s in canary.effective_steps] == [10, 60]


def test_rolling_promotes_when_ready_with_history_and_keeps_a_rollback_target() -> None:
    sim = starting(ROLLING)
    d = sim.last
    assert d.state.phase == Phase.PROGRESSING and md_phase(d.state)[0] == "Progressing"
    assert d.weights == {"rev1": 100, "rev2": 0} and d.replicas == {"rev1": 2, "rev2": 2}
    assert sim.step(30).state.canary_revision == "rev2", "not Ready: not promoted"

    sim.ready = True
    d = sim.step(5)
    assert d.state.phase == Phase.STABLE and d.state.stable_revision == "rev2"
    assert d.weights == {"rev2": 100}
    assert d.history_entry is not None and d.history_entry.reason == "Ready"
    assert [(h.revision, h.outcome) for h in d.state.history] == [
        ("rev2", HistoryOutcome.PROMOTED), ("rev1", HistoryOutcome.PROMOTED),
    ]
    # The old revision keeps its pods for scaleDownDelaySeconds, then is kept at zero (a rollback target).
    assert d.replicas == {"rev1": 2, "rev2": 2} and d.requeue_after == 30
    d = sim.step(30)
    assert d.replicas == {"rev1": 0, "rev2": 2} and "rev1" in d.retain
    assert sim.step(3600).events == ()

    d = sim.action("rollback=rev1@r1")
    assert d.state.stable_revision == "rev1" and d.weights == {"rev1": 100}
    assert d.state.phase == Phase.ROLLED_BACK and d.state.held_revision == "rev2"
    assert d.history_entry is not None and d.history_entry.reason == "manual rollback"


def test_rolling_history_limit_bounds_the_retained_revisions() -> None:
    sim = sim_of(ROLLING)
    for n in range(1, 6):
        sim.deploy(f"rev{n}", f"m:{n}")
        sim.step(60)  # past the scale-down delay
    assert [h.revision for h in sim.state.history] == ["rev5", "rev4", "rev3"]
    assert sim.last.retain == frozenset({"rev5", "rev4", "rev3"}), "older revisions may be deleted"
    assert sim.last.replicas == {"rev5": 2, "rev4": 0, "rev3": 0}


def test_rolling_progress_deadline_rolls_back_a_revision_that_never_gets_ready() -> None:
    sim = starting(ROLLING)
    assert sim.last.requeue_after == 601
    assert sim.step(600).state.phase == Phase.PROGRESSING
    d = sim.step(1)
    assert d.state.phase == Phase.ROLLED_BACK and d.state.held_revision == "rev2"
    assert "progressDeadlineSeconds" in d.state.message and md_phase(d.state) == ("Degraded", "RolledBack")
    assert d.weights == {"rev1": 100} and d.replicas["rev1"] == 2
    assert d.history_entry is not None and d.history_entry.outcome == HistoryOutcome.ROLLED_BACK
    assert sim.step(30).replicas == {"rev1": 2, "rev2": 0}, "the held spec revision waits at zero"
    sim.ready = True
    assert sim.step(60).state.stable_revision == "rev1", "held until the spec changes or retry"


def test_rolling_paused_is_not_promoted_until_unpaused() -> None:
    sim = starting(ROLLING)
    sim.config = parse_rollout({**ROLLING, "paused": True})
    sim.ready = True
    for _ in range(3):
        d = sim.step(60)
        assert d.state.phase == Phase.PAUSED and d.weights == {"rev1": 100, "rev2": 0}
    sim.config = parse_rollout(ROLLING)
    assert sim.step(0).state.stable_revision == "rev2"


def switched() -> Sim:
    sim = starting(BLUE_GREEN)
    sim.ready = True
    sim.step(5)
    return sim


def test_blue_green_runs_full_size_with_no_traffic_until_ready_then_switches_everything() -> None:
    sim = starting(BLUE_GREEN)
    d = sim.last
    assert d.weights == {"rev1": 100, "rev2": 0} and d.replicas == {"rev1": 2, "rev2": 2}
    assert sim.step(30).weights == {"rev1": 100, "rev2": 0}
    sim.ready = True
    d = sim.step(5)
    assert d.weights == {"rev1": 0, "rev2": 100}, "one switch, no intermediate weight"
    assert d.replicas == {"rev1": 2, "rev2": 2}, "the old revision keeps its pods during the hold"
    assert d.state.phase == Phase.PROGRESSING and d.state.stable_revision == "rev1"
    assert "all traffic switched to rev2" in d.state.message and d.requeue_after == 60
    assert [e.reason for e in d.events] == ["Step"]


def test_blue_green_failed_analysis_switches_back_at_once_to_the_full_size_old_revision() -> None:
    sim = switched()
    assert sim.step(30, F).weights == {"rev1": 0, "rev2": 100}, "no analysis before one interval"
    d = sim.step(30, F)
    assert d.state.phase == Phase.ROLLED_BACK and d.state.stable_revision == "rev1"
    assert d.weights == {"rev1": 100}, "all traffic back in the same decision"
    assert d.replicas["rev1"] == 2 and all(x.replicas["rev1"] == 2 for x in sim.decisions)
    assert d.history_entry is not None and d.history_entry.outcome == HistoryOutcome.ROLLED_BACK
    assert "error-rate=0.2 above max 0.01" in d.state.message and d.state.held_revision == "rev2"
    assert d.replicas["rev2"] == 2 and sim.step(30).replicas == {"rev1": 2, "rev2": 0}, "scaled down later"


def test_blue_green_passed_analysis_promotes_and_scales_the_old_one_down_after_the_delay() -> None:
    sim = switched()
    d = sim.step(60, P)
    assert d.state.phase == Phase.STABLE and d.state.stable_revision == "rev2"
    assert d.weights == {"rev2": 100} and d.replicas == {"rev1": 2, "rev2": 2}
    assert d.history_entry is not None
    assert d.history_entry.reason == "held 1m on all traffic with a passing analysis"
    assert d.requeue_after == 30
    assert sim.step(29).replicas == {"rev1": 2, "rev2": 2}
    d = sim.step(1)
    assert d.replicas == {"rev1": 0, "rev2": 2} and "rev1" in d.retain


def test_blue_green_without_metrics_promotes_after_one_interval() -> None:
    sim = sim_of({**BLUE_GREEN, "metrics": []})
    sim.deploy("rev1", "m:1")
    sim.deploy("rev2", "m:2")
    assert sim.last.weights == {"rev1": 0, "rev2": 100}
    assert sim.step(59).state.canary_revision == "rev2"
    assert sim.step(1).state.stable_revision == "rev2"


def test_blue_green_new_revision_losing_readiness_hands_traffic_back() -> None:
    sim = switched()
    sim.ready = False
    d = sim.step(10)
    assert d.weights == {"rev1": 100, "rev2": 0} and any(e.reason == "CanaryUnready" for e in d.events)
    sim.ready = True
    assert sim.step(10).weights == {"rev1": 0, "rev2": 100}


def test_blue_green_resumes_from_status_alone() -> None:
    """A restarted operator has only status.rollout: it continues the hold at the same point."""
    sim = switched()
    sim.step(30)
    restarted = Sim(
        parse_rollout(BLUE_GREEN), now=sim.now, desired="rev2", model="m:2",
        existing=set(sim.last.retain),
        state=from_status(json.loads(json.dumps(sim.state.to_status()))),
    )
    for s in (sim, restarted):
        assert s.step(30, P).state.stable_revision == "rev2"
    a, b = sim.last, restarted.last
    assert (a.state, a.weights, a.replicas, a.retain) == (b.state, b.weights, b.replicas, b.retain)
    assert [t.kind for t in b.state.timeline].count("Step") == 1, "the switch was not replayed"


def test_strategy_change_under_a_running_canary_holds_the_new_last_step() -> None:
    sim = Sim.of()
    sim.deploy("rev1", "m:1")
    sim.deploy("rev2", "m:2")
    for _ in range(2):
        sim.step(60, P)
    assert sim.state.step_index == 2  # Canary step 3 of 4 (50%)
    sim.config = parse_rollout(BLUE_GREEN)
    d = sim.step(0)
    assert d.state.step_index == 0 and d.weights == {"rev1": 0, "rev2": 100}
    assert sim.step(60, P).state.stable_revision == "rev2"


@pytest.mark.parametrize(
    ("raw", "field", "text"),
    [
        ({"steps": [{"setWeight": 50}]}, "steps", "only used by strategy Canary"),
        ({"strategy": "BlueGreen", "steps": [{"setWeight": 50}]}, "steps", "only used by strategy Canary"),
        ({"metrics": [{"name": "error-rate", "thresholdRange": {"max": 0.1}}]}, "metrics", "Rolling"),
        (
            {"strategy": "BlueGreen", "metrics": [{"name": "drift", "check": "prediction-drift",
                                                   "thresholdRange": {"max": 0.2}}]},
            "metrics",
            "relative checks",
        ),
    ],
)
def test_strategy_rules_name_the_field(raw: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ValidationError) as e:
        parse_rollout(raw)
    (error,) = e.value.errors()
    assert error["loc"] == (field,) and text in error["msg"]
