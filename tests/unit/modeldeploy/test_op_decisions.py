"""Pure decisions: live-vs-desired comparison, the write plan, revision promotion."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from modeldeploy.api.spec import parse_spec
from modeldeploy.diff import is_subset, needs_apply, parse_quantity
from modeldeploy.plan import key_of, plan
from modeldeploy.render.children import desired_children, retained
from modeldeploy.render.variants import resolve
from modeldeploy.revisions import VariantRevisions, deadline_exceeded, decide, deployment_ready
from tests.unit.modeldeploy.md_helpers import BASIC, IMAGE, md_with

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("a", "b"),
    [("500m", "0.5"), ("1Gi", "1073741824"), ("1024Mi", "1Gi"), (1, "1"), ("1e3", "1k"), ("2", 2.0)],
)
def test_quantities_compare_by_value(a: Any, b: Any) -> None:
    assert is_subset({"cpu": a}, {"cpu": b})


def test_parse_quantity() -> None:
    assert parse_quantity("250m") == Decimal("0.25")
    assert parse_quantity("image:tag") is None and parse_quantity("Gi") is None


def test_subset_semantics() -> None:
    live = {"a": 1, "b": {"c": [1, {"d": "x", "e": "added-by-apiserver"}]}, "status": {"x": 1}}
    assert is_subset({"b": {"c": [1, {"d": "x"}]}}, live)
    assert not is_subset({"b": {"c": [1]}}, live)  # list length matters: a removed element is drift
    assert not is_subset({"a": 2}, live)
    assert is_subset({"value": "", "items": [], "m": {}}, {})  # omitempty
    assert not is_subset({"flag": False}, {})
    assert not is_subset({"flag": False}, {"flag": 0})


def _world(spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, VariantRevisions]]:
    md = md_with(spec)
    variants = resolve("m", parse_spec(md["spec"]), IMAGE)
    revisions = decide("m", variants, {}, {}, paused=False)
    return md, desired_children(md, variants, revisions, 600), revisions


def _as_live(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the apiserver returns: the manifest plus defaults, uid and status."""
    live = copy.deepcopy(manifest)
    live["metadata"].update(uid=f"uid-{manifest['metadata']['name']}", resourceVersion="7", generation=1)
    live["metadata"]["labels"]["added-by-someone"] = "x"
    live.setdefault("spec", {})["someDefault"] = True
    live["status"] = {"observedGeneration": 1}
    return live


def test_no_op_plan_is_empty() -> None:
    _, desired, revisions = _world(BASIC)
    observed = {key_of(m): _as_live(m) for m in desired}
    assert plan(desired, observed, retained("m", revisions)) == []


def test_plan_creates_missing_repairs_drift_and_deletes_orphans() -> None:
    _, desired, revisions = _world({**BASIC, "serving": {"replicas": 2}})
    observed = {key_of(m): _as_live(m) for m in desired}
    dep_key = next(k for k in observed if k[0] == "Deployment")
    observed[dep_key]["spec"]["replicas"] = 7  # kubectl scale by hand
    del observed[("Service", "m")]  # deleted by hand
    observed[("Deployment", "m-old-variant-12345678")] = {"kind": "Deployment", "metadata": {"name": "x"}}
    actions = plan(desired, observed, retained("m", revisions))
    assert [(a.verb, a.kind, a.name) for a in actions] == [
        ("update", "Deployment", dep_key[1]),
        ("create", "Service", "m"),
        ("delete", "Deployment", "m-old-variant-12345678"),
    ]


def test_removed_field_is_noticed_through_the_hash() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    _, before, _ = _world({**BASIC, "autoscaling": {"maxReplicas": 3, "behavior": behavior}})
    _, after, _ = _world({**BASIC, "autoscaling": {"maxReplicas": 3}})
    hpa_before = next(m for m in before if m["kind"] == "HorizontalPodAutoscaler")
    hpa_after = next(m for m in after if m["kind"] == "HorizontalPodAutoscaler")
    assert key_of(hpa_before) == key_of(hpa_after)  # same revision: behavior is not part of the pod
    live = _as_live(hpa_before)
    spec_only = {"spec": hpa_after["spec"]}
    assert is_subset(spec_only, live), "a subset check alone cannot see the removed behavior"
    assert needs_apply(hpa_after, live), "the content hash does"
    assert not needs_apply(hpa_before, live)


def _dep(replicas: int, ready: int, generation: int = 1, observed: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": ready,
            "availableReplicas": ready,
            "readyReplicas": ready,
        },
    }


def test_deployment_readiness() -> None:
    assert deployment_ready(_dep(2, 2)) and deployment_ready(_dep(0, 0))
    assert not deployment_ready(_dep(2, 1))
    assert not deployment_ready(_dep(2, 2, generation=2, observed=1))  # controller has not seen the change
    stuck = {
        "status": {
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
        }
    }
    assert deadline_exceeded(stuck) and not deadline_exceeded(_dep(1, 1))


EXTRA = {**BASIC, "variants": [{"name": "b", "weight": 20}]}
"""revisions.decide serves the extra variants (the engine rolls out the primary)."""


def test_new_variant_revision_waits_for_readiness_then_is_promoted() -> None:
    variants = resolve("m", parse_spec(EXTRA), IMAGE)[1:]
    new = variants[0].revision
    status = {"variants": [{"name": "b", "revision": "oldrev00"}]}
    old_dep = {"m-b-oldrev00": _dep(1, 1)}
    r = decide("m", variants, status, old_dep, paused=False)["b"]
    assert (r.stable, r.canary, r.promoted) == ("oldrev00", new, False)
    r = decide("m", variants, status, {**old_dep, f"m-b-{new}": _dep(1, 0)}, paused=False)["b"]
    assert r.canary == new
    r = decide("m", variants, status, {**old_dep, f"m-b-{new}": _dep(1, 1)}, paused=False)["b"]
    assert (r.stable, r.canary, r.promoted) == (new, None, True)
    r = decide("m", variants, status, {**old_dep, f"m-b-{new}": _dep(1, 1)}, paused=True)["b"]
    assert r.stable == "oldrev00", "a paused rollout never promotes"


def test_missing_old_variant_revision_is_not_protected() -> None:
    variants = resolve("m", parse_spec(EXTRA), IMAGE)[1:]
    status = {"variants": [{"name": "b", "revision": "gone0000"}]}
    r = decide("m", variants, status, {}, paused=False)["b"]
    assert r.stable == variants[0].revision and r.canary is None
