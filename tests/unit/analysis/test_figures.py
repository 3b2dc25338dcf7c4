"""A/B figures: the PromQL of each variant and how the answers become figures (None for no data)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from modeldeploy.analysis.figures import VariantRef, measure, parse, queries
from modeldeploy.prometheus import ProviderError, ProviderErrorKind, QueryResult, Sample

pytestmark = pytest.mark.unit
REF = VariantRef("challenger", "b1b2c3d4", 30)
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def answers(**values: float | None) -> dict[str, QueryResult]:
    """Every query answered; None is an empty vector (no series)."""
    keys = ("requests", "rate", "errors", "p50", "p99", "scored", "correct")
    out = {k: QueryResult("q") for k in keys}
    for key, v in values.items():
        if v is not None:
            out[key] = QueryResult("q", (Sample({}, v),))
    return out


def test_queries_select_namespace_revision_and_inference_traffic() -> None:
    q = queries("prod", REF, 120)
    sel = 'namespace="prod",revision="b1b2c3d4"'
    assert q["requests"] == (
        f'sum(increase(mdserve_request_duration_seconds_count{{{sel},protocol=~"v1|v2"}}[120s]))'
    )
    assert q["rate"] == f'sum(rate(mdserve_request_duration_seconds_count{{{sel},protocol=~"v1|v2"}}[120s]))'
    assert q["errors"] == (
        f'sum(increase(mdserve_requests_total{{{sel},protocol=~"v1|v2",code=~"5.."}}[120s]))'
    )
    assert q["p50"] == ("histogram_quantile(0.5, sum by (le) (rate(mdserve_request_duration_seconds_bucket"
                        f'{{{sel},protocol=~"v1|v2"}}[120s])))')
    assert q["p99"].startswith("histogram_quantile(0.99, ")
    assert q["scored"] == f"sum(increase(mdserve_feedback_total{{{sel}}}[120s]))"
    assert q["correct"] == f'sum(increase(mdserve_feedback_total{{{sel},outcome="correct"}}[120s]))'


def test_queries_escape_label_values() -> None:
    q = queries('we"ird', VariantRef("a", 'r"1'), 60)
    assert 'namespace="we\\"ird",revision="r\\"1"' in q["scored"]


def test_figures_from_answers_are_rounded() -> None:
    f = parse(REF, answers(requests=120.4, rate=2.00666, errors=3.0, p50=0.0123456, p99=0.2049,
                           scored=40.2, correct=30.15))
    assert (f.name, f.revision, f.weight) == ("challenger", "b1b2c3d4", 30)
    assert f.requests_per_second == 2.01
    assert f.error_rate == pytest.approx(0.0249)
    assert (f.latency_p50, f.latency_p99) == (0.0123, 0.205)
    assert f.accuracy == 0.75
    assert f.feedback == 40


def test_no_series_is_none_never_zero() -> None:
    f = parse(REF, answers())
    assert f.to_status() == {"name": "challenger", "revision": "b1b2c3d4", "weight": 30}
    assert None is f.requests_per_second is f.error_rate is f.latency_p50 is f.accuracy is f.feedback


def test_series_that_did_not_move_are_zero_and_undefined_ratios_none() -> None:
    f = parse(REF, answers(requests=0.0, rate=0.0, errors=None, p50=math.nan, p99=math.nan, scored=0.0,
                           correct=0.0))
    assert f.requests_per_second == 0.0 and f.feedback == 0
    assert f.error_rate is None and f.accuracy is None, "no requests/feedback: no ratio"
    assert f.latency_p50 is None and f.latency_p99 is None, "NaN quantile of no requests"


def test_requests_without_a_5xx_series_have_no_errors() -> None:
    f = parse(REF, answers(requests=50.0, rate=1.0, scored=10.0))
    assert f.error_rate == 0.0
    assert f.accuracy == 0.0, "feedback series exist, none correct"
    assert f.to_status()["errorRate"] == 0.0


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.sent: list[tuple[str, datetime | None]] = []
        self.fail_on = fail_on

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        self.sent.append((promql, at))
        if self.fail_on and self.fail_on in promql:
            return QueryResult(promql, error=ProviderError(ProviderErrorKind.TIMEOUT, "slow"))
        value = 10.0 if "outcome" in promql else 20.0
        return QueryResult(promql, (Sample({}, value),))


def test_measure_queries_every_variant_at_one_instant() -> None:
    client = Recorder()
    refs = [VariantRef("primary", "a1", 70), REF]
    run = measure(client, "prod", "fraud", refs, 90, NOW)
    assert run.error is None and run.window == "90s" and run.at == NOW
    assert [v.name for v in run.variants] == ["primary", "challenger"]
    assert run.variants[0].accuracy == 0.5 and run.variants[0].feedback == 20
    assert len(client.sent) == 14 and {at for _, at in client.sent} == {NOW}


def test_measure_stops_at_the_first_provider_error() -> None:
    run = measure(Recorder(fail_on='revision="b1b2c3d4"'), "prod", "fraud",
                  [VariantRef("primary", "a1"), REF], 60, NOW)
    assert run.variants == () and run.error is not None
    assert run.error.kind is ProviderErrorKind.TIMEOUT
    assert run.error.message == "prod/fraud variant challenger: slow"
