"""Typed parse of `spec.rollout`: a superset of `modeldeploy.api.spec.RolloutSpec` (same fields, aliases and
defaults) with the fields progressive delivery adds. rollout/schema.py is its OpenAPI twin; a unit test keeps
the two (and the older RolloutSpec) in step.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modeldeploy.analysis.config import AnalysisMetric
from modeldeploy.analysis.duration import parse_duration


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
    strategy: Literal["Rolling", "Canary", "BlueGreen"] = "Rolling"
    """Rollout strategy; Rolling is a canary without steps (switch when Ready)."""
    steps: tuple[StepSpec, ...] = ()
    """Canary steps, strictly increasing weights."""
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

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    def hold_seconds(self, index: int) -> float | None:
        """How long step `index` is held; None: until resumed by hand."""
        pause = self.steps[index].pause
        if pause is None:
            return self.interval_seconds
        return None if pause.duration is None else parse_duration(pause.duration)


def parse_rollout(raw: dict[str, Any] | None) -> RolloutConfig:
    """Parse `spec.rollout` (raises pydantic.ValidationError on bad input)."""
    return RolloutConfig.model_validate(raw or {})
