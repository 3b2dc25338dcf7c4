"""What the engine remembers between reconciles: persisted verbatim as `status.rollout`.

Everything needed to continue a rollout lives here (step, when it started, counters, pending scale-downs, the
last applied manual action), so an operator restarted mid-rollout resumes at the same step with the same
counters. `to_status()`/`from_status()` are the only (de)serialisers.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modeldeploy.analysis.verdict import Measurement, Outcome

TIMELINE_LIMIT = 30
"""Timeline entries kept in status (the kubectl plugin shows them); older ones are dropped."""


class Phase(StrEnum):
    """Phase of the rollout engine (the ModelDeployment phase is derived: see `md_phase`)."""

    STABLE = "Stable"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    ROLLED_BACK = "RolledBack"


class HistoryOutcome(StrEnum):
    """How a revision's rollout ended."""

    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"
    SUPERSEDED = "Superseded"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, use_attribute_docstrings=True)


class HistoryEntry(_Model):
    """One finished rollout."""

    revision: str
    """The revision rolled out."""
    model: str
    """What it served, e.g. `fraud:7 (int8)`."""
    outcome: HistoryOutcome
    """Promoted, RolledBack, Aborted or Superseded."""
    started_at: datetime = Field(alias="startedAt")
    """When the revision started as a canary."""
    finished_at: datetime = Field(alias="finishedAt")
    """When the outcome was reached."""
    reason: str = ""
    """Why, e.g. the failed metric with its value and threshold."""


class TimelineEntry(_Model):
    """One notable moment of the current or last rollout, for people."""

    at: datetime
    """When."""
    step: int | None = None
    """Step index (0-based) at that moment, if a canary was in progress."""
    weight: int = 0
    """Canary weight after this moment."""
    kind: str
    """What happened: Started, Ready, Step, Analysis, Paused, Resumed, Promoted, RolledBack, Action, ..."""
    outcome: Outcome | None = None
    """Outcome of an analysis entry."""
    message: str = ""
    """Detail, e.g. each measurement with value and threshold."""


class ScaleDown(_Model):
    """A revision whose traffic was taken away and that is scaled to zero once `at` has passed."""

    revision: str
    """The revision."""
    at: datetime
    """Not before this time (the scale-down delay lets routes converge first)."""


class RolloutState(_Model):
    """status.rollout."""

    phase: Phase = Phase.STABLE
    """Engine phase."""
    stable_revision: str | None = Field(default=None, alias="stableRevision")
    """Revision serving production traffic."""
    stable_model: str = Field(default="", alias="stableModel")
    """What the stable revision serves."""
    canary_revision: str | None = Field(default=None, alias="canaryRevision")
    """Revision being rolled out (or just rolled back)."""
    canary_model: str = Field(default="", alias="canaryModel")
    """What the canary serves."""
    canary_started_at: datetime | None = Field(default=None, alias="canaryStartedAt")
    """When the canary was created."""
    canary_unready_since: datetime | None = Field(default=None, alias="canaryUnreadySince")
    """Since when the canary has not been Ready (None while it is)."""
    direct: bool = False
    """The canary is a manual rollback target: promoted as soon as Ready, without steps or analysis."""
    held_revision: str | None = Field(default=None, alias="heldRevision")
    """Desired revision not to roll out (rolled back or aborted) until the spec changes or `retry`."""
    step_index: int = Field(default=0, alias="stepIndex")
    """Current step (0-based)."""
    step_started_at: datetime | None = Field(default=None, alias="stepStartedAt")
    """When the current step's weight was set; None until the canary is Ready."""
    canary_weight: int = Field(default=0, alias="canaryWeight")
    """Percent of the variant's traffic on the canary."""
    last_analysis_at: datetime | None = Field(default=None, alias="lastAnalysisAt")
    """When the last analysis ran."""
    last_analysis: tuple[Measurement, ...] = Field(default=(), alias="lastAnalysis")
    """Measurements of the last analysis."""
    last_outcome: Outcome | None = Field(default=None, alias="lastOutcome")
    """Outcome of the last analysis."""
    analysis_runs: int = Field(default=0, alias="analysisRuns")
    """Analyses run for this canary."""
    failures: int = 0
    """Failed analyses of this canary."""
    consecutive_failures: int = Field(default=0, alias="consecutiveFailures")
    """Failed analyses in a row (a pass resets; inconclusive and errors do not)."""
    consecutive_errors: int = Field(default=0, alias="consecutiveErrors")
    """Analyses in a row with a provider error (any other outcome resets)."""
    inconclusive_streak: int = Field(default=0, alias="inconclusiveStreak")
    """Inconclusive analyses in a row (waiting for data)."""
    paused_by_user: bool = Field(default=False, alias="pausedByUser")
    """Paused through the `pause` action."""
    last_action_id: str | None = Field(default=None, alias="lastActionId")
    """Request id of the last manual action applied (an action is applied once)."""
    message: str = ""
    """Human-readable state, naming the metric, value and threshold on a rollback."""
    scale_downs: tuple[ScaleDown, ...] = Field(default=(), alias="scaleDowns")
    """Revisions waiting to be scaled to zero."""
    history: tuple[HistoryEntry, ...] = ()
    """Finished rollouts, newest first, at most `historyLimit`."""
    timeline: tuple[TimelineEntry, ...] = ()
    """Notable moments, oldest first, at most TIMELINE_LIMIT."""

    def to_status(self) -> dict[str, Any]:
        """JSON-able dict for status.rollout (camelCase; unset optionals omitted)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def from_status(raw: dict[str, Any] | None, stable_revision: str | None = None) -> RolloutState:
    """Parse status.rollout. An absent or unreadable one (a hand edit, an older operator) starts over from
    `stable_revision` (status.stableRevision), so a lost state never promotes an unanalysed revision."""
    if raw:
        try:
            return RolloutState.model_validate(raw)
        except ValidationError:
            pass
    return RolloutState(stableRevision=stable_revision)


def md_phase(state: RolloutState) -> tuple[str, str]:
    """(ModelDeployment phase, condition reason) for the rollout state (phases of docs/CONTRACTS.md)."""
    if state.phase == Phase.ROLLED_BACK:
        return "Degraded", "RolledBack"
    if state.phase == Phase.PAUSED:
        return "Paused", "RolloutPaused"
    if state.phase == Phase.PROGRESSING:
        return "Progressing", "RolloutInProgress"
    return "Healthy", "Stable"
