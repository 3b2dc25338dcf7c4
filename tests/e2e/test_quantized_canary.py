"""A quantized canary of the stable float model, gated on what quantization trades: accuracy (feedback, vs
stable) and latency (vs stable).

The model is the iris LogisticRegression (sklearn). mdserve quantizes sklearn models at start-up by
converting them to ONNX and applying onnxruntime's dynamic int8 quantization (`spec.model.quantization:
dynamic`; float16 exists only for TensorFlow/TFLite models): a real second runtime serving the same
decisions, so the accuracy drop is about zero and the latency differs by the runtime's overhead only.

Deterministic on a busy 2-core box because the thresholds are far from what noise can reach:
- rolled back: the latency gate asks for a 90% lower median latency than stable (gain >= 0.9), which no
  runtime swap on a millisecond request gets; the accuracy gate (drop <= 0.2) holds, so latency-gain is the
  one failing metric and the rollback names it, its value and its threshold;
- promoted: the latency gate only forbids being more than twice as slow (gain >= -1.0: a median in the
  same fine latency bucket, or below, always passes) and the accuracy gate is the same; the rollout's
  default failure limits absorb a rare noisy window.
Nothing here asserts timings.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from devcluster.e2e_models import ModelArtifact
from devcluster.e2e_rollout import canary_percent, md_manifest
from devcluster.e2e_stack import Stack
from tests.e2e.conftest import diagnostics
from tests.e2e.scenario import (
    ROLLOUT_TIMEOUT,
    backend,
    deploy_first,
    events_named,
    finish,
    start_rollout,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def gates(min_gain: float, **limits: int) -> dict[str, Any]:
    """Canary at 20% then 50%, gated on accuracy drop (feedback) and median latency gain vs stable."""
    return {
        "strategy": "Canary",
        "interval": "5s",
        "steps": [{"setWeight": w, "pause": {"duration": "10s"}} for w in (20, 50)],
        "metrics": [
            {"name": "accuracy-drop", "thresholdRange": {"max": 0.2}, "minSamples": 10},
            {"name": "latency-gain", "quantile": 0.5, "thresholdRange": {"min": min_gain}, "minSamples": 10},
        ],
        **limits,
    }


def quantized(model: ModelArtifact, name: str, stack: Stack, rollout: dict[str, Any]) -> dict[str, Any]:
    manifest = md_manifest(name, stack.ns, model, rollout)
    manifest["spec"]["model"]["quantization"] = "dynamic"
    return manifest


@pytest.mark.md_name("iris-q-slow")
def test_quantized_canary_too_slow_is_rolled_back(stack: Stack, models: dict[str, ModelArtifact],
                                                  md_name: str) -> None:
    # One failed analysis is enough: the gate cannot hold, waiting for more proves nothing.
    rollout = gates(0.9, failureLimit=0, consecutiveFailureLimit=0)
    v1 = deploy_first(stack, md_name, models["v1"], rollout)
    r = start_rollout(stack, md_name, v1, models["v1"], rollout,
                      manifest=quantized(models["v1"], md_name, stack, rollout))
    try:
        canary = r.wait_canary()
        state = r.wait_phase("RolledBack")
        zero_at = r.wait_router_weight_zero(canary)
        failed_requests = r.load.failures(r.applied_at)
    finally:
        finish(r)
    diag = diagnostics(stack, md_name)
    status = stack.status(md_name)
    assert [a for a in r.load.snapshot(r.applied_at) if a.variant == backend(canary)], \
        f"the quantized canary never got traffic\n{diag}"
    assert status["phase"] == "Degraded" and status["stableRevision"] == v1, diag
    assert state.get("heldRevision") == canary and state.get("canaryWeight", 0) == 0, diag
    assert round(canary_percent(stack.router_weights(md_name) or {}, backend(canary))) == 0
    measured = {m["name"]: m for m in state.get("lastAnalysis", [])}
    gain = measured["latency-gain"]
    assert gain["outcome"] == "Fail" and gain["value"] < 0.9 and gain["min"] == 0.9, gain
    assert measured["accuracy-drop"]["outcome"] != "Fail", measured
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    message = status["message"]
    for text in (degraded["message"], message, state["history"][0]["reason"]):
        assert "latency-gain=" in text and "below min 0.9" in text, (text, diag)
    assert f"latency-gain={gain['value']:.4g}" in message, (message, gain)
    assert any("latency-gain" in e["message"] for e in events_named(stack, md_name, "RolledBack")), diag
    assert not failed_requests, f"requests failed: {failed_requests[:5]}"
    assert zero_at >= r.applied_at


@pytest.mark.md_name("iris-q-ok")
def test_quantized_canary_within_gates_is_promoted(stack: Stack, models: dict[str, ModelArtifact],
                                                   md_name: str) -> None:
    rollout = gates(-1.0)
    v1 = deploy_first(stack, md_name, models["v1"], rollout)
    r = start_rollout(stack, md_name, v1, models["v1"], rollout,
                      manifest=quantized(models["v1"], md_name, stack, rollout))
    try:
        canary = r.wait_canary()
        state = r.wait_phase("Stable", ROLLOUT_TIMEOUT)
        r.wait_router_weight_zero(v1)
        time.sleep(1.0)  # answers to requests sent before the switch arrive
        failed_requests = r.load.failures(r.applied_at)
    finally:
        finish(r)
    diag = diagnostics(stack, md_name)
    status = stack.status(md_name)
    assert status["phase"] == "Healthy" and status["stableRevision"] == canary, diag
    assert state["history"][0]["revision"] == canary and state["history"][0]["outcome"] == "Promoted", diag
    passed = [e for e in r.watcher.entries if e["kind"] == "Analysis" and e.get("outcome") == "Pass"]
    assert passed, f"promoted without a passing analysis\n{diag}"
    assert not failed_requests, f"{len(failed_requests)} requests failed: {failed_requests[:5]}\n{diag}"
    assert r.load.feedback.scored > 0, r.load.feedback
    env = stack.kubectl("get", "deployment", "-n", stack.ns, "-l",
                        f"serving.modeldeploy.dev/revision={canary}", "-o",
                        "jsonpath={.items[*].spec.template.spec.containers[0].env}").stdout
    assert '"MDSERVE_QUANTIZATION","value":"dynamic"' in env.replace(" ", ""), env
