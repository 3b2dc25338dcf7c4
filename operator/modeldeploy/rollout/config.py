"""Typed parse of `spec.rollout`: a superset of `modeldeploy.api.spec.RolloutSpec` (same fields, aliases and
defaults) with the fields progressive delivery adds. rollout/schema.py is its OpenAPI twin; a unit test keeps
the two (and the older RolloutSpec) in step.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from modeldeploy.analysis.config import RELATIVE_CHECKS, AnalysisMetric
from modeldeploy.analysis.duration import parse_duration

Strategy = Literal["Rolling", "Canary", "BlueGreen"]
STEPS_ONLY_CANARY = (
    "steps are only used by strategy Canary (Rolling promotes the new revision when it is Ready; "
    "BlueGreen switches all traffic at once)"
)
METRICS_NOT_ROLLING = (
    "metrics are analysed by strategies Canary and BlueGreen only (Rolling promotes the new revision as "
    "soon as it is Ready)"
)
RELATIVE_NOT_BLUE_GREEN = (
    "strategy BlueGreen sends no traffic to the stable revision while it analyses the new one: relative "
    f"checks ({', '.join(sorted(RELATIVE_CHECKS))}) cannot be measured"
)


class _Model(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True, extra="forbid", frozen=True, use_attribute_docstrings=True
    )


class PauseSpec(_Model):
    duration: str | None = None
    """How long the step is held; None holds it until `resume` (or `promote`)."""

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class StepSpec(_Model):
    set_weight: int = Field(alias="setWeight", ge=0, le=100)
    """Percent of the variant's traffic sent to the canary during this step."""
    pause: PauseSpec | None = None
    """Hold after setting the weight; without it the step is held for one `interval`."""


BLUE_GREEN_SWITCH = StepSpec(setWeight=100)
"""BlueGreen's implicit step: all traffic to the new revision, held one `interval` (no `pause`)."""


class SecretKeyRef(_Model):
    name: str
    """Secret in the ModelDeployment's namespace."""
    key: str = "token"
    """Key holding the bearer token (a `kubernetes.io/basic-auth` Secret uses `username`/`password`)."""


class PrometheusRef(_Model):
    address: str | None = None
    """Prometheus HTTP API base URL (default: the operator's MODELDEPLOY_PROMETHEUS_URL)."""
    timeout_seconds: float | None = Field(default=None, alias="timeoutSeconds", gt=0, le=60)
    """Per-query timeout (default: MODELDEPLOY_PROMETHEUS_TIMEOUT)."""
    auth_secret_ref: SecretKeyRef | None = Field(default=None, alias="authSecretRef")
    """Credentials for the `Authorization` header, Basic or Bearer (default: the operator's setting)."""


class RolloutConfig(_Model):
    strategy: Strategy = "Rolling"
    """Rollout strategy; the engine walks `effective_steps` for each of them."""
    steps: tuple[StepSpec, ...] = ()
    """Canary steps, strictly increasing weights (strategy Canary only)."""
    interval: str = "1m"
    """Analysis interval, also the default hold of a step and the default query window."""
    failure_limit: int = Field(default=3, alias="failureLimit", ge=0)
    """Failed analyses tolerated over the whole rollout; one more rolls back."""
    consecutive_failure_limit: int = Field(default=2, alias="consecutiveFailureLimit", ge=0)
    """Consecutive failed analyses tolerated; one more rolls back."""
    consecutive_error_limit: int = Field(default=4, alias="consecutiveErrorLimit", ge=0)
    """Consecutive analyses with a provider error tolerated; one more rolls back."""
    progress_deadline_seconds: int = Field(default=600, alias="progressDeadlineSeconds", ge=1)
    """Seconds a canary may take to become Ready (or stay unready) before it is rolled back."""
    auto_rollback: bool = Field(default=True, alias="autoRollback")
    """Roll back when a limit is exceeded; false pauses the rollout instead."""
    paused: bool = False
    """Freeze the rollout where it is (phase Paused)."""
    metrics: tuple[AnalysisMetric, ...] = ()
    """Analysis metrics."""
    scale_down_delay_seconds: int = Field(default=30, alias="scaleDownDelaySeconds", ge=0)
    """Delay between taking a revision's traffic away and scaling it to zero (lets routes converge)."""
    history_limit: int = Field(default=10, alias="historyLimit", ge=1, le=50)
    """Finished rollouts kept in status.rollout.history; their revisions are the `rollback` targets."""
    prometheus: PrometheusRef | None = None
    """Where the analysis queries go (default: the operator's settings)."""

    @field_validator("interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: tuple[StepSpec, ...]) -> tuple[StepSpec, ...]:
        weights = [s.set_weight for s in steps]
        if any(b <= a for a, b in itertools.pairwise(weights)):
            raise ValueError("steps[].setWeight must be strictly increasing")
        return steps

    # The same rules as the CEL of rollout/schema.py, for objects stored before the CRD had them.
    @field_validator("steps")
    @classmethod
    def _canary_only(cls, steps: tuple[StepSpec, ...], info: ValidationInfo) -> tuple[StepSpec, ...]:
        if steps and info.data.get("strategy") in ("Rolling", "BlueGreen"):  # absent: strategy is invalid
            raise ValueError(STEPS_ONLY_CANARY)
        return steps

    @field_validator("metrics")
    @classmethod
    def _analysable(
        cls, metrics: tuple[AnalysisMetric, ...], info: ValidationInfo
    ) -> tuple[AnalysisMetric, ...]:
        strategy = info.data.get("strategy")
        if metrics and strategy == "Rolling":
            raise ValueError(METRICS_NOT_ROLLING)
        relative = [m.name for m in metrics if m.kind in RELATIVE_CHECKS]
        if relative and strategy == "BlueGreen":
            raise ValueError(f"{RELATIVE_NOT_BLUE_GREEN}: {', '.join(relative)}")
        return metrics

    @property
    def effective_steps(self) -> tuple[StepSpec, ...]:
        """The steps the engine walks for the strategy. Canary: its own. BlueGreen: one implicit step at
        100%, held one `interval` (the post-promotion analysis) while the previous revision keeps its pods,
        so a failed analysis switches back at once. Rolling: none, promoted as soon as Ready."""
        if self.strategy == "Canary":
            return self.steps
        if self.strategy == "BlueGreen":
            return (BLUE_GREEN_SWITCH,)
        return ()

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    def hold_seconds(self, index: int) -> float | None:
        """How long step `index` of `effective_steps` is held; None: until resumed by hand. An index past the
        steps (they changed under a running canary, which the engine then moves to the last one) holds one
        `interval`."""
        steps = self.effective_steps
        pause = steps[index].pause if index < len(steps) else None
        if pause is None:
            return self.interval_seconds
        return None if pause.duration is None else parse_duration(pause.duration)


def parse_rollout(raw: dict[str, Any] | None) -> RolloutConfig:
    """Parse `spec.rollout` (raises pydantic.ValidationError on bad input)."""
    return RolloutConfig.model_validate(raw or {})
