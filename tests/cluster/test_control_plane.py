"""The local control plane is real: scheduling, kwok readiness, garbage collection and RBAC."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import Kubectl

pytestmark = pytest.mark.cluster

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: smoke
spec:
  replicas: 2
  selector:
    matchLabels: {app: smoke}
  template:
    metadata:
      labels: {app: smoke}
    spec:
      containers:
      - name: app
        image: registry.example/smoke:1
"""


def wait_for(check: object, timeout: float = 90, what: str = "") -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_nodes_are_ready_kwok_nodes(kubectl: Kubectl) -> None:
    nodes = json.loads(kubectl("get", "nodes", "-o", "json", check=True).stdout)["items"]
    assert len(nodes) >= 1
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True"
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert int(node["status"]["capacity"]["pods"]) >= 100


def test_version_is_stamped(kubectl: Kubectl) -> None:
    version = json.loads(kubectl("version", "-o", "json", check=True).stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    assert version["serverVersion"]["gitVersion"] != "v0.0.0"


def test_deployment_pods_ready_then_garbage_collected(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=DEPLOYMENT, check=True)
    kubectl("rollout", "status", "deployment/smoke", "-n", namespace, "--timeout=120s", check=True)
    listed = kubectl("get", "pods", "-n", namespace, "-l", "app=smoke", "-o", "json", check=True)
    pods = json.loads(listed.stdout)["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"].startswith("kwok-node-")
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])

    kubectl("delete", "deployment", "smoke", "-n", namespace, check=True)

    def gone() -> bool:
        rs = kubectl("get", "replicasets,pods", "-n", namespace, "-l", "app=smoke", "-o", "name").stdout
        return rs.strip() == ""

    wait_for(gone, 120, "ReplicaSet and Pods to be garbage-collected")


def test_rbac_denies_serviceaccount_without_role(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "serviceaccount", "nobody", "-n", namespace, check=True)
    who = f"system:serviceaccount:{namespace}:nobody"
    denied = kubectl("auth", "can-i", "list", "pods", "-n", namespace, "--as", who)
    assert denied.stdout.strip() == "no"
    forbidden = kubectl("get", "pods", "-n", namespace, "--as", who)
    assert forbidden.returncode != 0 and "forbidden" in forbidden.stderr.lower()

    kubectl("create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", namespace, check=True)
    kubectl("create", "rolebinding", "nobody-reads", "--role=pod-reader",
            f"--serviceaccount={namespace}:nobody", "-n", namespace, check=True)
    wait_for(lambda: kubectl("auth", "can-i", "list", "pods", "-n", namespace, "--as", who).stdout.strip()
             == "yes", 30, "RBAC to allow after binding")
