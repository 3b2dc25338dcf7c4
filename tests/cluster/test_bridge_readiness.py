"""The pod bridge owns the readiness of the pods it runs processes for, as a kubelet running the probe does;
pods outside bridged namespaces keep kwok's behaviour (Ready at once)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.bridge import BridgeOptions, PodBridge
from devcluster.kwok_readiness import NAMESPACE_LABEL, READINESS_ANNOTATION
from tests.cluster.test_bridge import ECHO, apply, deployment, get_json, wait_until
from tests.conftest import ClusterHandle, Kubectl

pytestmark = pytest.mark.cluster


@pytest.fixture
def bridge(cluster: ClusterHandle, namespace: str, tmp_path: Path) -> Iterator[PodBridge]:
    if not cluster.local:
        pytest.skip("needs the local cluster's kwok stages and admission policy")
    with PodBridge(BridgeOptions(tmp_path / "bridge", [namespace], kubeconfig=cluster.kubeconfig,
                                 backoff=(60.0, 60.0))) as b:
        yield b


def pods(kubectl: Kubectl, namespace: str, app: str) -> list[dict[str, Any]]:
    out = kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json", check=True).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
    containers = pod["status"].get("containerStatuses") or []
    assert conds.get("Ready") == conds.get("ContainersReady"), conds
    assert all(c["ready"] == (conds.get("Ready") == "True") for c in containers), containers
    return conds.get("Ready") == "True"


def only_pod(kubectl: Kubectl, namespace: str, app: str) -> dict[str, Any] | None:
    found = pods(kubectl, namespace, app)
    return found[0] if len(found) == 1 and found[0]["status"].get("phase") == "Running" else None


def test_pod_is_ready_only_while_its_process_answers_the_probe(bridge: PodBridge, kubectl: Kubectl,
                                                                namespace: str, tmp_path: Path) -> None:
    labels = kubectl("get", "namespace", namespace, "-o", "jsonpath={.metadata.labels}", check=True).stdout
    assert json.loads(labels).get(NAMESPACE_LABEL) == "true"
    gate = tmp_path / "loaded"
    dep = deployment("slow", ["python", str(ECHO)], {"ECHO_READY_FILE": str(gate)})
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["failureThreshold"] = 2
    apply(kubectl, namespace, dep)

    # Running and probed, but its model is "still loading" (/ready answers 503): not Ready.
    running = bridge.wait_running(namespace, "slow", timeout=120)
    url = running.url
    assert url is not None
    wait_until(lambda: _probes(url) >= 5, 60, "five readiness probes answered 503")
    pod = wait_until(lambda: only_pod(kubectl, namespace, "slow"), 60, "the pod Running")
    assert pod["metadata"]["annotations"][READINESS_ANNOTATION] == "bridge"
    assert pod["status"]["podIP"] and not ready(pod)
    assert bridge.process(namespace, "slow") == running and not running.ready

    # It answers: Ready, and the Deployment counts it.
    gate.touch()
    wait_until(lambda: (p := only_pod(kubectl, namespace, "slow")) and ready(p), 60, "the pod Ready")
    assert bridge.wait_ready(namespace, "slow", timeout=10).pid == running.pid
    wait_until(lambda: _ready_replicas(kubectl, namespace, "slow") == 1, 60, "readyReplicas 1")

    # It stops answering (failureThreshold 2): NotReady while the process still runs.
    gate.unlink()
    before = _probes(url)
    wait_until(lambda: (p := only_pod(kubectl, namespace, "slow")) and not ready(p), 60, "the pod NotReady")
    assert _probes(url) >= before + 2
    assert (s := bridge.process(namespace, "slow")) is not None and s.pid == running.pid and not s.ready

    # Ready again, then the process is killed: NotReady (the restart is 60 s away).
    gate.touch()
    wait_until(lambda: (p := only_pod(kubectl, namespace, "slow")) and ready(p), 60, "the pod Ready again")
    assert running.pid is not None
    os.kill(running.pid, signal.SIGKILL)
    wait_until(lambda: (p := only_pod(kubectl, namespace, "slow")) and not ready(p), 60,
               "the pod NotReady after the kill")
    assert (s := bridge.process(namespace, "slow")) is not None and s.state == "backoff" and not s.ready
    wait_until(lambda: _ready_replicas(kubectl, namespace, "slow") == 0, 60, "readyReplicas 0")


def test_old_template_pods_are_not_made_ready_by_the_new_process(bridge: PodBridge, kubectl: Kubectl,
                                                                  namespace: str, tmp_path: Path) -> None:
    gate = tmp_path / "loaded"
    gate.touch()
    apply(kubectl, namespace, deployment("tmpl", ["python", str(ECHO)], {"ECHO_READY_FILE": str(gate)}))
    first = bridge.wait_ready(namespace, "tmpl", timeout=120)
    old = wait_until(lambda: (p := only_pod(kubectl, namespace, "tmpl")) and ready(p) and p, 60, "Ready pod")
    # A template change: the new process starts "loading", so the rollout cannot finish; the old pod lost
    # its process and is NotReady, the new one is NotReady until the new process answers.
    gate.unlink()
    kubectl("set", "env", "deployment/tmpl", "-n", namespace, "GREETING=v2", check=True)
    second = bridge.wait_running(namespace, "tmpl", timeout=60, not_pid=first.pid)
    assert second.url is not None
    wait_until(lambda: _probes(second.url or "") >= 3, 60, "the new process probed")

    def split() -> tuple[dict[str, Any], dict[str, Any]] | None:
        found = {p["metadata"]["name"]: p for p in pods(kubectl, namespace, "tmpl")}
        new = [p for n, p in found.items() if n != old["metadata"]["name"] and p["status"].get("podIP")]
        if old["metadata"]["name"] not in found or not new:
            return None
        return found[old["metadata"]["name"]], new[0]

    old_now, new = wait_until(split, 60, "an old and a new pod")
    wait_until(lambda: (s := split()) and not ready(s[0]), 60, "the old pod NotReady")
    assert not ready(new)
    gate.touch()
    # The new pod becomes Ready; the Deployment then removes the old one.
    wait_until(lambda: (p := only_pod(kubectl, namespace, "tmpl")) and p["metadata"]["name"] ==
               new["metadata"]["name"] and ready(p), 90, "only the new pod, Ready")
    hashes = [p["metadata"]["labels"]["pod-template-hash"] for p in (old_now, new)]
    assert hashes[0] != hashes[1]


def test_pods_outside_bridged_namespaces_are_ready_at_once(cluster: ClusterHandle, kubectl: Kubectl,
                                                           namespace: str) -> None:
    # No bridge, no process: kwok alone, as tests/cluster/* other than the bridge's expect.
    apply(kubectl, namespace, deployment("plain", ["no-such-binary-anywhere"], {}))
    pod = wait_until(lambda: (p := only_pod(kubectl, namespace, "plain")) and ready(p) and p, 60, "Ready pod")
    assert READINESS_ANNOTATION not in (pod["metadata"].get("annotations") or {})


def _probes(url: str) -> int:
    try:
        count: int = get_json(f"{url}/")["probes"]
    except OSError:
        return 0
    return count


def _ready_replicas(kubectl: Kubectl, namespace: str, name: str) -> int:
    out = kubectl("get", "deployment", name, "-n", namespace, "-o", "jsonpath={.status.readyReplicas}").stdout
    return int(out or 0)
