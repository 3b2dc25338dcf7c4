"""Every example in examples/ is accepted by the real apiserver, stored, and read back as written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.crds import wait_crd_established
from tests.conftest import REPO_ROOT, ClusterHandle, Kubectl

pytestmark = pytest.mark.cluster

EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))


def subset(expected: Any, actual: Any) -> bool:
    """True when everything the example says is in the stored object (the apiserver adds defaults)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and subset(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


@pytest.fixture(scope="module")
def crds_installed(kubectl: Kubectl, cluster: ClusterHandle) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds"), check=True)
    wait_crd_established("modeldeployments.serving.modeldeploy.dev", cluster.env)


def test_examples_exist_for_every_documented_use() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"sklearn-iris", "keras-mlp", "canary-rollout", "ab-test", "ab-quantized", "gateway-api"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_applied_and_stored_as_written(
    path: Path, kubectl: Kubectl, namespace: str, crds_installed: None
) -> None:
    applied = kubectl("apply", "-n", namespace, "-f", str(path))
    assert applied.returncode == 0, f"{path.name}: {applied.stderr}"
    for doc in yaml.safe_load_all(path.read_text()):
        kind, name = doc["kind"], doc["metadata"]["name"]
        stored = json.loads(kubectl("get", kind, name, "-n", namespace, "-o", "json", check=True).stdout)
        assert subset(doc["spec"], stored["spec"]), f"{path.name}: the stored spec differs from the example"
