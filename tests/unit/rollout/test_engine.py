"""The rollout engine on a simulated clock: steps, analysis gates, rollback, promotion, restarts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rollout_sim import CANARY, T0, Sim, run_of

from modeldeploy.analysis.verdict import Outcome
from modeldeploy.rollout.config import parse_rollout
from modeldeploy.rollout.engine import analysis_due
from modeldeploy.rollout.state import HistoryOutcome, Phase, md_phase

pytestmark = pytest.mark.unit
P, F, WAIT, E = Outcome.PASS, Outcome.FAIL, Outcome.INCONCLUSIVE, Outcome.ERROR


def started() -> Sim:
    """rev1 stable, rev2 canary at step 1 (5%)."""
    sim = Sim.of()
    sim.deploy("rev1", "m:1")
    sim.deploy("rev2", "m:2")
    return sim


def test_first_deployment_goes_straight_to_stable() -> None:
    sim = Sim.of()
    d = sim.deploy("rev1", "m:1")
    assert d.state.phase == Phase.STABLE and d.state.stable_revision == "rev1"
    assert d.weights == {"rev1": 100} and d.replicas == {"rev1": 2}
    assert d.history_entry is not None and d.history_entry.outcome == HistoryOutcome.PROMOTED
    assert [e.reason for e in d.events] == ["Promoted"]
    assert sim.step(3600).events == ()  # nothing more to do
    assert md_phase(sim.state) == ("Healthy", "Stable")


def test_walks_every_step_with_passing_analysis_then_promotes() -> None:
    sim = started()
    assert sim.last.weights == {"rev1": 95, "rev2": 5}
    seen = [sim.last.weights["rev2"]]
    for _ in range(4):
        d = sim.step(60, P)
        if d.state.canary_revision:
            seen.append(d.weights["rev2"])
    assert seen == [5, 25, 50, 100]
    d = sim.last
    assert d.state.phase == Phase.STABLE and d.state.stable_revision == "rev2"
    assert d.weights == {"rev2": 100}
    assert d.history_entry is not None and d.history_entry.reason == "all 4 steps passed"
    # The old stable keeps its pods for the scale-down delay (no dropped requests), then goes to zero but is
    # kept (a rollback target).
    assert d.replicas == {"rev1": 2, "rev2": 2} and d.requeue_after == 30
    assert sim.step(30).replicas == {"rev1": 0, "rev2": 2}
    assert [h.revision for h in sim.state.history] == ["rev2", "rev1"]


def test_step_needs_hold_and_a_pass_taken_during_it() -> None:
    sim = started()
    assert not analysis_due(sim.config, sim.state, sim.now + timedelta(seconds=59))
    assert sim.step(30, P).weights["rev2"] == 5  # not due yet: nothing measured
    assert sim.last.requeue_after == 30
    assert sim.step(30, P).weights["rev2"] == 25


def test_inconclusive_holds_forever_and_counts_nothing() -> None:
    sim = started()
    for _ in range(50):
        d = sim.step(60, WAIT)
        assert d.weights == {"rev1": 95, "rev2": 5}
    s = sim.state
    assert (s.failures, s.consecutive_failures, s.consecutive_errors) == (0, 0, 0)
    assert s.inconclusive_streak == 50 and s.phase == Phase.PROGRESSING
    assert "waiting for data" in s.message
    assert sim.step(60, P).weights["rev2"] == 25  # data arrives: it moves on


def test_inconclusive_does_not_break_a_failure_streak() -> None:
    sim = started()
    sim.step(60, F)
    sim.step(60, WAIT)
    d = sim.step(60, F)  # 2 consecutive failures > consecutiveFailureLimit 1
    assert d.state.phase == Phase.ROLLED_BACK


def test_rollback_on_failures_sets_weight_zero_at_once_and_names_the_metric() -> None:
    sim = started()
    sim.step(60, F)
    assert sim.state.failures == 1 and sim.last.weights["rev2"] == 5
    d = sim.step(60, F)
    assert d.state.phase == Phase.ROLLED_BACK
    assert d.weights == {"rev1": 100}
    assert "error-rate=0.2 above max 0.01" in d.state.message
    warnings = [e for e in d.events if e.type == "Warning"]
    assert warnings and warnings[0].reason == "RolledBack" and "error-rate=0.2" in warnings[0].message
    assert d.history_entry is not None and d.history_entry.outcome == HistoryOutcome.ROLLED_BACK
    assert d.replicas["rev2"] == 2  # scaled down after the delay, not at once
    assert sim.step(30).replicas["rev2"] == 0
    assert md_phase(sim.state) == ("Degraded", "RolledBack")
    # The spec is unchanged: it stays rolled back, nothing restarts.
    for _ in range(5):
        d = sim.step(600, P)
        assert d.state.phase == Phase.ROLLED_BACK and d.weights == {"rev1": 100} and d.replicas["rev2"] == 0


def test_total_failure_limit_across_passes() -> None:
    sim = started()
    for outcome in (F, P, F, P):
        sim.step(60, outcome)
    assert sim.state.failures == 2 and sim.state.phase == Phase.PROGRESSING
    assert sim.step(60, F).state.phase == Phase.ROLLED_BACK
    assert "3 failed analyses > failureLimit 2" in sim.state.message


def test_provider_errors_count_toward_their_own_limit() -> None:
    sim = started()
    sim.step(60, E)
    sim.step(60, E)
    assert sim.state.consecutive_errors == 2 and sim.state.failures == 0
    sim.step(60, WAIT)  # any other outcome resets the error streak
    assert sim.state.consecutive_errors == 0
    for _ in range(2):
        sim.step(60, E)
    d = sim.step(60, E)
    assert d.state.phase == Phase.ROLLED_BACK and "consecutiveErrorLimit 2" in d.state.message


def test_retry_restarts_the_held_revision_from_the_first_step() -> None:
    sim = started()
    sim.step(60, F)
    sim.step(60, F)
    d = sim.action("retry@r1")
    assert d.state.phase == Phase.PROGRESSING and d.state.canary_revision == "rev2"
    assert (d.state.failures, d.state.step_index, d.weights["rev2"]) == (0, 0, 5)
    assert sim.step(0).state.canary_revision == "rev2"  # applied once


def test_new_spec_after_rollback_starts_a_new_canary() -> None:
    sim = started()
    sim.step(60, F)
    sim.step(60, F)
    d = sim.deploy("rev3", "m:3")
    assert d.state.canary_revision == "rev3" and d.state.held_revision is None
    assert d.weights == {"rev1": 95, "rev3": 5}


def test_spec_change_mid_rollout_restarts_cleanly() -> None:
    sim = started()
    sim.step(60, P)
    sim.step(60, F)
    assert sim.last.weights == {"rev1": 75, "rev2": 25} and sim.state.failures == 1
    d = sim.deploy("rev3", "m:3")
    assert d.weights == {"rev1": 95, "rev3": 5}  # no route to rev2 left
    assert (d.state.step_index, d.state.failures, d.state.analysis_runs) == (0, 0, 0)
    assert (
        sim.state.history[0].revision == "rev2" and sim.state.history[0].outcome == HistoryOutcome.SUPERSEDED
    )
    assert d.replicas["rev2"] == 2
    for _ in range(10):  # rev2 goes to zero after the delay and is never scaled back up
        d = sim.step(60, P)
        if sim.now >= T0.replace(minute=3):
            assert d.replicas.get("rev2", 0) == 0
        assert "rev2" not in d.weights


def test_spec_back_to_stable_mid_rollout_ends_the_canary() -> None:
    sim = started()
    sim.step(60, P)
    d = sim.deploy("rev1", "m:1")
    assert d.weights == {"rev1": 100} and d.state.phase == Phase.STABLE and d.state.canary_revision is None


def test_canary_weight_only_once_ready_and_deadline_rolls_back() -> None:
    sim = Sim.of(progressDeadlineSeconds=120)
    sim.deploy("rev1", "m:1")
    sim.ready = False
    d = sim.deploy("rev2", "m:2")
    assert d.weights == {"rev1": 100, "rev2": 0} and d.replicas == {"rev1": 2, "rev2": 2}
    assert not analysis_due(sim.config, sim.state, sim.now.replace(hour=13))
    assert sim.step(60, P).weights["rev2"] == 0
    d = sim.step(61)
    assert d.state.phase == Phase.ROLLED_BACK and "not Ready for 120s" in d.state.message


def test_canary_losing_readiness_gets_no_traffic_until_ready_again() -> None:
    sim = started()
    sim.ready = False
    d = sim.step(10)
    assert d.weights["rev2"] == 0 and any(e.reason == "CanaryUnready" for e in d.events)
    sim.ready = True
    d = sim.step(10)
    assert d.weights["rev2"] == 5 and d.state.step_index == 0


def test_pause_stops_advancing_but_a_failing_canary_still_rolls_back() -> None:
    sim = started()
    d = sim.action("pause@p1")
    assert d.state.phase == Phase.PAUSED and md_phase(d.state)[0] == "Paused"
    for _ in range(3):
        assert sim.step(60, P).weights["rev2"] == 5
    d = sim.action("resume@p2")
    assert (
        d.state.phase == Phase.PROGRESSING and d.weights["rev2"] == 25
    )  # its pass was taken during the step
    sim.step(60, F)
    assert sim.step(60, F).state.phase == Phase.ROLLED_BACK


def test_spec_paused_freezes_until_unpaused() -> None:
    sim = started()
    sim.config = parse_rollout({**CANARY, "paused": True})
    for _ in range(3):
        assert sim.step(60, P).state.phase == Phase.PAUSED and sim.last.weights["rev2"] == 5
    sim.config = parse_rollout(CANARY)
    assert sim.step(0).weights["rev2"] == 25


def test_step_without_duration_waits_for_resume() -> None:
    sim = Sim.of(steps=[{"setWeight": 10, "pause": {}}, {"setWeight": 50, "pause": {"duration": "2m"}}])
    sim.deploy("rev1", "m:1")
    sim.deploy("rev2", "m:2")
    for _ in range(5):
        assert sim.step(60, P).weights["rev2"] == 10
    assert sim.action("resume@x").weights["rev2"] == 50
    assert sim.step(60, P).weights["rev2"] == 50  # held 2m
    assert sim.step(60, P).state.stable_revision == "rev2"


def test_promote_now_skips_steps_once_ready() -> None:
    sim = started()
    sim.ready = False
    d = sim.action("promote@go")
    assert d.state.canary_revision == "rev2" and d.weights["rev2"] == 0
    sim.ready = True
    d = sim.step(5)
    assert d.state.stable_revision == "rev2" and d.weights == {"rev2": 100}


def test_abort_rolls_back_and_holds_the_revision() -> None:
    sim = started()
    d = sim.action("abort@a")
    assert d.state.phase == Phase.ROLLED_BACK and d.weights == {"rev1": 100}
    assert d.history_entry is not None and d.history_entry.outcome == HistoryOutcome.ABORTED
    assert sim.step(3600, P).state.canary_revision is None


def test_rollback_to_a_history_revision_and_the_spec_is_held() -> None:
    sim = Sim.of(steps=[])
    sim.deploy("rev1", "m:1")
    sim.deploy("rev2", "m:2")  # no steps: promoted once Ready
    assert sim.state.stable_revision == "rev2"
    sim.step(60)
    assert sim.last.replicas["rev1"] == 0  # kept at zero as a rollback target
    sim.ready = False
    d = sim.action("rollback=rev1@b1")
    assert (
        d.state.canary_revision == "rev1"
        and d.replicas["rev1"] == 2
        and d.weights == {"rev2": 100, "rev1": 0}
    )
    sim.ready = True
    d = sim.step(5)
    assert d.state.stable_revision == "rev1" and d.weights == {"rev1": 100}
    assert d.state.phase == Phase.ROLLED_BACK and d.state.held_revision == "rev2"
    assert sim.step(600).state.stable_revision == "rev1"  # the spec (rev2) stays held
    d = sim.action("retry@b2")  # no steps: the retried revision is promoted as soon as it is Ready
    assert (
        d.state.stable_revision == "rev2" and d.state.phase == Phase.STABLE and d.state.held_revision is None
    )


def test_rollback_to_unknown_revision_is_refused() -> None:
    sim = started()
    d = sim.action("rollback=nope@z")
    assert [e.reason for e in d.events] == ["ActionIgnored"] and d.state.canary_revision == "rev2"


def test_actions_apply_once_and_invalid_ones_warn_once() -> None:
    sim = started()
    sim.action("abort@same")
    sim.deploy("rev3", "m:3")
    d = sim.step(0)  # the same annotation is still there: not applied again
    assert d.state.canary_revision == "rev3" and d.state.phase == Phase.PROGRESSING
    d = sim.action("explode@k")
    assert [e.reason for e in d.events] == ["InvalidAction"]
    assert sim.step(0).events == ()
    assert [e.reason for e in sim.action("retry@n").events] == ["ActionIgnored"]


def test_auto_rollback_off_pauses_instead() -> None:
    sim = Sim.of(autoRollback=False)
    sim.deploy("rev1", "m:1")
    sim.deploy("rev2", "m:2")
    sim.step(60, F)
    d = sim.step(60, F)
    assert d.state.phase == Phase.PAUSED and d.weights["rev2"] == 5
    assert "autoRollback is off" in d.state.message
    assert sim.action("abort@q").state.phase == Phase.ROLLED_BACK


def test_no_metrics_advances_on_time_alone() -> None:
    sim = Sim.of(metrics=[])
    sim.deploy("rev1", "m:1")
    sim.deploy("rev2", "m:2")
    weights = [sim.step(60).weights.get("rev2") for _ in range(4)]
    assert weights == [25, 50, 100, 100] and sim.state.stable_revision == "rev2"


def test_analysis_not_due_is_ignored() -> None:
    sim = started()
    d = sim.step(10, run=run_of(F, sim.now))
    assert d.state.failures == 0 and d.state.analysis_runs == 0


def test_quantized_gates_promote_only_if_both_hold() -> None:
    from modeldeploy.analysis.checks import Reading
    from modeldeploy.analysis.verdict import combine, evaluate

    sim = Sim.of(
        steps=[{"setWeight": 50}],
        metrics=[
            {"name": "accuracy-drop", "thresholdRange": {"max": 0.01}},
            {"name": "latency-gain", "quantile": 0.5, "thresholdRange": {"min": 0.1}},
        ],
    )
    sim.deploy("rev1", "m:1")
    sim.deploy("rev2", "m:1 (int8)")
    cfg = sim.config.metrics

    def run(drop: Reading, gain: Reading) -> None:
        sim.step(
            60,
            run=combine(
                sim.now + timedelta(seconds=60),
                [
                    evaluate("accuracy-drop", drop, cfg[0].threshold_range, 20),
                    evaluate("latency-gain", gain, cfg[1].threshold_range, 20),
                ],
            ),
        )

    run(Reading(0.001, 500), Reading(None, 0))  # gain unknown: hold
    assert sim.state.canary_revision == "rev2" and sim.state.last_outcome == WAIT
    run(Reading(0.001, 500), Reading(0.3, 500))  # both hold: promoted
    assert sim.state.stable_revision == "rev2"
    sim.deploy("rev3", "m:1 (float16)")
    run(Reading(0.001, 500), Reading(0.02, 500))  # too little gain: failure
    assert sim.state.failures == 1 and sim.state.canary_revision == "rev3"
    assert sim.state.last_analysis[1].outcome == F
    assert sim.state.last_analysis[1].message == "latency-gain=0.02 below min 0.1"


def test_requeue_points_at_the_next_thing_to_do() -> None:
    sim = started()
    assert sim.last.requeue_after == 60
    sim.ready = False
    assert sim.step(0).requeue_after == 601
