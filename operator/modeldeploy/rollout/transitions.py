"""The state changes of a rollout (start, step, promote, roll back, supersede), each recording its history,
timeline entry and Event in one place. Pure: a `Draft` is a working copy the engine edits during one decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from modeldeploy.analysis.verdict import Outcome
from modeldeploy.rollout.config import RolloutConfig
from modeldeploy.rollout.state import (
    TIMELINE_LIMIT,
    HistoryEntry,
    HistoryOutcome,
    Phase,
    RolloutState,
    ScaleDown,
    TimelineEntry,
)


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event the reconciler posts on the ModelDeployment."""

    type: Literal["Normal", "Warning"]
    """Event type."""
    reason: str
    """CamelCase reason."""
    message: str
    """Detail for people."""


# Fields that belong to one canary: reset whenever a canary ends or a new one starts. The last analysis
# (time, outcome, measurements) stays for people; a step only counts an analysis taken after it started.
CANARY_RESET: dict[str, Any] = {
    "canary_revision": None,
    "canary_model": "",
    "canary_started_at": None,
    "canary_unready_since": None,
    "direct": False,
    "step_index": 0,
    "step_started_at": None,
    "canary_weight": 0,
    "analysis_runs": 0,
    "failures": 0,
    "consecutive_failures": 0,
    "consecutive_errors": 0,
    "inconclusive_streak": 0,
    "paused_by_user": False,
}


@dataclass
class Draft:
    """The state being decided, plus what the decision emits."""

    state: RolloutState
    """Working copy (replaced on every change: the model is frozen)."""
    config: RolloutConfig
    """The rollout configuration."""
    now: datetime
    """Decision time."""
    events: list[Event] = field(default_factory=list)
    """Events to post."""
    history_entry: HistoryEntry | None = None
    """The history entry recorded by this decision, if any."""

    def set(self, **changes: Any) -> None:
        self.state = self.state.model_copy(update=changes)

    @property
    def in_flight(self) -> bool:
        """A canary is being rolled out (not rolled back, not promoted)."""
        s = self.state
        return s.canary_revision is not None and s.phase in (Phase.PROGRESSING, Phase.PAUSED)

    def event(self, etype: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(etype, reason, message))

    def note(self, kind: str, message: str, outcome: Outcome | None = None) -> None:
        s = self.state
        step = s.step_index if s.canary_revision is not None and not s.direct else None
        entry = TimelineEntry(
            at=self.now, step=step, weight=s.canary_weight, kind=kind, outcome=outcome, message=message
        )
        self.set(timeline=(*s.timeline, entry)[-TIMELINE_LIMIT:])

    def record(self, revision: str, model: str, outcome: HistoryOutcome, started: datetime | None,
               reason: str) -> None:
        entry = HistoryEntry(
            revision=revision,
            model=model,
            outcome=outcome,
            startedAt=started or self.now,
            finishedAt=self.now,
            reason=reason,
        )
        self.history_entry = entry
        self.set(history=(entry, *self.state.history)[: self.config.history_limit])

    def scale_down_later(self, revision: str) -> None:
        at = self.now + timedelta(seconds=self.config.scale_down_delay_seconds)
        kept = tuple(d for d in self.state.scale_downs if d.revision != revision)
        self.set(scale_downs=(*kept, ScaleDown(revision=revision, at=at)))

    def cancel_scale_down(self, revision: str) -> None:
        self.set(scale_downs=tuple(d for d in self.state.scale_downs if d.revision != revision))

    # --- transitions -------------------------------------------------------------------------------------

    def first_deployment(self, revision: str, model: str) -> None:
        self.set(**CANARY_RESET, phase=Phase.STABLE, stable_revision=revision, stable_model=model,
                 held_revision=None, message=f"revision {revision} serves {model}")
        self.record(revision, model, HistoryOutcome.PROMOTED, self.now, "first deployment")
        self.note("Promoted", f"first deployment: {revision} ({model}) is stable")
        self.event("Normal", "Promoted", f"first deployment: revision {revision} ({model}) is stable")

    def start_canary(self, revision: str, model: str, *, direct: bool = False, why: str = "") -> None:
        self.cancel_scale_down(revision)  # never scale down what is starting again
        self.set(**{**CANARY_RESET, "phase": Phase.PROGRESSING, "canary_revision": revision,
                    "canary_model": model, "canary_started_at": self.now, "canary_unready_since": self.now,
                    "direct": direct, "message": why or f"canary {revision} ({model}) starting"})
        self.note("Started", self.state.message)
        self.event("Normal", "RolloutStarted", self.state.message)

    def end_canary(self, outcome: HistoryOutcome, reason: str) -> None:
        """Take all traffic away from the canary at once; it is scaled down after the delay."""
        s = self.state
        if s.canary_revision is None:
            return
        self.record(s.canary_revision, s.canary_model, outcome, s.canary_started_at, reason)
        self.scale_down_later(s.canary_revision)
        self.set(**CANARY_RESET)

    def roll_back(self, outcome: HistoryOutcome, reason: str, desired: str) -> None:
        s = self.state
        revision = s.canary_revision
        held = revision if revision == desired else s.held_revision
        message = f"rolled back {revision} ({s.canary_model}): {reason}"
        self.end_canary(outcome, reason)
        self.set(phase=Phase.ROLLED_BACK, held_revision=held, message=message)
        self.note("RolledBack", message)
        self.event("Warning", "RolledBack" if outcome == HistoryOutcome.ROLLED_BACK else "Aborted", message)

    def promote(self, reason: str) -> None:
        s = self.state
        assert s.canary_revision is not None
        old, new, model = s.stable_revision, s.canary_revision, s.canary_model
        self.record(new, model, HistoryOutcome.PROMOTED, s.canary_started_at, reason)
        if old is not None and old != new:
            self.scale_down_later(old)
        self.set(**CANARY_RESET, stable_revision=new, stable_model=model)
        if s.held_revision is not None and s.held_revision != new:
            message = (f"serving {new} ({model}) after a manual rollback; the spec's revision "
                       f"{s.held_revision} is held: change the spec or `retry`")
            self.set(phase=Phase.ROLLED_BACK, message=message)
        else:
            message = f"revision {new} ({model}) promoted: {reason}"
            self.set(phase=Phase.STABLE, held_revision=None, message=message)
        self.note("Promoted", f"{new} ({model}) is stable: {reason}")
        self.event("Normal", "Promoted", f"revision {new} ({model}) is stable: {reason}")

    def supersede(self, reason: str) -> None:
        s = self.state
        if s.canary_revision is None:
            return
        message = f"canary {s.canary_revision} superseded: {reason}"
        self.end_canary(HistoryOutcome.SUPERSEDED, reason)
        self.note("Superseded", message)
        self.event("Normal", "Superseded", message)

    def position(self) -> str:
        """Where the in-flight canary is, for messages."""
        s, c = self.state, self.config
        if c.strategy == "BlueGreen":
            return f"blue-green switch at {s.canary_weight}%"
        return f"step {s.step_index + 1}/{len(c.effective_steps)} at {s.canary_weight}%"

    def enter_step(self, index: int) -> None:
        c = self.config
        weight = c.effective_steps[index].set_weight
        self.set(step_index=index, step_started_at=self.now, canary_weight=weight)
        if c.strategy == "BlueGreen":
            s = self.state
            message = (f"all traffic switched to {s.canary_revision}; {s.stable_revision} keeps its pods for "
                       f"at least {c.interval} (analysis) before promotion")
        else:
            message = f"step {index + 1}/{len(c.effective_steps)}: canary weight {weight}%"
        self.set(message=message)
        self.note("Step", message)
        self.event("Normal", "Step", message)
