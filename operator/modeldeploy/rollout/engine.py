"""The progressive delivery engine: the next state of a rollout from the observed world and the time. Pure.

One call per reconcile. The reconciler first asks `analysis_due()`; if it is, it runs the analysis (the only
I/O, analysis/runner.py) and passes the result in `Observed.analysis`; `decide()` then returns the new state
to persist in status.rollout, the traffic weights and replica counts per revision to apply, the Events to
post and when to be called again. Rules, in order:

1. Manual action (annotation, applied once per request id).
2. What the spec wants: the first revision goes straight to stable; a new revision starts a canary (an
   in-flight canary is superseded: weight 0 at once, scaled down later, never scaled up again); the stable
   revision again ends any canary; the held (rolled-back) revision stays held until the spec changes or
   `retry`.
3. The canary: weight only once Ready (unready longer than progressDeadlineSeconds rolls back); analysis
   counters; limits exceeded roll back (or pause without autoRollback); a step advances when held long
   enough AND an analysis taken during it passed. Inconclusive never advances and never fails.

Every strategy is this one walk over `config.effective_steps`: Canary its steps, BlueGreen one step at 100%
(the stable revision keeps its pods until promotion, so a rollback is a weight change), Rolling none (promoted
once Ready, unless paused).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from modeldeploy.analysis.verdict import AnalysisRun, Outcome
from modeldeploy.rollout.actions import InvalidAction, ManualAction
from modeldeploy.rollout.config import RolloutConfig
from modeldeploy.rollout.manual import apply_action
from modeldeploy.rollout.state import HistoryEntry, HistoryOutcome, Phase, RolloutState
from modeldeploy.rollout.transitions import Draft, Event


@dataclass(frozen=True)
class Observed:
    """What the reconciler saw this pass."""

    desired_revision: str
    """Revision rendered from the current spec (of the variant this engine rolls out)."""
    desired_model: str
    """What that revision serves, for history and messages, e.g. `fraud:7 (int8)`."""
    replicas: int
    """Desired replicas of a serving revision (spec)."""
    ready_revisions: frozenset[str] = frozenset()
    """Revisions whose Deployment is Ready (revisions.deployment_ready); the engine looks up its canary,
    which may change within the decision (a new spec revision, a rollback target)."""
    analysis: AnalysisRun | None = None
    """Analysis taken this pass because `analysis_due` said so; None otherwise."""
    action: ManualAction | InvalidAction | None = None
    """Manual action read from the annotations (actions.parse_action)."""
    existing_revisions: frozenset[str] = frozenset()
    """Revisions that still have a Deployment (a `rollback` target must)."""


@dataclass(frozen=True)
class Decision:
    """What to persist and apply."""

    state: RolloutState
    """Persist as status.rollout (`state.to_status()`)."""
    weights: dict[str, int]
    """Revision -> percent of the variant's traffic; sums to 100."""
    replicas: dict[str, int]
    """Revision -> replicas; 0 means scale to zero but keep the Deployment (a rollback target)."""
    retain: frozenset[str]
    """Revisions whose Deployments must be kept; the variant's other revisions may be deleted."""
    events: tuple[Event, ...]
    """Events to post on the ModelDeployment."""
    requeue_after: float | None
    """Seconds until the engine must run again even if nothing changes; None: only on events."""
    history_entry: HistoryEntry | None
    """The history entry this decision recorded, if any."""


def _paused(config: RolloutConfig, state: RolloutState) -> bool:
    return config.paused or state.paused_by_user


def analysis_due(config: RolloutConfig, state: RolloutState, now: datetime) -> bool:
    """An analysis of `state.canary_revision` must run this pass (the canary has its step weight and one
    interval has passed since the step started or the last analysis)."""
    if not config.metrics or state.canary_revision is None or state.direct:
        return False
    if state.phase not in (Phase.PROGRESSING, Phase.PAUSED) or state.step_started_at is None:
        return False
    since = max(state.step_started_at, state.last_analysis_at or state.step_started_at)
    return now >= since + timedelta(seconds=config.interval_seconds)


def _follow_spec(d: Draft, observed: Observed) -> None:
    s, desired = d.state, observed.desired_revision
    if s.stable_revision is None:
        d.first_deployment(desired, observed.desired_model)
    elif desired == s.canary_revision or desired == s.held_revision:
        return
    elif desired == s.stable_revision:
        d.supersede(f"the spec is back to the stable revision {desired}")
        if s.held_revision is not None or d.state.phase != Phase.STABLE:
            d.set(phase=Phase.STABLE, held_revision=None, message=f"revision {desired} serves the spec")
            d.note("Stable", d.state.message)
    else:
        d.supersede(f"the spec changed to revision {desired}")
        d.set(held_revision=None)
        d.start_canary(desired, observed.desired_model)


def _apply_analysis(d: Draft, run: AnalysisRun, desired: str) -> None:
    s, c = d.state, d.config
    counters = {
        Outcome.PASS: dict(consecutive_failures=0, consecutive_errors=0, inconclusive_streak=0),
        Outcome.FAIL: dict(failures=s.failures + 1, consecutive_failures=s.consecutive_failures + 1,
                           consecutive_errors=0, inconclusive_streak=0),
        Outcome.ERROR: dict(consecutive_errors=s.consecutive_errors + 1),
        Outcome.INCONCLUSIVE: dict(inconclusive_streak=s.inconclusive_streak + 1, consecutive_errors=0),
    }[run.outcome]
    d.set(last_analysis_at=run.at, last_analysis=run.measurements, last_outcome=run.outcome,
          analysis_runs=s.analysis_runs + 1, **counters)
    d.note("Analysis", run.summary(), run.outcome)
    s = d.state
    reason = None
    if s.failures > c.failure_limit:
        reason = f"{s.failures} failed analyses > failureLimit {c.failure_limit}"
    elif s.consecutive_failures > c.consecutive_failure_limit:
        reason = f"{s.consecutive_failures} consecutive failed analyses > consecutiveFailureLimit " \
                 f"{c.consecutive_failure_limit}"
    elif s.consecutive_errors > c.consecutive_error_limit:
        reason = f"{s.consecutive_errors} consecutive analyses with provider errors > " \
                 f"consecutiveErrorLimit {c.consecutive_error_limit}"
    if reason is None:
        where = d.position()
        if run.outcome == Outcome.INCONCLUSIVE:
            d.set(message=f"{where}: waiting for data ({s.inconclusive_streak} inconclusive in a row): "
                          f"{run.summary()}")
        else:
            d.set(message=f"{where}: analysis {run.outcome.value}: {run.summary()}")
        return
    reason = f"{reason}: {run.summary()}"
    if c.auto_rollback:
        d.roll_back(HistoryOutcome.ROLLED_BACK, reason, desired)
    elif not s.paused_by_user:
        d.set(paused_by_user=True, phase=Phase.PAUSED,
              message=f"analysis failed ({reason}); autoRollback is off: promote or abort")
        d.note("Paused", d.state.message)
        d.event("Warning", "AnalysisFailed", d.state.message)


def _progress(d: Draft, observed: Observed) -> None:
    """Readiness, analysis and steps of the in-flight canary."""
    c, now = d.config, d.now
    if not d.in_flight:
        return
    if d.state.canary_revision not in observed.ready_revisions:
        s = d.state
        since = s.canary_unready_since or now
        if s.canary_weight > 0:  # never send users to pods that cannot answer
            d.set(canary_weight=0, step_started_at=None)
            d.note("Unready", f"canary {s.canary_revision} is not Ready: weight 0 until it is")
            d.event("Warning", "CanaryUnready", f"canary {s.canary_revision} is not Ready")
        d.set(canary_unready_since=since)
        if now - since > timedelta(seconds=c.progress_deadline_seconds):
            d.roll_back(HistoryOutcome.ROLLED_BACK,
                        f"not Ready for {c.progress_deadline_seconds}s (progressDeadlineSeconds)",
                        observed.desired_revision)
        return
    d.set(canary_unready_since=None)
    if d.state.direct:
        d.promote("manual rollback" if d.state.held_revision else "promoted by request")
        return
    if not c.effective_steps:
        if _paused(c, d.state):  # nothing else would hold a Rolling update: a pause must
            d.set(phase=Phase.PAUSED, message=f"{d.state.canary_revision} is Ready; paused before promotion")
            return
        d.promote("Ready" if c.strategy == "Rolling" else "Ready (no steps)")
        return
    if observed.analysis is not None:
        _apply_analysis(d, observed.analysis, observed.desired_revision)
        if not d.in_flight:
            return
    s = d.state
    if _paused(c, s):
        d.set(phase=Phase.PAUSED)
        return
    d.set(phase=Phase.PROGRESSING)
    last = len(c.effective_steps) - 1
    if s.step_started_at is None or s.step_index > last:
        # Past the last step: the steps or the strategy changed under this canary; hold the new last step.
        d.enter_step(min(s.step_index, last))
        return
    hold = c.hold_seconds(s.step_index)
    held = hold is not None and now >= s.step_started_at + timedelta(seconds=hold)
    passed = not c.metrics or (
        s.last_outcome == Outcome.PASS
        and s.last_analysis_at is not None
        and s.last_analysis_at > s.step_started_at
    )
    if held and passed:
        advance(d)


def advance(d: Draft) -> None:
    """Next step, or promotion after the last one."""
    c, nxt = d.config, d.state.step_index + 1
    if nxt < len(c.effective_steps):
        d.enter_step(nxt)
    elif c.strategy == "BlueGreen":
        gate = " with a passing analysis" if c.metrics else ""
        d.promote(f"held {c.interval} on all traffic{gate}")
    else:
        d.promote(f"all {len(c.effective_steps)} steps passed")


def _outputs(d: Draft, observed: Observed) -> tuple[dict[str, int], dict[str, int], frozenset[str]]:
    s = d.state
    pending = {x.revision for x in s.scale_downs if x.at > d.now}
    weights: dict[str, int] = {}
    if s.stable_revision is not None:
        weights[s.stable_revision] = 100 - (s.canary_weight if d.in_flight else 0)
    if d.in_flight and s.canary_revision is not None:
        weights[s.canary_revision] = s.canary_weight
    serving = {r for r in (s.stable_revision, s.canary_revision if d.in_flight else None) if r}
    targets = {h.revision for h in s.history if h.outcome == HistoryOutcome.PROMOTED}
    retain = frozenset(serving | pending | targets | {observed.desired_revision})
    replicas = {r: observed.replicas if r in serving or r in pending else 0 for r in retain}
    return weights, replicas, retain


def _requeue(d: Draft) -> float | None:
    s, c, now = d.state, d.config, d.now
    times = [x.at for x in s.scale_downs if x.at > now]
    if d.in_flight:
        if s.canary_unready_since is not None:
            times.append(s.canary_unready_since + timedelta(seconds=c.progress_deadline_seconds + 1))
        if s.step_started_at is not None:
            since = max(s.step_started_at, s.last_analysis_at or s.step_started_at)
            if c.metrics:
                times.append(since + timedelta(seconds=c.interval_seconds))
            hold = c.hold_seconds(s.step_index)
            if hold is not None:
                times.append(s.step_started_at + timedelta(seconds=hold))
    future = [(t - now).total_seconds() for t in times if t > now]
    return max(1.0, min(future)) if future else None


def decide(config: RolloutConfig, state: RolloutState, observed: Observed, now: datetime) -> Decision:
    """The next state of the rollout; see the module docstring for the rules."""
    due = analysis_due(config, state, now)
    d = Draft(state=state, config=config, now=now)
    # Scale-downs whose delay has passed are done once this decision is applied (replicas 0 below).
    d.set(scale_downs=tuple(x for x in state.scale_downs if x.at > now))
    apply_action(d, observed.action, observed.desired_revision, observed.desired_model,
                 observed.existing_revisions)
    before = d.state.canary_revision
    _follow_spec(d, observed)
    same_canary = d.state.canary_revision == before == state.canary_revision
    if observed.analysis is not None and not (due and same_canary):
        observed = replace(observed, analysis=None)  # not due, or taken for a canary that is gone
    _progress(d, observed)
    weights, replicas, retain = _outputs(d, observed)
    return Decision(d.state, weights, replicas, retain, tuple(d.events), _requeue(d), d.history_entry)
