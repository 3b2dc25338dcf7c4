"""Shared fixtures: the real local control plane, brought up once per session, and a namespace per test."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class ClusterHandle:
    """What a test needs to talk to the cluster."""

    kubeconfig: Path
    """Admin kubeconfig."""
    env: dict[str, str]
    """Environment for subprocesses: os.environ plus KUBECONFIG and the built binaries on PATH."""
    bin_dir: Path | None
    """Directory of the built binaries (kubectl, helm, kwok ...); None on an existing cluster."""
    local: bool
    """True for the local control plane this repo builds; False for MODELDEPLOY_CLUSTER=existing."""


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterHandle]:
    if os.environ.get("MODELDEPLOY_CLUSTER") == "existing":
        kubeconfig = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
        yield ClusterHandle(kubeconfig, dict(os.environ), None, local=False)
        return
    from devcluster.cluster import LocalCluster

    local = LocalCluster()
    started_here = not local.healthy()
    if started_here:
        local.up()
    env = {**os.environ, **local.env()}
    try:
        yield ClusterHandle(local.paths.kubeconfig, env, local.paths.bin, local=True)
    finally:
        if started_here and not os.environ.get("MODELDEPLOY_KEEP_CLUSTER"):
            local.down()


@pytest.fixture(scope="session")
def kubectl(cluster: ClusterHandle) -> Kubectl:
    """Run kubectl as a user would; `check=True` raises with stderr in the message."""

    def run(*args: str, check: bool = False, stdin: str | None = None, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True,
                                env=cluster.env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    return run


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace per test, deleted (without waiting) afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name, check=True)
    kubectl("wait", "--for=jsonpath={.metadata.name}=default", "serviceaccount/default", "-n", name,
            "--timeout=60s")
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="session")
def k8s_api(cluster: ClusterHandle) -> object:
    """A `kubernetes.client.ApiClient` for the test cluster."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
