"""Shared scenario of the traffic unit tests: a canary in flight on the primary, an int8 arm at 10 %, a
header-pinned candidate that also gets a 25 % shadow, sticky users and a cookie rule."""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from modeldeploy.api.spec import parse_spec
from modeldeploy.render.variants import Variant, resolve
from modeldeploy.traffic.plan import RevisionShares
from modeldeploy.traffic.spec import TrafficSpec

GOLDEN = Path(__file__).resolve().parent / "golden"
IMAGE = "registry.test/mdserve:1"
CANARY = "c0ffee00"
"""Revision id of the primary's canary (any 8 hex chars: revisions are content hashes)."""

SPEC: dict[str, Any] = {
    "model": {"name": "fraud", "uri": "https://store.test/fraud/7/", "format": "onnx", "version": "7"},
    "variants": [
        {"name": "int8", "weight": 10, "quantization": "int8"},
        {
            "name": "candidate",
            "match": [
                {"header": "x-model-variant", "value": "candidate"},
                {"header": "x-tester", "regex": "qa-[0-9]+"},
            ],
            "model": {"uri": "https://store.test/fraud/8/", "version": "8"},
        },
    ],
}
TRAFFIC: dict[str, Any] = {
    "provider": "router",
    "sticky": {"header": "x-user-id", "salt": "exp-1"},
    "shadow": [{"variant": "candidate", "percent": 25}],
    "rules": [{"name": "beta", "variant": "candidate", "cookies": [{"name": "beta", "value": "1"}],
               "headers": [{"name": "x-region", "regex": "eu-.*"}]}],
    "router": {"replicas": 2, "timeouts": {"requestSeconds": 30}},
}
GATEWAY: dict[str, Any] = {
    "provider": "gateway-api",
    "shadow": [{"variant": "candidate", "percent": 12.5}],
    "rules": [{"name": "beta", "variant": "candidate", "headers": [{"name": "x-beta", "value": "1"}]}],
    "gateway": {
        "parentRefs": [{"name": "shared-gw", "namespace": "gateway-system", "sectionName": "https"}],
        "hostnames": ["fraud.example.com"],
    },
}


def md(spec: dict[str, Any] | None = None, name: str = "fraud", generation: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "serving.modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "ns1", "uid": "uid-1", "generation": generation},
        "spec": copy.deepcopy(spec if spec is not None else SPEC),
    }


def variants(spec: dict[str, Any] | None = None, name: str = "fraud") -> list[Variant]:
    """Resolved variants with fixed revision ids, so these goldens do not move with the pod template."""
    resolved = resolve(name, parse_spec(spec if spec is not None else SPEC), IMAGE)
    return [dataclasses.replace(v, revision=f"{i:x}a1b2c3d"[:8]) for i, v in enumerate(resolved)]


def shares(vs: list[Variant], canary: int | None = 20) -> RevisionShares:
    """Each variant's own revision at 100 %, the primary split stable/canary when `canary` is set."""
    out: dict[str, dict[str, int]] = {v.name: {v.revision: 100} for v in vs}
    if canary is not None:
        out["primary"] = {vs[0].revision: 100 - canary, CANARY: canary}
    return out


def traffic(raw: dict[str, Any] | None = None, **changes: Any) -> TrafficSpec:
    return TrafficSpec.model_validate({**copy.deepcopy(raw if raw is not None else TRAFFIC), **changes})


def check_golden(name: str, text: str) -> None:
    """Set UPDATE_GOLDEN=1 to rewrite after an intended change (then review the diff)."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from the rendering; UPDATE_GOLDEN=1 to accept"


def dump(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=True, width=120)
