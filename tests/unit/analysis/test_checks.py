"""PromQL of the built-in checks and the math from their answers to one reading."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from modeldeploy.analysis.checks import Target, plan, reading, render_template
from modeldeploy.analysis.config import AnalysisMetric
from modeldeploy.analysis.stats import psi
from modeldeploy.prometheus import ProviderError, ProviderErrorKind, QueryResult, Sample

pytestmark = pytest.mark.unit
TARGET = Target("prod", "fraud", "fraud", "primary", "canary01", "stable01")


def metric(name: str, **kw: object) -> AnalysisMetric:
    return AnalysisMetric.model_validate({"name": name, "thresholdRange": {"max": 1}, **kw})


def answers(**values: float | list[tuple[dict[str, str], float]] | None) -> dict[str, QueryResult]:
    out = {}
    for key, v in values.items():
        if v is None:
            out[key] = QueryResult("q")
        elif isinstance(v, list):
            out[key] = QueryResult("q", tuple(Sample(labels, x) for labels, x in v))
        else:
            out[key] = QueryResult("q", (Sample({}, v),))
    return out


def test_error_rate_queries_select_namespace_revision_and_inference_traffic() -> None:
    q = plan(metric("error-rate"), TARGET, 60)
    assert q == {
        "canary_requests": 'sum(increase(mdserve_requests_total{namespace="prod",revision="canary01",'
        'protocol=~"v1|v2"}[60s]))',
        "canary_errors": 'sum(increase(mdserve_requests_total{namespace="prod",revision="canary01",'
        'protocol=~"v1|v2",code=~"5.."}[60s]))',
    }


def test_error_and_success_rate_math() -> None:
    r = answers(canary_requests=200.0, canary_errors=5.0)
    assert reading(metric("error-rate"), r).value == pytest.approx(0.025)
    assert reading(metric("success-rate"), r).value == pytest.approx(0.975)
    assert reading(metric("error-rate"), r).samples == 200


def test_no_error_series_means_zero_errors_but_no_requests_means_no_data() -> None:
    assert reading(metric("error-rate"), answers(canary_requests=50.0, canary_errors=None)).value == 0.0
    empty = reading(metric("error-rate"), answers(canary_requests=None, canary_errors=None))
    assert empty.value is None and empty.samples == 0


def test_latency_uses_quantile_from_name_or_field() -> None:
    assert "histogram_quantile(0.99," in plan(metric("latency-p99"), TARGET, 60)["canary_latency"]
    assert "histogram_quantile(0.5," in plan(metric("latency-p50"), TARGET, 60)["canary_latency"]
    p = plan(metric("p95", check="latency", quantile=0.95), TARGET, 90)
    assert p["canary_latency"] == (
        'histogram_quantile(0.95, sum by (le) (rate(mdserve_request_duration_seconds_bucket{namespace="prod",'
        'revision="canary01",protocol=~"v1|v2"}[90s])))'
    )
    r = reading(metric("latency-p99"), answers(canary_latency=0.2, canary_requests=30.0))
    assert (r.value, r.samples) == (0.2, 30)


def test_latency_nan_from_empty_histogram_is_no_data() -> None:
    r = reading(metric("latency-p99"), answers(canary_latency=math.nan, canary_requests=0.0))
    assert r.samples == 0 and r.value is not None and math.isnan(r.value)


def test_accuracy_and_drop_compare_with_stable() -> None:
    r = reading(metric("accuracy"), answers(canary_scored=100.0, canary_correct=90.0))
    assert r.value == pytest.approx(0.9) and r.samples == 100
    q = plan(metric("accuracy-drop"), TARGET, 60)
    assert set(q) == {"canary_scored", "canary_correct", "stable_scored", "stable_correct"}
    assert 'revision="stable01",outcome="correct"' in q["stable_correct"]
    r = reading(
        metric("accuracy-drop"),
        answers(canary_scored=100.0, canary_correct=90.0, stable_scored=40.0, stable_correct=38.0),
    )
    assert r.value == pytest.approx(0.05) and r.samples == 40


def test_relative_checks_without_stable_cannot_run() -> None:
    first = Target("prod", "fraud", "fraud", "primary", "canary01", None)
    for name in ("accuracy-drop", "prediction-drift", "latency-gain"):
        assert plan(metric(name), first, 60) == {}
        assert reading(metric(name), {}).value is None


def test_latency_gain_is_fraction_saved() -> None:
    r = reading(
        metric("latency-gain", quantile=0.5),
        answers(canary_latency=0.008, canary_requests=100.0, stable_latency=0.010, stable_requests=300.0),
    )
    assert r.value == pytest.approx(0.2) and r.samples == 100


def test_mae() -> None:
    r = reading(metric("mae"), answers(canary_abs_error=12.0, canary_rows=48.0))
    assert r.value == pytest.approx(0.25)


def test_prediction_drift_is_psi_of_class_counts() -> None:
    canary = [({"class": "a"}, 50.0), ({"class": "b"}, 50.0)]
    stable = [({"class": "a"}, 90.0), ({"class": "b"}, 10.0)]
    r = reading(metric("prediction-drift"), answers(canary_classes=canary, stable_classes=stable))
    expected = (0.5 - 0.9) * math.log(0.5 / 0.9) + (0.5 - 0.1) * math.log(0.5 / 0.1)
    assert r.value == pytest.approx(expected, rel=1e-3)
    assert r.samples == 100
    assert "sum by (class)" in plan(metric("prediction-drift"), TARGET, 60)["stable_classes"]


def test_psi_identical_is_zero_and_missing_class_is_finite() -> None:
    assert psi({"a": 5, "b": 5}, {"a": 50, "b": 50}) == pytest.approx(0.0)
    assert math.isfinite(psi({"a": 10}, {"b": 10}) or math.inf)
    assert psi({}, {"a": 1}) is None


def test_custom_template_variables() -> None:
    m = metric(
        "p",
        query='sum(rate(x{namespace="{{ namespace }}",revision="{{revision}}"}[{{ interval }}])) '
        '/ on() y{rev="{{ stable_revision }}",md="{{ name }}",v="{{ variant }}",m="{{ model }}"}',
    )
    assert plan(m, TARGET, 120)["value"] == (
        'sum(rate(x{namespace="prod",revision="canary01"}[120s])) / on() '
        'y{rev="stable01",md="fraud",v="primary",m="fraud"}'
    )
    assert render_template("{{ name }}", Target('a"b', 'x"y', "m", "v", "r", None), 1) == 'x\\"y'


def test_custom_reading_single_sample_or_error() -> None:
    m = metric("p", query="vector(1)")
    assert reading(m, answers(value=0.3)).value == 0.3
    assert reading(m, answers(value=None)).value is None
    two = reading(m, answers(value=[({"a": "1"}, 1.0), ({"a": "2"}, 2.0)]))
    assert two.error is not None and two.error.kind == ProviderErrorKind.BAD_QUERY


def test_provider_error_wins() -> None:
    r = answers(canary_requests=10.0)
    r["canary_errors"] = QueryResult("q", error=ProviderError(ProviderErrorKind.TIMEOUT, "slow"))
    assert reading(metric("error-rate"), r).error is not None


@pytest.mark.parametrize(
    "raw",
    [
        {"name": "my-metric", "thresholdRange": {"max": 1}},  # neither built-in nor query
        {"name": "x", "check": "custom", "thresholdRange": {"max": 1}},
        {"name": "x", "check": "latency", "query": "up", "thresholdRange": {"max": 1}},
        {"name": "x", "query": "{{ pod }}", "thresholdRange": {"max": 1}},
        {"name": "error-rate", "thresholdRange": {}},
        {"name": "error-rate", "thresholdRange": {"min": 2, "max": 1}},
        {"name": "error-rate", "interval": "1 minute", "thresholdRange": {"max": 1}},
        {"name": "latency", "quantile": 1.5, "thresholdRange": {"max": 1}},
    ],
)
def test_invalid_metrics_are_rejected(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AnalysisMetric.model_validate(raw)


def test_kind_resolution() -> None:
    assert metric("error-rate").kind == "error-rate"
    assert metric("latency-p95").kind == "latency" and metric("latency-p95").effective_quantile == 0.95
    assert metric("speed", check="latency-gain").kind == "latency-gain"
    assert metric("speed", check="latency-gain").effective_quantile == 0.99
    assert metric("anything", query="up").kind == "custom"
    assert metric("error-rate", interval="2m").window_seconds("1m") == 120
