"""Resolves the spec into fully specified variants (primary + extras) with their revision ids. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modeldeploy.api.schema import PRIMARY
from modeldeploy.api.spec import (
    AutoscalingSpec,
    EnvVar,
    HeaderMatch,
    ModelDeploymentSpec,
    ModelSpec,
    Resources,
    ServingSpec,
)
from modeldeploy.render.naming import stable_hash
from modeldeploy.render.pod import build_pod_template


@dataclass(frozen=True)
class Variant:
    """One variant with every inherited field resolved."""

    name: str
    """Variant name (`primary` for the top-level model)."""
    model: ModelSpec
    """Effective model (overrides applied, quantization resolved)."""
    serving: ServingSpec
    """Effective pod settings (variant resources/env applied)."""
    replicas: int
    """Replicas when not autoscaled."""
    autoscaling: AutoscalingSpec | None
    """Effective autoscaling, or None."""
    weight: int
    """Configured percent of unmatched traffic (the primary gets the remainder)."""
    match: tuple[HeaderMatch, ...]
    """Header matches routing to this variant."""
    revision: str
    """Content hash of the pod template: what is served."""
    pod_template: dict[str, Any]
    """The rendered pod template of this revision."""


def _merge_env(base: tuple[EnvVar, ...], extra: tuple[EnvVar, ...]) -> tuple[EnvVar, ...]:
    names = {e.name for e in extra}
    return tuple(e for e in base if e.name not in names) + extra


def resolve(md_name: str, spec: ModelDeploymentSpec, default_image: str) -> list[Variant]:
    """Primary first, then extra variants in spec order."""
    extras_weight = sum(v.weight for v in spec.variants)
    out: list[Variant] = []
    out.append(
        _make(
            md_name,
            PRIMARY,
            spec.model,
            spec.serving,
            spec.serving.replicas,
            spec.autoscaling,
            100 - extras_weight,
            (),
            default_image,
        )
    )
    for v in spec.variants:
        overrides = v.model.model_dump(exclude_none=True)
        if v.quantization is not None:
            overrides["quantization"] = v.quantization
        model = spec.model.model_copy(update=overrides)
        serving_update: dict[str, Any] = {"env": _merge_env(spec.serving.env, v.env)}
        if v.resources is not None:
            serving_update["resources"] = Resources.model_validate(v.resources.model_dump(exclude_none=True))
        serving = spec.serving.model_copy(update=serving_update)
        replicas = v.replicas if v.replicas is not None else spec.serving.replicas
        autoscaling = v.autoscaling.merged_over(spec.autoscaling) if v.autoscaling else spec.autoscaling
        out.append(
            _make(md_name, v.name, model, serving, replicas, autoscaling, v.weight, v.match, default_image)
        )
    return out


def _make(
    md_name: str,
    name: str,
    model: ModelSpec,
    serving: ServingSpec,
    replicas: int,
    autoscaling: AutoscalingSpec | None,
    weight: int,
    match: tuple[HeaderMatch, ...],
    default_image: str,
) -> Variant:
    unrevisioned = build_pod_template(md_name, name, "", model, serving, default_image)
    revision = stable_hash(unrevisioned)
    template = build_pod_template(md_name, name, revision, model, serving, default_image)
    return Variant(
        name=name,
        model=model,
        serving=serving,
        replicas=replicas,
        autoscaling=autoscaling,
        weight=weight,
        match=match,
        revision=revision,
        pod_template=template,
    )
