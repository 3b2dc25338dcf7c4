"""Judging readings against thresholds, and one analysis run as a whole. Pure.

No data, NaN and too few samples are Inconclusive: they hold the rollout where it is but count neither as a
failure nor as a success (a canary nobody calls must never be promoted). A provider error is Error, counted
separately toward `consecutiveErrorLimit`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from modeldeploy.analysis.checks import Reading
from modeldeploy.analysis.config import ThresholdRange


class Outcome(StrEnum):
    """Verdict of one measurement, or of one analysis run."""

    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class Measurement(BaseModel):
    """One judged metric; persisted in status.rollout.lastAnalysis, so field names are the API's."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, use_attribute_docstrings=True)

    name: str
    """Metric name."""
    outcome: Outcome
    """Pass, Fail, Inconclusive or Error."""
    value: float | None = None
    """Measured value (None when there was none)."""
    min: float | None = None
    """Lowest accepted value."""
    max: float | None = None
    """Highest accepted value."""
    samples: float | None = None
    """Requests/rows/predictions behind the value."""
    message: str = ""
    """Human-readable verdict naming the value and the threshold."""


class AnalysisRun(BaseModel):
    """All measurements of one interval and the run's overall outcome."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, use_attribute_docstrings=True)

    at: datetime
    """When the run was taken."""
    outcome: Outcome
    """Fail if any failed, else Error if any errored, else Inconclusive if any was, else Pass."""
    measurements: tuple[Measurement, ...] = Field(default=())
    """Per-metric verdicts, in spec order."""

    def failed(self) -> tuple[Measurement, ...]:
        return tuple(m for m in self.measurements if m.outcome == Outcome.FAIL)

    def summary(self) -> str:
        """The measurements that decide the outcome, e.g. `error-rate=0.12 (max 0.01)`."""
        deciding = [m for m in self.measurements if m.outcome == self.outcome] or list(self.measurements)
        return "; ".join(m.message for m in deciding) or "no metrics"


def evaluate(name: str, reading: Reading, threshold: ThresholdRange, min_samples: int) -> Measurement:
    """Judge one reading: Error, Inconclusive (no data / NaN / too few samples), Pass or Fail."""
    bounds = {"min": threshold.min, "max": threshold.max}
    where = f" ({reading.detail})" if reading.detail else ""
    if reading.error is not None:
        message = f"{name}: provider error {reading.error.kind}: {reading.error.message}"
        return Measurement(name=name, outcome=Outcome.ERROR, message=message, **bounds)
    if reading.samples is not None and reading.samples < min_samples:
        message = f"{name}: {reading.samples:g} samples < minSamples {min_samples}{where}"
        return Measurement(
            name=name, outcome=Outcome.INCONCLUSIVE, samples=reading.samples, message=message, **bounds
        )
    value = reading.value
    if value is None or math.isnan(value):
        message = f"{name}: no data{where}"
        return Measurement(
            name=name, outcome=Outcome.INCONCLUSIVE, samples=reading.samples, message=message, **bounds
        )
    low_ok = threshold.min is None or value >= threshold.min
    high_ok = threshold.max is None or value <= threshold.max
    outcome = Outcome.PASS if low_ok and high_ok else Outcome.FAIL
    if not low_ok:
        verdict = f"below min {threshold.min:g}"
    elif not high_ok:
        verdict = f"above max {threshold.max:g}"
    else:
        verdict = f"within {threshold.describe()}"
    # +-Inf is a real answer (e.g. histogram_quantile beyond the last bucket) and is judged as such.
    return Measurement(
        name=name,
        outcome=outcome,
        value=value if not math.isinf(value) else None,
        samples=reading.samples,
        message=f"{name}={value:.4g} {verdict}{where}",
        **bounds,
    )


def combine(at: datetime, measurements: Sequence[Measurement]) -> AnalysisRun:
    """The outcome of a run: one failure fails it; errors and gaps hold it; all passing passes it."""
    outcomes = {m.outcome for m in measurements}
    for outcome in (Outcome.FAIL, Outcome.ERROR, Outcome.INCONCLUSIVE):
        if outcome in outcomes:
            return AnalysisRun(at=at, outcome=outcome, measurements=tuple(measurements))
    return AnalysisRun(at=at, outcome=Outcome.PASS, measurements=tuple(measurements))
