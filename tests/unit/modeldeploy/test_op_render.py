"""Renderers: golden files per example, and the properties every child must have."""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml

from modeldeploy.api.spec import parse_spec
from modeldeploy.render.children import desired_children, retained
from modeldeploy.render.naming import ANNOTATION_HASH, LABEL_REVISION
from modeldeploy.render.variants import Variant, resolve
from modeldeploy.revisions import VariantRevisions, decide
from tests.unit.modeldeploy.md_helpers import BASIC, IMAGE, REPO, example, md_with

pytestmark = pytest.mark.unit
GOLDEN = REPO / "tests" / "unit" / "modeldeploy" / "golden"
EXAMPLES = ["sklearn-iris", "autoscaled-onnx", "ab-quantized", "canary-rollout"]


def render(md: dict[str, Any]) -> tuple[list[Variant], list[dict[str, Any]]]:
    spec = parse_spec(md["spec"])
    variants = resolve(md["metadata"]["name"], spec, IMAGE)
    revisions = decide(md["metadata"]["name"], variants, md.get("status") or {}, {}, paused=False)
    return variants, desired_children(md, variants, revisions, spec.rollout.progress_deadline_seconds)


@pytest.mark.parametrize("name", EXAMPLES)
def test_golden(name: str) -> None:
    """Set UPDATE_GOLDEN=1 to rewrite the files after an intended rendering change (then review the diff)."""
    _, children = render(example(name))
    text = yaml.safe_dump_all(children, sort_keys=True, width=120)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs from the rendering; UPDATE_GOLDEN=1 to accept"


def test_rendering_is_deterministic() -> None:
    assert render(example("ab-quantized")) == render(example("ab-quantized"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_children_are_owned_labelled_and_short_named(name: str) -> None:
    md = example(name)
    _, children = render(md)
    for child in children:
        meta = child["metadata"]
        assert len(meta["name"]) <= 63 and meta["namespace"] == "ns1"
        (owner,) = meta["ownerReferences"]
        assert owner["uid"] == md["metadata"]["uid"] and owner["controller"] is True
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "modeldeploy"
        assert meta["labels"]["serving.modeldeploy.dev/modeldeployment"] == md["metadata"]["name"]
        assert ANNOTATION_HASH in meta["annotations"]


def test_longest_allowed_names_fit_dns_labels() -> None:
    md = md_with({**BASIC, "variants": [{"name": "v" * 8}]}, name="a" * 45)
    _, children = render(md)
    assert max(len(c["metadata"]["name"]) for c in children) <= 63


def _deployment(children: list[dict[str, Any]], variant: str = "primary") -> dict[str, Any]:
    return next(
        c
        for c in children
        if c["kind"] == "Deployment"
        and c["spec"]["template"]["metadata"]["labels"]["serving.modeldeploy.dev/variant"] == variant
    )


def test_pod_contract_and_hardening() -> None:
    _, children = render(md_with({**BASIC, "serving": {"port": 9000}}))
    pod = _deployment(children)["spec"]["template"]
    (c,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MDSERVE_MODEL_NAME"] == "iris" and env["MDSERVE_MODEL_FORMAT"] == "sklearn"
    assert env["MDSERVE_HTTP_PORT"] == "9000" and env["MDSERVE_VARIANT"] == "primary"
    assert env["MDSERVE_REVISION"] == pod["metadata"]["labels"][LABEL_REVISION]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["capabilities"][
        "drop"
    ] == ["ALL"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9000"


def test_user_env_cannot_override_the_contract() -> None:
    spec = {
        **BASIC,
        "serving": {"env": [{"name": "MDSERVE_VARIANT", "value": "x"}, {"name": "X", "value": "1"}]},
    }
    _, children = render(md_with(spec))
    env = _deployment(children)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["value"] for e in env if e["name"] == "MDSERVE_VARIANT"] == ["primary"]
    assert {"name": "X", "value": "1"} in env


def test_pvc_uri_is_mounted_read_only() -> None:
    _, children = render(example("autoscaled-onnx"))
    pod = _deployment(children)["spec"]["template"]["spec"]
    assert {"name": "model-store", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in pod[
        "volumes"
    ]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["MDSERVE_MODEL_URI"] == "/mnt/models/churn/3/model.onnx"


def test_revision_tracks_what_is_served_not_how_many() -> None:
    base, _ = render(md_with(BASIC))
    scaled, _ = render(md_with({**BASIC, "serving": {"replicas": 5}}))
    new_version, _ = render(md_with({**BASIC, "model": {**BASIC["model"], "version": "2"}}))
    new_env, _ = render(md_with({**BASIC, "serving": {"env": [{"name": "A", "value": "1"}]}}))
    assert base[0].revision == scaled[0].revision
    assert len({base[0].revision, new_version[0].revision, new_env[0].revision}) == 3


def test_autoscaling_renders_hpa_and_leaves_replicas_to_it() -> None:
    _, children = render(example("autoscaled-onnx"))
    dep = _deployment(children)
    hpa = next(c for c in children if c["kind"] == "HorizontalPodAutoscaler")
    assert "replicas" not in dep["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": dep["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    kinds = [m["type"] for m in hpa["spec"]["metrics"]]
    assert kinds == ["Resource", "Pods"]
    assert hpa["spec"]["metrics"][1]["pods"]["metric"]["name"] == "mdserve_requests_per_second"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_hpa_defaults_to_cpu() -> None:
    _, children = render(md_with({**BASIC, "autoscaling": {"maxReplicas": 3}}))
    (hpa,) = [c for c in children if c["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


def test_stable_service_follows_the_stable_revision_during_a_rollout() -> None:
    md = md_with(BASIC)
    variants = resolve("m", parse_spec(md["spec"]), IMAGE)
    revisions = {"primary": VariantRevisions("primary", "oldrev00", variants[0].revision)}
    children = desired_children(md, variants, revisions, 600)
    stable = next(c for c in children if c["kind"] == "Service" and c["metadata"]["name"] == "m")
    assert stable["spec"]["selector"][LABEL_REVISION] == "oldrev00"
    assert ("Deployment", "m-primary-oldrev00") in retained("m", revisions)
    assert not any(c["metadata"]["name"] == "m-primary-oldrev00" for c in children)
