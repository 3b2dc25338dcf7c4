"""Manual control: what each action does to a rollout. Pure; applied once per request id.

- pause / resume: freeze or unfreeze step advancement (analysis keeps running: a failing canary is still
  rolled back); `resume` also ends a step held without a duration.
- promote: promote the canary as soon as it is Ready, skipping the remaining steps and analysis.
- abort: roll the canary back now (the spec's revision is held until the spec changes or `retry`).
- retry: roll out the held revision again, from the first step with fresh counters.
- rollback=<revision>: serve a revision from history again (its Deployment, kept at zero replicas, is scaled
  up and switched to as soon as Ready); the spec's revision is held.
"""

from __future__ import annotations

from collections.abc import Set

from modeldeploy.rollout.actions import InvalidAction, ManualAction
from modeldeploy.rollout.state import HistoryOutcome, Phase
from modeldeploy.rollout.transitions import Draft


def _ignored(d: Draft, action: ManualAction, why: str) -> None:
    d.event("Warning", "ActionIgnored", f"{action.verb}: {why}")
    d.note("Action", f"{action.verb} ignored: {why}")


def apply_action(
    d: Draft,
    action: ManualAction | InvalidAction | None,
    desired: str,
    desired_model: str,
    existing: Set[str],
) -> None:
    if action is None:
        return
    request_id = action.request_id if action.request_id is not None else action.raw
    if request_id == d.state.last_action_id:
        return
    d.set(last_action_id=request_id)
    if isinstance(action, InvalidAction):
        d.event("Warning", "InvalidAction", f"annotation {action.raw!r} ignored: {action.reason}")
        return
    s = d.state
    verb = action.verb
    if verb in ("pause", "resume", "promote", "abort") and not d.in_flight:
        _ignored(d, action, "no rollout in progress")
    elif verb == "pause":
        d.set(paused_by_user=True, phase=Phase.PAUSED, message="paused by request")
        d.note("Paused", "paused by request")
        d.event("Normal", "Paused", "rollout paused by request")
    elif verb == "resume":
        d.set(paused_by_user=False, phase=Phase.PAUSED if d.config.paused else Phase.PROGRESSING,
              message="resumed by request")
        d.note("Resumed", "resumed by request" + (" (spec.rollout.paused is still true)" if d.config.paused
                                                  else ""))
        d.event("Normal", "Resumed", "rollout resumed by request")
        if s.step_started_at is not None and not s.direct and d.config.hold_seconds(s.step_index) is None:
            from modeldeploy.rollout.engine import advance  # the step logic lives with the engine

            advance(d)
    elif verb == "promote":
        d.set(direct=True, paused_by_user=False, message="promotion requested: promoting once Ready")
        d.note("Action", "promote requested")
    elif verb == "abort":
        d.roll_back(HistoryOutcome.ABORTED, "aborted by request", desired)
    elif verb == "retry":
        if s.phase != Phase.ROLLED_BACK or s.held_revision != desired:
            _ignored(d, action, "nothing rolled back to retry")
            return
        d.set(held_revision=None)
        d.start_canary(desired, desired_model, why=f"retrying {desired} ({desired_model}) by request")
    else:
        _rollback_to(d, action, desired, existing)


def _rollback_to(d: Draft, action: ManualAction, desired: str, existing: Set[str]) -> None:
    s, target = d.state, action.revision or ""
    promoted = (h for h in s.history if h.revision == target and h.outcome == HistoryOutcome.PROMOTED)
    entry = next(promoted, None)
    if entry is None:
        _ignored(d, action, f"revision {target} was never promoted (see `kubectl modeldeploy history`)")
        return
    if target not in existing:
        _ignored(d, action, f"the Deployment of revision {target} no longer exists")
        return
    held = desired if desired != target else None
    if d.in_flight:
        d.roll_back(HistoryOutcome.ABORTED, f"rolled back by request to {target}", desired)
    if target == d.state.stable_revision:
        message = f"serving {target} by request" + (f"; the spec's revision {held} is held" if held else "")
        d.set(held_revision=held, phase=Phase.ROLLED_BACK if held else Phase.STABLE, message=message)
        d.note("Action", d.state.message)
        return
    d.set(held_revision=held)
    why = f"rolling back to {target} ({entry.model}) by request"
    d.start_canary(target, entry.model, direct=True, why=why)
