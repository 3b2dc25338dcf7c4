"""The built-in checks' PromQL against a real Prometheus scraping real model servers (1 s scrape).

Two `mdserve serve` processes serve the same iris model as the stable and the canary revision. Traffic and
feedback are chosen so the expected accuracy, accuracy drop and prediction drift are known exactly from the
server's own answers; the analysis must measure exactly those values through Prometheus.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from analysis_servers import ModelServer
from sklearn.datasets import load_iris

from devcluster.prometheus import PrometheusServer, ScrapeTarget
from modeldeploy.analysis.checks import Target
from modeldeploy.analysis.config import AnalysisMetric
from modeldeploy.analysis.runner import run_analysis
from modeldeploy.analysis.stats import psi
from modeldeploy.analysis.verdict import Outcome
from modeldeploy.prometheus import PrometheusClient, ProviderErrorKind

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TARGET = Target("prod", "iris", "iris", "primary", "canary01", "stable01")


def metrics(*raw: dict[str, object]) -> list[AnalysisMetric]:
    return [AnalysisMetric.model_validate(m) for m in raw]


def wait_for(prom: PrometheusServer, promql: str, expected: float, timeout: float = 90) -> None:
    """Until Prometheus has scraped the counters up to `expected` (1 s scrape, loaded machine: be patient)."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        result = prom.query(promql)
        seen = float(result[0]["value"][1]) if result else None  # type: ignore[index]
        if seen == expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"{promql} = {seen}, expected {expected}")


@pytest.fixture(scope="module")
def traffic(servers: dict[str, ModelServer]) -> Iterator[tuple[PrometheusServer, dict[str, float]]]:
    stable, canary = servers["stable01"], servers["canary01"]
    targets = [
        ScrapeTarget(rev, [f"127.0.0.1:{s.port}"], {"namespace": "prod"}) for rev, s in servers.items()
    ]
    with PrometheusServer(targets, interval="1s") as prom:
        features, labels = load_iris(return_X_y=True)
        for rev in servers:  # first scrape before any traffic: every pre-declared series starts at 0
            wait_for(prom, f'sum(mdserve_model_ready{{revision="{rev}"}})', 1.0)
        # Warm-up: the request counter series exists (and has been scraped) before the measured traffic, so
        # increase() sees every measured request.
        for server in servers.values():
            server.predict(features[0].tolist(), f"warm-{server.revision}")
        for rev in servers:
            wait_for(prom, f'sum(mdserve_requests_total{{revision="{rev}",protocol="v1"}})', 1.0)
        time.sleep(2.5)
        # Stable: every class, truthful feedback. Canary: setosa rows only, 10 of 40 with a wrong truth.
        stable_preds, stable_fb = [], []
        for i in range(0, 150, 2):
            pred = stable.predict(features[i].tolist(), f"s{i}")
            stable_preds.append(str(pred))
            stable_fb.append({"request_id": f"s{i}", "truth": int(labels[i])})
        stable.feedback(stable_fb)
        canary_preds, canary_fb = [], []
        for i in range(40):
            pred = canary.predict(features[i].tolist(), f"c{i}")
            canary_preds.append(str(pred))
            canary_fb.append({"request_id": f"c{i}", "truth": int(labels[i]) if i < 30 else 1})
        canary.feedback(canary_fb)
        wait_for(prom, 'sum(mdserve_feedback_total{revision="stable01"})', 75.0)
        wait_for(prom, 'sum(mdserve_feedback_total{revision="canary01"})', 40.0)
        wait_for(prom, 'sum(mdserve_requests_total{revision="canary01",protocol="v1"})', 41.0)
        wait_for(prom, 'sum(mdserve_predictions_total{revision="stable01"})', 76.0)

        def accuracy(preds: list[str], fb: list[dict[str, object]]) -> float:
            return sum(p == str(f["truth"]) for p, f in zip(preds, fb, strict=True)) / len(fb)

        expected = {
            "stable_accuracy": accuracy(stable_preds, stable_fb),
            "canary_accuracy": accuracy(canary_preds, canary_fb),
            # The warm-up request (row 0, setosa) is part of both windows' prediction counts.
            "psi": psi(Counter([*stable_preds, "0"]), Counter([*canary_preds, "0"])) or 0.0,
        }
        yield prom, expected


def test_measured_values_match_the_traffic(traffic: tuple[PrometheusServer, dict[str, float]]) -> None:
    prom, expected = traffic
    client = PrometheusClient(prom.url, timeout=10)
    checks = metrics(
        {"name": "success-rate", "thresholdRange": {"min": 0.99}},
        {"name": "error-rate", "thresholdRange": {"max": 0.01}},
        {"name": "latency-p99", "thresholdRange": {"max": 2.5}},
        {"name": "accuracy", "thresholdRange": {"min": 0.9}},
        {"name": "accuracy-drop", "thresholdRange": {"max": 0.05}},
        {"name": "prediction-drift", "thresholdRange": {"max": 0.1}},
        {"name": "speed", "check": "latency-gain", "quantile": 0.5, "thresholdRange": {"min": -100}},
        {"name": "mae", "thresholdRange": {"max": 1}},
        {
            "name": "ready",
            "query": 'sum(mdserve_model_ready{namespace="{{ namespace }}",'
            'revision="{{ revision }}",variant="{{ variant }}"})',
            "thresholdRange": {"min": 1},
        },
    )
    run = run_analysis(client, checks, TARGET, "5m", datetime.now(UTC))
    got = {m.name: m for m in run.measurements}
    assert got["success-rate"].outcome == Outcome.PASS and got["success-rate"].value == 1.0
    assert got["error-rate"].value == 0.0
    # increase() extrapolates to the window edges: counts are approximate (never below what happened), ratios
    # of series scraped together are exact.
    assert 40 <= (got["success-rate"].samples or 0) < 80
    assert got["latency-p99"].outcome == Outcome.PASS and 0 < (got["latency-p99"].value or 0) <= 2.5
    assert got["accuracy"].value == pytest.approx(expected["canary_accuracy"], abs=1e-9)
    assert got["accuracy"].outcome == Outcome.FAIL
    assert got["accuracy"].message.startswith(f"accuracy={expected['canary_accuracy']:.4g} below min 0.9")
    drop = expected["stable_accuracy"] - expected["canary_accuracy"]
    assert (
        got["accuracy-drop"].value == pytest.approx(drop, abs=1e-9)
        and got["accuracy-drop"].outcome == Outcome.FAIL
    )
    assert got["prediction-drift"].value == pytest.approx(expected["psi"], rel=1e-6)
    assert got["prediction-drift"].outcome == Outcome.FAIL
    assert got["speed"].outcome == Outcome.PASS
    assert got["mae"].outcome == Outcome.INCONCLUSIVE  # a classifier has no regression feedback
    assert got["ready"].value == 1.0 and got["ready"].outcome == Outcome.PASS
    assert run.outcome == Outcome.FAIL


def test_a_revision_without_traffic_is_inconclusive(
    traffic: tuple[PrometheusServer, dict[str, float]],
) -> None:
    prom, _ = traffic
    idle = Target("prod", "iris", "iris", "primary", "nobody00", "stable01")
    checks = metrics(
        {"name": "error-rate", "thresholdRange": {"max": 0.01}},
        {"name": "accuracy-drop", "thresholdRange": {"max": 0.05}},
    )
    run = run_analysis(PrometheusClient(prom.url), checks, idle, "5m", datetime.now(UTC))
    assert [m.outcome for m in run.measurements] == [Outcome.INCONCLUSIVE] * 2
    assert run.outcome == Outcome.INCONCLUSIVE


def test_bad_query_is_a_provider_error(traffic: tuple[PrometheusServer, dict[str, float]]) -> None:
    prom, _ = traffic
    result = PrometheusClient(prom.url).query("sum(rate(")
    assert result.error is not None and result.error.kind == ProviderErrorKind.BAD_QUERY


def test_silent_endpoint_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        stop = threading.Event()
        accepted: list[socket.socket] = []

        def accept() -> None:  # accepts and never answers
            listener.settimeout(0.2)
            while not stop.is_set():
                with contextlib.suppress(OSError):
                    accepted.append(listener.accept()[0])

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            port = listener.getsockname()[1]
            result = PrometheusClient(f"http://127.0.0.1:{port}", timeout=0.5).query("up")
            assert result.error is not None and result.error.kind == ProviderErrorKind.TIMEOUT
        finally:
            stop.set()
            thread.join(5)
            for conn in accepted:
                conn.close()


def test_stopped_prometheus_is_a_provider_error(servers: dict[str, ModelServer]) -> None:
    prom = PrometheusServer([ScrapeTarget("x", [f"127.0.0.1:{servers['canary01'].port}"])]).start()
    client = PrometheusClient(prom.url, timeout=2)
    assert client.query("up").ok
    prom.stop()
    run = run_analysis(
        client,
        metrics({"name": "error-rate", "thresholdRange": {"max": 0.01}}),
        TARGET,
        "1m",
        datetime.now(UTC),
    )
    assert run.outcome == Outcome.ERROR
    assert "Unreachable" in run.measurements[0].message
