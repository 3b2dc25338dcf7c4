"""Verdicts: pass/fail at the bounds, inconclusive on no data, NaN and too few samples, errors apart."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.analysis.checks import Reading
from modeldeploy.analysis.config import ThresholdRange
from modeldeploy.analysis.verdict import Outcome, combine, evaluate
from modeldeploy.prometheus import ProviderError, ProviderErrorKind

pytestmark = pytest.mark.unit
MAX = ThresholdRange(max=0.01)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "outcome"),
    [(0.0, Outcome.PASS), (0.01, Outcome.PASS), (0.0100001, Outcome.FAIL), (1.0, Outcome.FAIL)],
)
def test_max_bound_is_inclusive(value: float, outcome: Outcome) -> None:
    m = evaluate("error-rate", Reading(value, 100), MAX, 20)
    assert m.outcome == outcome
    assert m.value == value and m.max == 0.01 and m.min is None


def test_failure_message_names_metric_value_and_threshold() -> None:
    m = evaluate("accuracy", Reading(0.91, 500), ThresholdRange(min=0.95), 20)
    assert m.outcome == Outcome.FAIL
    assert m.message == "accuracy=0.91 below min 0.95"


def test_range_both_bounds() -> None:
    r = ThresholdRange(min=0.1, max=0.2)
    assert evaluate("x", Reading(0.05, None), r, 5).outcome == Outcome.FAIL
    assert evaluate("x", Reading(0.15, None), r, 5).outcome == Outcome.PASS
    assert evaluate("x", Reading(0.25, None), r, 5).outcome == Outcome.FAIL


@pytest.mark.parametrize(
    "reading", [Reading(None, 100), Reading(math.nan, 100), Reading(0.0, 19), Reading(0.0, 0)]
)
def test_no_data_nan_and_few_samples_are_inconclusive(reading: Reading) -> None:
    m = evaluate("error-rate", reading, MAX, 20)
    assert m.outcome == Outcome.INCONCLUSIVE
    assert m.value is None


def test_custom_without_sample_count_is_judged_on_value() -> None:
    assert evaluate("custom", Reading(0.5, None), ThresholdRange(max=1), 20).outcome == Outcome.PASS


def test_provider_error_is_error_not_failure() -> None:
    err = ProviderError(ProviderErrorKind.UNREACHABLE, "connection refused")
    m = evaluate("error-rate", Reading(None, None, err), MAX, 20)
    assert m.outcome == Outcome.ERROR
    assert "Unreachable" in m.message


def test_infinity_is_judged_but_not_stored() -> None:
    m = evaluate("latency-p99", Reading(math.inf, 100), ThresholdRange(max=0.25), 20)
    assert m.outcome == Outcome.FAIL and m.value is None


@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
    st.floats(min_value=0, max_value=1e6),
)
def test_judged_only_with_enough_samples(value: float, samples: float) -> None:
    m = evaluate("x", Reading(value, samples), ThresholdRange(min=0.0), 10)
    if samples < 10:
        assert m.outcome == Outcome.INCONCLUSIVE
    else:
        assert m.outcome == (Outcome.PASS if value >= 0 else Outcome.FAIL)


def test_combine_precedence() -> None:
    p = evaluate("a", Reading(0.0, 100), MAX, 1)
    f = evaluate("b", Reading(1.0, 100), MAX, 1)
    i = evaluate("c", Reading(None, 100), MAX, 1)
    e = evaluate("d", Reading(None, None, ProviderError(ProviderErrorKind.TIMEOUT, "t")), MAX, 1)
    assert combine(T0, [p, i, e, f]).outcome == Outcome.FAIL
    assert combine(T0, [p, i, e]).outcome == Outcome.ERROR
    assert combine(T0, [p, i]).outcome == Outcome.INCONCLUSIVE
    assert combine(T0, [p]).outcome == Outcome.PASS
    assert combine(T0, []).outcome == Outcome.PASS
    assert combine(T0, [p, f]).summary() == f.message
