"""Properties over random sequences of outcomes, readiness flips, spec changes and actions."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rollout_sim import Sim

from modeldeploy.analysis.verdict import Outcome
from modeldeploy.rollout.state import HistoryOutcome, Phase

pytestmark = pytest.mark.unit

moves = st.one_of(
    st.tuples(st.just("tick"), st.sampled_from(list(Outcome)), st.sampled_from([1, 30, 60, 61, 300])),
    st.tuples(st.just("ready"), st.booleans(), st.just(0)),
    st.tuples(st.just("spec"), st.sampled_from(["rev1", "rev2", "rev3"]), st.just(0)),
    st.tuples(
        st.just("action"),
        st.sampled_from(["pause", "resume", "promote", "abort", "retry", "rollback=rev1", "rollback=rev2"]),
        st.just(0),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(moves, max_size=40), st.booleans())
def test_invariants(seq: list[tuple[str, object, int]], with_metrics: bool) -> None:
    sim = Sim.of(**({} if with_metrics else {"metrics": []}))
    sim.deploy("rev1", "m:1")
    for n, (kind, arg, seconds) in enumerate(seq):
        if kind == "tick":
            before = sim.state
            d = sim.step(seconds, arg)  # type: ignore[arg-type]
        elif kind == "ready":
            sim.ready = bool(arg)
            d = sim.step(1)
        elif kind == "spec":
            d = sim.deploy(str(arg), f"m:{arg}")
        else:
            d = sim.action(f"{arg}@{n}")
        s = d.state
        # Traffic always adds up, only to revisions that exist, and an unready canary gets none.
        assert sum(d.weights.values()) == 100
        assert set(d.weights) <= set(d.retain)
        assert all(d.replicas[r] > 0 for r, w in d.weights.items() if w > 0 or r == s.stable_revision)
        if s.canary_revision is not None and not sim.ready:
            assert d.weights.get(s.canary_revision, 0) == 0
        # A canary weight is always one of the configured steps.
        if s.canary_revision is not None and s.canary_weight:
            assert s.canary_weight in {st.set_weight for st in sim.config.steps}
        # Automatic promotion (with metrics) only follows a passing analysis.
        e = d.history_entry
        if (
            with_metrics
            and kind == "tick"
            and e is not None
            and e.outcome == HistoryOutcome.PROMOTED
            and not before.direct
            and e.reason.startswith("all")
        ):
            assert s.last_outcome == Outcome.PASS
        if s.phase == Phase.STABLE:
            assert s.canary_revision is None and d.weights == {s.stable_revision: 100}
        assert len(s.history) <= sim.config.history_limit
