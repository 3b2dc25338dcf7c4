"""Shared builders for the operator's unit tests (plain data, no cluster)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
IMAGE = "registry.test/mdserve:1"


def example(name: str) -> dict[str, Any]:
    """An example ModelDeployment as the apiserver would hand it over: namespaced, with a uid and defaults."""
    md: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    md["metadata"].update(namespace="ns1", uid="00000000-0000-0000-0000-000000000001", generation=1)
    return md


def md_with(spec: dict[str, Any], name: str = "m", generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "serving.modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "ns1", "uid": "uid-1", "generation": generation},
        "spec": copy.deepcopy(spec),
    }


BASIC = {"model": {"name": "iris", "uri": "https://store.test/iris.joblib", "format": "sklearn"}}
