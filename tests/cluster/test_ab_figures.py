"""An A/B ModelDeployment measured side by side: the operator process, two REAL model servers (the pod bridge
runs `mdserve serve` from the Deployments' pod templates) and a real Prometheus scraping them. Predictions and
feedback are sent to each variant; status.abTest must show both variants' traffic and the accuracies the
feedback implies (primary all correct, challenger half wrong)."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.bridge import BridgeOptions, PodBridge
from devcluster.prometheus import PrometheusServer
from modeldeploy.cli.timeline import format_timeline
from modeldeploy.render.naming import COMPONENT_SERVER, workload_name
from tests.cluster.conftest import OperatorProcess, get_json, wait_for, wait_rollout
from tests.conftest import Kubectl

pytestmark = pytest.mark.cluster

NAME = "ab"
REQUESTS = 20
"""Predictions (each later scored) per variant."""


def train(path: Path, seed: int) -> tuple[str, str]:
    """A fitted iris classifier saved with joblib; returns (uri, sha256)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=500, C=1.0 + seed).fit(x, y), path)
    return f"file://{path}", hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(primary: tuple[str, str], challenger: tuple[str, str], prometheus: str) -> str:
    return f"""
apiVersion: serving.modeldeploy.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: {NAME}}}
spec:
  model: {{name: iris, format: sklearn, uri: "{primary[0]}", sha256: "{primary[1]}", version: "1"}}
  variants:
  - name: challenger
    weight: 50
    model: {{uri: "{challenger[0]}", sha256: "{challenger[1]}", version: "2"}}
  rollout:
    interval: 3s
    prometheus: {{address: "{prometheus}", timeoutSeconds: 5}}
"""


def post(url: str, body: Any, request_id: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if request_id:
        headers["x-request-id"] = request_id
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def local_url(bridge: PodBridge, namespace: str, service: str) -> str:
    url: str = bridge.wait_for(lambda: bridge.local_url(service, namespace), 60, f"Service {service} bridged")
    return url


@pytest.fixture
def bridge(namespace: str, tmp_path: Path) -> Iterator[PodBridge]:
    """Model-server processes of the test namespace only (the router is not needed: each variant's own
    Service is called)."""
    options = BridgeOptions(tmp_path / "bridge", [namespace],
                            selector=f"app.kubernetes.io/managed-by=modeldeploy,"
                                     f"app.kubernetes.io/component={COMPONENT_SERVER}")
    with PodBridge(options) as b:
        yield b


@pytest.fixture
def scraping(bridge: PodBridge) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping every bridged model server each second."""
    with PrometheusServer([bridge.scrape_target()], interval="1s") as server:
        yield server


def test_ab_figures_side_by_side(
    kubectl: Kubectl, namespace: str, running_operator: OperatorProcess, bridge: PodBridge,
    scraping: PrometheusServer, tmp_path: Path,
) -> None:
    primary = train(tmp_path / "models" / "a" / "model.joblib", seed=0)
    challenger = train(tmp_path / "models" / "b" / "model.joblib", seed=1)
    md = manifest(primary, challenger, scraping.url)
    kubectl("apply", "-n", namespace, "-f", "-", stdin=md, check=True)
    status = wait_rollout(kubectl, namespace, NAME, "both variants with a revision",
                          lambda s: len([v for v in s.get("variants", []) if v.get("revision")]) == 2,
                          running_operator)
    revisions = {v["name"]: v["revision"] for v in status["variants"]}
    urls: dict[str, str] = {}
    for variant, rev in revisions.items():
        workload = workload_name(NAME, variant, rev)
        bridge.wait_ready(namespace, workload, timeout=180)
        urls[variant] = local_url(bridge, namespace, workload)

    def scraped() -> bool:
        ready = scraping.query(f'mdserve_model_ready{{namespace="{namespace}"}} == 1')
        return len(ready) == 2

    wait_for("Prometheus scraping both model servers", scraped, timeout=90)

    rows = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.0, 3.4, 1.5, 0.2]]
    sent: dict[str, list[tuple[str, Any]]] = {v: [] for v in urls}
    for i in range(REQUESTS):
        for variant, url in urls.items():
            rid = f"{variant}-{i}"
            answer = post(f"{url}/v1/models/iris:predict", {"instances": [rows[i % len(rows)]]}, rid)
            sent[variant].append((rid, answer["predictions"][0]))
        if i % 5 == 4:
            time.sleep(1.5)  # spread over several scrapes: rates need more than one sample
    for variant, url in urls.items():
        for i, (rid, predicted) in enumerate(sent[variant]):
            wrong = variant == "challenger" and i % 2 == 1
            truth = ((int(predicted) + 1) % 3 if wrong else int(predicted))
            post(f"{url}/v1/models/iris:feedback", {"request_id": rid, "truth": truth})

    def measured(s: dict[str, Any]) -> bool:
        figures = {v["name"]: v for v in (s.get("abTest") or {}).get("variants", [])}
        return len(figures) == 2 and all(
            (f.get("feedback") or 0) >= REQUESTS * 0.9 and (f.get("requestsPerSecond") or 0) > 0
            for f in figures.values())

    status = wait_rollout(kubectl, namespace, NAME, "status.abTest with both variants' feedback", measured,
                          running_operator, timeout=120)
    ab = status["abTest"]
    figures = {v["name"]: v for v in ab["variants"]}
    assert set(figures) == {"primary", "challenger"}
    for variant, f in figures.items():
        assert f["revision"] == revisions[variant]
        assert f["weight"] == 50
        assert f["requestsPerSecond"] > 0
        assert f["errorRate"] == 0
        assert 0 < f["latencyP50"] <= f["latencyP99"] < 5
        assert REQUESTS * 0.9 <= f["feedback"] <= REQUESTS * 1.3
    assert figures["primary"]["accuracy"] == pytest.approx(1.0, abs=0.02)
    assert figures["challenger"]["accuracy"] == pytest.approx(0.5, abs=0.08)
    assert "message" not in ab and ab["measuredAt"] == ab["observedAt"]

    # No automatic promotion: the weights stay as configured, the primary keeps its revision.
    after = get_json(kubectl, "md", NAME, "-n", namespace)
    assert {v["name"]: v["weight"] for v in after["status"]["variants"]} == {"primary": 50, "challenger": 50}
    assert after["status"]["stableRevision"] == revisions["primary"]
    text = format_timeline(after)
    assert "A/B test (measured" in text
    table = text.split("A/B test")[1].splitlines()
    assert table[1].split()[:3] == ["VARIANT", "REVISION", "WEIGHT"]
    assert {line.split()[0] for line in table[2:4]} == {"primary", "challenger"}
