"""Every validation rule of the CRD through a real `kubectl apply`: rejected, naming the field."""

from __future__ import annotations

import pytest

from tests.conftest import Kubectl

pytestmark = pytest.mark.cluster

MODEL = '{name: m, uri: "https://store.example/m.joblib"}'
CASES: list[tuple[str, str, str, str]] = [
    # (id, metadata.name, spec body, text the apiserver's message must contain)
    ("model-uri-required", "v", "model: {name: m}", "spec.model.uri: Required value"),
    ("model-uri-scheme", "v", 'model: {name: m, uri: "ftp://x/m"}', "spec.model.uri"),
    ("model-format-enum", "v", 'model: {name: m, uri: "/m", format: pickle}', "spec.model.format"),
    ("model-sha256", "v", 'model: {name: m, uri: "/m", sha256: "abc"}', "spec.model.sha256"),
    ("model-name", "v", 'model: {name: "Bad Name", uri: "/m"}', "spec.model.name"),
    (
        "quantization-enum",
        "v",
        f"model: {MODEL}\n  variants: [{{name: q, quantization: int4}}]",
        "spec.variants[0].quantization",
    ),
    ("replicas-bounds", "v", f"model: {MODEL}\n  serving: {{replicas: -1}}", "spec.serving.replicas"),
    ("port-bounds", "v", f"model: {MODEL}\n  serving: {{port: 70000}}", "spec.serving.port"),
    (
        "quantity",
        "v",
        f"model: {MODEL}\n  serving: {{resources: {{requests: {{cpu: lots}}}}}}",
        "spec.serving.resources.requests.cpu",
    ),
    (
        "autoscaling-max-required",
        "v",
        f"model: {MODEL}\n  autoscaling: {{minReplicas: 2}}",
        "spec.autoscaling.maxReplicas: Required value",
    ),
    (
        "autoscaling-min-le-max",
        "v",
        f"model: {MODEL}\n  autoscaling: {{minReplicas: 5, maxReplicas: 2}}",
        "spec.autoscaling.minReplicas: Invalid value",
    ),
    (
        "variant-autoscaling-min-le-max",
        "v",
        f"model: {MODEL}\n  variants: [{{name: b, autoscaling: {{minReplicas: 5, maxReplicas: 2}}}}]",
        "spec.variants[0].autoscaling.minReplicas",
    ),
    (
        "weight-bounds",
        "v",
        f"model: {MODEL}\n  variants: [{{name: b, weight: 150}}]",
        "spec.variants[0].weight",
    ),
    (
        "weights-sum",
        "v",
        f"model: {MODEL}\n  variants: [{{name: a, weight: 60}}, {{name: b, weight: 50}}]",
        'spec.variants: Invalid value: "object": the sum of variants[].weight must be at most 100',
    ),
    (
        "variant-names-unique",
        "v",
        f"model: {MODEL}\n  variants: [{{name: a}}, {{name: a}}]",
        "spec.variants[1]: Duplicate value",
    ),
    (
        "variant-name-reserved",
        "v",
        f"model: {MODEL}\n  variants: [{{name: primary}}]",
        "spec.variants[0].name: Invalid value",
    ),
    (
        "variant-name-format",
        "v",
        f"model: {MODEL}\n  variants: [{{name: Bad_Name}}]",
        "spec.variants[0].name",
    ),
    (
        "header-match-exclusive",
        "v",
        f"model: {MODEL}\n  variants: [{{name: b, match: [{{header: x-v, value: b, regex: 'b.*'}}]}}]",
        'spec.variants[0].match[0]: Invalid value: "object": set exactly one of value or regex',
    ),
    (
        "steps-increasing",
        "v",
        f"model: {MODEL}\n  rollout: {{strategy: Canary, steps: [{{setWeight: 50}}, {{setWeight: 20}}]}}",
        'spec.rollout.steps: Invalid value: "array": steps[].setWeight must be strictly increasing',
    ),
    (
        "steps-unique",
        "v",
        f"model: {MODEL}\n  rollout: {{strategy: Canary, steps: [{{setWeight: 20}}, {{setWeight: 20}}]}}",
        "spec.rollout.steps",
    ),
    (
        "canary-needs-steps",
        "v",
        f"model: {MODEL}\n  rollout: {{strategy: Canary}}",
        'spec.rollout.steps: Invalid value: "object": strategy Canary needs at least one step',
    ),
    ("strategy-enum", "v", f"model: {MODEL}\n  rollout: {{strategy: YOLO}}", "spec.rollout.strategy"),
    (
        "steps-only-canary",
        "v",
        f"model: {MODEL}\n  rollout: {{strategy: BlueGreen, steps: [{{setWeight: 50}}]}}",
        'spec.rollout.steps: Invalid value: "object": steps are only used by strategy Canary',
    ),
    (
        "steps-not-rolling",
        "v",
        f"model: {MODEL}\n  rollout: {{steps: [{{setWeight: 50}}]}}",
        'spec.rollout.steps: Invalid value: "object": steps are only used by strategy Canary',
    ),
    (
        "metrics-not-rolling",
        "v",
        f"model: {MODEL}\n  rollout: {{metrics: [{{name: error-rate, thresholdRange: {{max: 0.1}}}}]}}",
        'spec.rollout.metrics: Invalid value: "object": metrics are analysed by strategies Canary and',
    ),
    (
        "blue-green-relative-check",
        "v",
        f"model: {MODEL}\n  rollout: {{strategy: BlueGreen, metrics: [{{name: accuracy-drop, "
        f"thresholdRange: {{max: 0.01}}}}]}}",
        "spec.rollout.metrics: Invalid value: \"object\": strategy BlueGreen sends no traffic to the stable",
    ),
    (
        "step-weight-bounds",
        "v",
        f"model: {MODEL}\n  rollout: {{strategy: Canary, steps: [{{setWeight: 101}}]}}",
        "spec.rollout.steps[0].setWeight",
    ),
    ("duration-format", "v", f"model: {MODEL}\n  rollout: {{interval: 5 minutes}}", "spec.rollout.interval"),
    (
        "threshold-needs-a-bound",
        "v",
        f"model: {MODEL}\n  rollout: {{strategy: BlueGreen, metrics: [{{name: acc, thresholdRange: {{}}}}]}}",
        'spec.rollout.metrics[0].thresholdRange: Invalid value: "object": set min, max or both',
    ),
    (
        "threshold-min-le-max",
        "v",
        f"model: {MODEL}\n  rollout: {{strategy: BlueGreen, metrics: [{{name: acc, "
        f"thresholdRange: {{min: 2, max: 1}}}}]}}",
        "spec.rollout.metrics[0].thresholdRange.min",
    ),
    (
        "failure-limit-bounds",
        "v",
        f"model: {MODEL}\n  rollout: {{failureLimit: -1}}",
        "spec.rollout.failureLimit",
    ),
    ("name-length", "a" * 46, f"model: {MODEL}", "metadata.name must be a DNS-1035 label of at most 45"),
    (
        "name-plus-variant-length",
        "a" * 40,
        f"model: {MODEL}\n  variants: [{{name: {'b' * 14}}}]",
        "spec.variants: Invalid value",
    ),
    ("spec-required", "v", None, "spec: Required value"),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("name", "spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_spec_is_rejected_naming_the_field(
    kubectl: Kubectl, namespace: str, crd: object, name: str, spec: str | None, expected: str
) -> None:
    body = (
        f"apiVersion: serving.modeldeploy.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: {name}}}\n"
    )
    if spec is not None:
        body += f"spec:\n  {spec}\n"
    result = kubectl("apply", "-n", namespace, "-f", "-", stdin=body)
    assert result.returncode != 0, f"accepted:\n{body}"
    assert expected in result.stderr, result.stderr


def test_a_valid_spec_with_every_section_is_accepted(kubectl: Kubectl, namespace: str, crd: object) -> None:
    for example in ("sklearn-iris", "autoscaled-onnx", "ab-quantized", "canary-rollout"):
        result = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", f"examples/{example}.yaml")
        assert result.returncode == 0, result.stderr
