"""Typed parse of one `spec.rollout.metrics[]` entry: which check it runs, on what window, with which gate.

A superset of `modeldeploy.api.spec.AnalysisMetric` (name, thresholdRange, query, interval): a metric named
after a built-in check runs it, a metric with `query` runs that PromQL template, and `check` picks a
built-in explicitly so two metrics can use the same check (e.g. latency at two quantiles).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modeldeploy.analysis.duration import parse_duration

CheckKind = Literal[
    "success-rate",
    "error-rate",
    "latency",
    "accuracy",
    "accuracy-drop",
    "mae",
    "prediction-drift",
    "latency-gain",
    "custom",
]
BUILTIN_CHECKS: tuple[str, ...] = (
    "success-rate",
    "error-rate",
    "latency",
    "accuracy",
    "accuracy-drop",
    "mae",
    "prediction-drift",
    "latency-gain",
)
RELATIVE_CHECKS: frozenset[str] = frozenset({"accuracy-drop", "prediction-drift", "latency-gain"})
"""Checks that compare the canary with the stable revision (inconclusive when there is none)."""
NAME_ALIASES: dict[str, tuple[str, float | None]] = {
    **{c: (c, None) for c in BUILTIN_CHECKS},
    "latency-p50": ("latency", 0.5),
    "latency-p90": ("latency", 0.9),
    "latency-p95": ("latency", 0.95),
    "latency-p99": ("latency", 0.99),
}
"""Metric names that select a built-in check (and its quantile) without `check`."""
TEMPLATE_VARIABLES: tuple[str, ...] = (
    "namespace",
    "name",
    "model",
    "variant",
    "revision",
    "stable_revision",
    "interval",
)
"""Variables a custom `query` may use as `{{ variable }}`."""
TEMPLATE_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
DEFAULT_QUANTILE = 0.99
DEFAULT_MIN_SAMPLES = 20


class _Model(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True, extra="forbid", frozen=True, use_attribute_docstrings=True
    )


class ThresholdRange(_Model):
    """Accepted range of a measured value, bounds included."""

    min: float | None = None
    """Lowest accepted value."""
    max: float | None = None
    """Highest accepted value."""

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdRange:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must be less than or equal to max")
        return self

    def describe(self) -> str:
        """`>= 0.95`, `<= 0.25` or `in [0.1, 0.2]`, for messages."""
        if self.min is not None and self.max is not None:
            return f"in [{self.min:g}, {self.max:g}]"
        if self.min is not None:
            return f">= {self.min:g}"
        return f"<= {self.max:g}"


class AnalysisMetric(_Model):
    """One measurement taken at every analysis interval."""

    name: str
    """Metric name, unique in the list; a built-in check name (or `latency-p50|p90|p95|p99`) selects it."""
    threshold_range: ThresholdRange = Field(alias="thresholdRange")
    """Accepted range of the measured value."""
    check: CheckKind | None = None
    """Built-in check to run, or `custom`; default: from `name`, or `custom` when `query` is set."""
    query: str | None = None
    """PromQL template of a custom check, returning one sample; `{{ variable }}` from TEMPLATE_VARIABLES."""
    interval: str | None = None
    """Query window (default: `rollout.interval`)."""
    min_samples: int = Field(default=DEFAULT_MIN_SAMPLES, alias="minSamples", ge=0)
    """Fewest requests/feedback rows/predictions in the window for a verdict; fewer is inconclusive."""
    quantile: float | None = Field(default=None, gt=0, lt=1)
    """Latency quantile of `latency` and `latency-gain` (default 0.99, or from a `latency-pNN` name)."""

    @field_validator("interval")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("query")
    @classmethod
    def _known_variables(cls, value: str | None) -> str | None:
        if value is not None:
            unknown = sorted(set(TEMPLATE_VARIABLE.findall(value)) - set(TEMPLATE_VARIABLES))
            if unknown:
                raise ValueError(
                    f"unknown template variable(s) {', '.join(unknown)}; use {', '.join(TEMPLATE_VARIABLES)}"
                )
        return value

    @model_validator(mode="after")
    def _resolvable(self) -> AnalysisMetric:
        kind = self.kind
        if kind == "custom" and not self.query:
            raise ValueError(
                f"metric {self.name!r}: set `query`, or a built-in `check` ({', '.join(BUILTIN_CHECKS)})"
            )
        if kind != "custom" and self.query:
            raise ValueError(f"metric {self.name!r}: `query` is only used by check `custom`")
        return self

    @property
    def kind(self) -> str:
        """The check this metric runs."""
        if self.check is not None:
            return self.check
        if self.query:
            return "custom"
        alias = NAME_ALIASES.get(self.name)
        return alias[0] if alias else "custom"

    @property
    def effective_quantile(self) -> float:
        if self.quantile is not None:
            return self.quantile
        alias = NAME_ALIASES.get(self.name)
        return alias[1] if alias and alias[1] is not None else DEFAULT_QUANTILE

    def window_seconds(self, default_interval: str) -> float:
        return parse_duration(self.interval or default_interval)
