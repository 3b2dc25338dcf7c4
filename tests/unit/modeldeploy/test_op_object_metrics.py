"""The per-object series the chart's alerts read: ready, inconclusive analysis, rollbacks."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from modeldeploy import metrics

pytestmark = pytest.mark.unit


def value(name: str, ns: str, md: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"namespace": ns, "modeldeployment": md})


def test_ready_inconclusive_and_rollbacks_follow_status_and_events() -> None:
    ns, md = "metrics-ns", "fraud"
    degraded = {
        "conditions": [{"type": "Ready", "status": "False"}, {"type": "Degraded", "status": "True"}],
        "rollout": {"lastOutcome": "Fail"},
    }
    metrics.record_object(ns, md, degraded, ["RolledBack", "Scaled"])
    assert value("modeldeploy_modeldeployment_ready", ns, md) == 0
    assert value("modeldeploy_analysis_inconclusive", ns, md) == 0
    assert value("modeldeploy_rollbacks_total", ns, md) == 1

    waiting = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "rollout": {"lastOutcome": "Inconclusive"},
    }
    metrics.record_object(ns, md, waiting, [])
    assert value("modeldeploy_modeldeployment_ready", ns, md) == 1
    assert value("modeldeploy_analysis_inconclusive", ns, md) == 1
    assert value("modeldeploy_rollbacks_total", ns, md) == 1

    metrics.forget_object(ns, md)
    assert value("modeldeploy_modeldeployment_ready", ns, md) is None
    assert value("modeldeploy_analysis_inconclusive", ns, md) is None
    metrics.forget_object(ns, md)  # a second delete event is harmless
