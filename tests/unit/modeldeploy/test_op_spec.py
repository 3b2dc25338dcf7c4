"""Spec parsing and variant resolution."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modeldeploy.api.spec import parse_spec
from modeldeploy.render.variants import resolve
from tests.unit.modeldeploy.md_helpers import BASIC, IMAGE, example

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["sklearn-iris", "autoscaled-onnx", "ab-quantized", "canary-rollout"])
def test_examples_parse(name: str) -> None:
    spec = parse_spec(example(name)["spec"])
    assert spec.model.name


def test_defaults_match_the_crd() -> None:
    spec = parse_spec(BASIC)
    assert spec.model.version == "1" and spec.model.quantization == "none"
    assert spec.serving.replicas == 1 and spec.serving.port == 8080
    assert spec.rollout.strategy == "Rolling" and spec.rollout.progress_deadline_seconds == 600


def test_unknown_fields_are_rejected_with_their_path() -> None:
    with pytest.raises(ValidationError) as err:
        parse_spec({**BASIC, "serving": {"replicaz": 3}})
    assert "replicaz" in str(err.value)


def test_variants_inherit_and_override() -> None:
    spec = parse_spec(example("ab-quantized")["spec"])
    primary, int8, candidate = resolve("digits", spec, IMAGE)
    assert (primary.name, primary.weight) == ("primary", 90)
    assert int8.model.quantization == "int8" and int8.model.uri == primary.model.uri and int8.replicas == 1
    assert candidate.model.version == "3" and candidate.model.format == "tensorflow"
    assert candidate.match[0].header == "x-model-variant"
    assert len({primary.revision, int8.revision, candidate.revision}) == 3


def test_variant_autoscaling_merges_over_the_top_level() -> None:
    autoscaling = {"minReplicas": 2, "maxReplicas": 8, "targetCPUUtilizationPercentage": 60}
    spec = parse_spec(
        {**BASIC, "autoscaling": autoscaling, "variants": [{"name": "b", "autoscaling": {"maxReplicas": 3}}]}
    )
    _, b = resolve("m", spec, IMAGE)
    assert b.autoscaling is not None
    assert (b.autoscaling.min_replicas, b.autoscaling.max_replicas, b.autoscaling.target_cpu) == (2, 3, 60)


def test_variant_env_overrides_by_name() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    spec = parse_spec(
        {**BASIC, "serving": {"env": env}, "variants": [{"name": "b", "env": [{"name": "B", "value": "3"}]}]}
    )
    _, b = resolve("m", spec, IMAGE)
    assert [(e.name, e.value) for e in b.serving.env] == [("A", "1"), ("B", "3")]
