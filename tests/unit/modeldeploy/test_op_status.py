"""Status computation: phases, KEP-1623 conditions, stable transition times."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.reconciler import status_changed
from modeldeploy.revisions import VariantRevisions
from modeldeploy.status import Problem, compute, condition_of
from tests.unit.modeldeploy.md_helpers import BASIC, md_with

pytestmark = pytest.mark.unit
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"
ONE = {"primary": VariantRevisions("primary", "r1", "r1")}


def dep(replicas: int, ready: int, stuck: bool = False) -> dict[str, Any]:
    conditions = (
        [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}] if stuck else []
    )
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        },
    }


def test_pending_then_healthy_with_conditions() -> None:
    md = md_with(BASIC, generation=3)
    pending = compute(md, ONE, {"m-primary-r1": dep(2, 0)}, {"primary": 100}, None, False, T0)
    assert pending["phase"] == "Pending" and pending["ready"] == "0/2"
    assert condition_of(pending, "Ready")["status"] == "False"
    assert condition_of(pending, "Progressing")["status"] == "True"
    md["status"] = pending
    healthy = compute(md, ONE, {"m-primary-r1": dep(2, 2)}, {"primary": 100}, None, False, T1)
    assert healthy["phase"] == "Healthy" and healthy["ready"] == "2/2" and healthy["observedGeneration"] == 3
    ready = condition_of(healthy, "Ready")
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"], ready["observedGeneration"]) == (
        "True",
        "Available",
        T1,
        3,
    )
    # Degraded stayed False: its transition time is the first one
    assert condition_of(healthy, "Degraded")["lastTransitionTime"] == T0
    assert healthy["stableRevision"] == "r1" and "canaryRevision" not in healthy
    assert healthy["url"] == "http://m.ns1.svc.cluster.local"
    assert healthy["variants"][0] == {
        "name": "primary",
        "revision": "r1",
        "desiredRevision": "r1",
        "deployment": "m-primary-r1",
        "service": "m-primary-r1",
        "weight": 100,
        "replicas": 2,
        "readyReplicas": 2,
        "updatedReplicas": 2,
    }


def test_same_world_same_status_means_no_write() -> None:
    md = md_with(BASIC)
    first = compute(md, ONE, {"m-primary-r1": dep(1, 1)}, {"primary": 100}, None, False, T0)
    md["status"] = first
    second = compute(md, ONE, {"m-primary-r1": dep(1, 1)}, {"primary": 100}, None, False, T1)
    assert second == first and not status_changed(second, first)
    assert status_changed({**second, "phase": "Degraded"}, first)
    assert status_changed({k: v for k, v in second.items() if k != "stableRevision"}, first)


def test_rollout_in_progress_and_paused() -> None:
    md = md_with(BASIC)
    rolling = {"primary": VariantRevisions("primary", "r1", "r2")}
    deps = {"m-primary-r1": dep(2, 2), "m-primary-r2": dep(2, 1)}
    s = compute(md, rolling, deps, {"primary": 100}, None, False, T0)
    assert s["phase"] == "Progressing" and s["canaryRevision"] == "r2" and s["stableRevision"] == "r1"
    assert condition_of(s, "Ready")["status"] == "True", "the stable revision still serves"
    assert s["variants"][0]["replicas"] == 4 and s["variants"][0]["readyReplicas"] == 3
    paused = compute(md, rolling, deps, {"primary": 100}, None, True, T0)
    assert paused["phase"] == "Paused" and condition_of(paused, "Progressing")["reason"] == "Paused"


def test_progress_deadline_is_degraded_model_unavailable() -> None:
    md = md_with(BASIC)
    s = compute(md, ONE, {"m-primary-r1": dep(1, 0, stuck=True)}, {"primary": 100}, None, False, T0)
    assert s["phase"] == "Degraded"
    assert condition_of(s, "Ready")["reason"] == "ModelUnavailable"
    assert condition_of(s, "Degraded")["status"] == "True"


def test_problem_keeps_reporting_the_running_revisions() -> None:
    md = md_with(BASIC)
    md["status"] = compute(md, ONE, {"m-primary-r1": dep(1, 1)}, {"primary": 100}, None, False, T0)
    bad = compute(md, None, {"m-primary-r1": dep(1, 1)}, {}, Problem("InvalidSpec", "spec.x: bad"), False, T1)
    assert bad["phase"] == "Degraded" and "spec.x: bad" in bad["message"]
    assert {**condition_of(bad, "Ready"), "lastTransitionTime": ""} == {
        "type": "Ready",
        "status": "False",
        "reason": "InvalidSpec",
        "message": "spec.x: bad",
        "lastTransitionTime": "",
        "observedGeneration": 1,
    }
    assert bad["stableRevision"] == "r1" and bad["readyReplicas"] == 1
