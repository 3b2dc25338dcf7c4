"""Statistics of the relative checks, on plain numbers. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping

PSI_EPSILON = 1e-4
"""Floor of a class share: a class one side never predicted would otherwise make PSI infinite."""


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator/denominator, or None when the denominator is zero (no data, not a value of 0 or 1)."""
    if denominator <= 0 or math.isnan(numerator) or math.isnan(denominator):
        return None
    return numerator / denominator


def shares(counts: Mapping[str, float], classes: list[str]) -> list[float]:
    """Share of each class in `classes`, floored at PSI_EPSILON and renormalised."""
    total = sum(max(0.0, counts.get(c, 0.0)) for c in classes)
    raw = [max(0.0, counts.get(c, 0.0)) / total if total > 0 else 0.0 for c in classes]
    floored = [max(s, PSI_EPSILON) for s in raw]
    norm = sum(floored)
    return [s / norm for s in floored]


def psi(reference: Mapping[str, float], current: Mapping[str, float]) -> float | None:
    """Population Stability Index of `current` vs `reference` class counts (sum of (a-e)*ln(a/e)).

    None when either side has no predictions. Rule of thumb: < 0.1 stable, 0.1-0.25 some shift, > 0.25 major.
    """
    if sum(max(0.0, v) for v in reference.values()) <= 0 or sum(max(0.0, v) for v in current.values()) <= 0:
        return None
    classes = sorted(set(reference) | set(current))
    expected, actual = shares(reference, classes), shares(current, classes)
    return sum((a - e) * math.log(a / e) for e, a in zip(expected, actual, strict=True))
