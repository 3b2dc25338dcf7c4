"""Pure parts of bridge-owned pod readiness: the probe state machine, kwok stages, the admission policy,
which pods are Ready and the status patches."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.bridge_pods import current_hashes, desired_readiness, ready_patch
from devcluster.bridge_ready import Readiness
from devcluster.bridge_spec import build_spec, wants_process
from devcluster.kwok_readiness import (
    BRIDGE_STAGE,
    KWOK_STAGES,
    NAMESPACE_LABEL,
    READINESS_ANNOTATION,
    admission_policy,
    bridge_stage,
    write_stages,
)

pytestmark = pytest.mark.unit
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def test_readiness_needs_success_threshold_and_failure_threshold_in_a_row() -> None:
    r = Readiness(failure_threshold=3, success_threshold=2)
    assert not r.ready
    assert [r.observe(ok) for ok in (True, False, True)] == [False, False, False] and not r.ready
    assert r.observe(True) and r.ready  # two successes in a row
    assert [r.observe(ok) for ok in (False, False, True, False, False)] == [False] * 5 and r.ready
    assert r.observe(False) and not r.ready  # the third failure in a row
    assert not r.observe(False) and not r.ready


def test_readiness_reset_is_not_ready_at_once() -> None:
    r = Readiness(failure_threshold=3)
    assert r.observe(True) and r.ready
    assert r.reset() and not r.ready
    assert not r.reset()
    assert r.observe(True)  # success threshold 1: the first success after a restart


def _upstream(tmp_path: Path) -> Path:
    up = tmp_path / "upstream"
    up.mkdir()
    for name in KWOK_STAGES:
        if name == BRIDGE_STAGE:
            continue
        selector = {"matchExpressions": [{"key": ".status.podIP", "operator": "DoesNotExist"}]}
        doc = {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name},
               "spec": {"resourceRef": {"apiGroup": "v1", "kind": "Pod"}, "selector": selector,
                        "next": {"statusTemplate": "phase: Running\n"}}}
        (up / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    return up


def test_stages_split_pods_between_kwok_and_the_bridge(tmp_path: Path) -> None:
    written = write_stages(_upstream(tmp_path), tmp_path / "out")
    assert [p.stem for p in written] == KWOK_STAGES
    docs = {p.stem: yaml.safe_load(p.read_text()) for p in written}
    key = f'.metadata.annotations["{READINESS_ANNOTATION}"]'
    ready = docs["pod-ready"]["spec"]["selector"]["matchExpressions"]
    assert ready == [{"key": ".status.podIP", "operator": "DoesNotExist"},
                     {"key": key, "operator": "DoesNotExist"}]
    bridged = docs[BRIDGE_STAGE]["spec"]["selector"]["matchExpressions"]
    assert {"key": key, "operator": "In", "values": ["bridge"]} in bridged
    assert {"key": ".status.podIP", "operator": "DoesNotExist"} in bridged
    assert docs["pod-delete"] == yaml.safe_load((tmp_path / "upstream" / "pod-delete.yaml").read_text())


def test_bridge_stage_reports_running_containers_that_are_not_ready() -> None:
    template = bridge_stage()["spec"]["next"]["statusTemplate"]
    assert "phase: Running" in template and "podIP: {{ PodIPWith" in template
    assert template.count('status: "False"') == 2 and "ready: false" in template
    assert "ready: true" not in template and 'status: "True"\n  type: Ready' not in template


def test_policy_annotates_managed_pods_in_labelled_namespaces() -> None:
    policy, binding = admission_policy()
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1beta1"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["pods"] and rule["operations"] == ["CREATE"]
    (mutation,) = policy["spec"]["mutations"]
    assert mutation["applyConfiguration"]["expression"] == (
        f'Object{{metadata: Object.metadata{{annotations: {{"{READINESS_ANNOTATION}": "bridge"}}}}}}')
    match = binding["spec"]["matchResources"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert match["namespaceSelector"] == {"matchLabels": {NAMESPACE_LABEL: "true"}}
    assert match["objectSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "modeldeploy"}}


def _dep(name: str, revision: str, generation: int = 2, observed: int = 2) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "generation": generation,
                         "annotations": {"deployment.kubernetes.io/revision": revision}},
            "status": {"observedGeneration": observed}}


def _rs(dep: str, hash_: str, revision: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": f"{dep}-{hash_}", "labels": {"pod-template-hash": hash_},
                         "annotations": {"deployment.kubernetes.io/revision": revision},
                         "ownerReferences": [{"kind": "Deployment", "name": dep, "controller": True}]}}


def _pod(name: str, rs: str, hash_: str, ready: bool = False, annotated: bool = True,
         phase: str = "Running") -> dict[str, Any]:
    annotations = {READINESS_ANNOTATION: "bridge"} if annotated else {}
    value = "True" if ready else "False"
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": "7", "annotations": annotations,
                         "labels": {"pod-template-hash": hash_},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": rs, "controller": True}]},
            "status": {"phase": phase, "podIP": "10.244.0.1",
                       "conditions": [{"type": "Initialized", "status": "True"},
                                      {"type": "Ready", "status": value},
                                      {"type": "ContainersReady", "status": value}],
                       "containerStatuses": [{"name": "main", "image": "x", "ready": ready}]}}


def test_only_current_template_pods_of_a_ready_process_are_ready() -> None:
    deps = [_dep("a", "2"), _dep("b", "1"), _dep("c", "1", generation=3, observed=2)]
    rss = [_rs("a", "old", "1"), _rs("a", "new", "2"), _rs("b", "h", "1"), _rs("c", "h", "1")]
    hashes = current_hashes(deps, rss)
    assert hashes == {("ns", "a"): "new", ("ns", "b"): "h"}  # c: the controller is behind its template
    pods = [_pod("a-old-1", "a-old", "old", ready=True), _pod("a-new-1", "a-new", "new"),
            _pod("b-1", "b-h", "h"), _pod("c-1", "c-h", "h"), _pod("kwok-1", "a-new", "new", annotated=False),
            _pod("pending", "a-new", "new", phase="Pending"), _pod("bare", "nope", "x")]
    want = desired_readiness(pods, rss, hashes, {("ns", "a"): True, ("ns", "b"): False, ("ns", "c"): True})
    assert want == {("ns", "a-old-1"): False, ("ns", "a-new-1"): True, ("ns", "b-1"): False,
                    ("ns", "c-1"): False, ("ns", "bare"): False}


def test_ready_patch_only_on_change_and_with_whole_container_statuses() -> None:
    pod = _pod("p", "rs", "h")
    assert ready_patch(pod, False, NOW) is None
    patch = ready_patch(pod, True, NOW)
    assert patch == {"status": {
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:04:05Z"},
                       {"type": "ContainersReady", "status": "True",
                        "lastTransitionTime": "2026-01-02T03:04:05Z"}],
        "containerStatuses": [{"name": "main", "image": "x", "ready": True}]}}
    assert pod["status"]["containerStatuses"][0]["ready"] is False  # the informer's copy is left alone
    back = ready_patch(_pod("p", "rs", "h", ready=True), False, NOW)
    assert back is not None and all(c["reason"] == "ContainersNotReady" for c in back["status"]["conditions"])


def test_a_process_starts_before_any_replica_is_ready() -> None:
    dep: dict[str, Any] = {"metadata": {"namespace": "ns", "name": "d"}, "spec": {"replicas": 1},
                           "status": {}}
    assert wants_process(dep)
    assert not wants_process({**dep, "spec": {"replicas": 0}})
    assert not wants_process({**dep, "metadata": {**dep["metadata"], "deletionTimestamp": "now"}})


def test_spec_takes_the_probe_thresholds() -> None:
    probe = {"httpGet": {"path": "/ready", "port": 8080}, "failureThreshold": 5, "timeoutSeconds": 2}
    dep = {"metadata": {"namespace": "ns", "name": "d"}, "spec": {"template": {"spec": {"containers": [
        {"name": "c", "command": ["python", "-c", "pass"], "readinessProbe": probe}]}}}}
    spec = build_spec(dep)
    assert (spec.readiness_path, spec.failure_threshold, spec.success_threshold, spec.probe_timeout) == (
        "/ready", 5, 1, 2.0)
    assert spec.with_env({"X": "1"}).failure_threshold == 5
