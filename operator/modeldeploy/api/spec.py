"""Typed parse of a ModelDeployment `spec`, mirroring api/schema.py (a unit test keeps the two in step).

The apiserver has already applied defaults and validated the object; the defaults here matter only for objects
stored before a default was added, and for unit tests that build specs by hand.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from modeldeploy.api.base import IntOrStr, Resources, SecretRef, SpecModel
from modeldeploy.api.schema import PRIMARY
from modeldeploy.rollout.config import RolloutConfig
from modeldeploy.traffic.spec import TrafficSpec

Format = Literal["auto", "sklearn", "tensorflow", "tflite", "onnx"]
Quantization = Literal["none", "dynamic", "float16", "int8"]
__all__ = ["IntOrStr", "Resources", "SecretRef"]
_Model = SpecModel


class ModelSpec(_Model):
    name: str
    """Model name used in URLs and metric labels."""
    uri: str
    """Artifact location (path, file://, pvc://, http(s)://; s3:// and gs:// reserved)."""
    format: Format = "auto"
    """Serialization format, or auto-detection."""
    version: str = "1"
    """Version label."""
    sha256: str | None = None
    """Expected SHA-256 of the artifact."""
    quantization: Quantization = "none"
    """Quantization applied at server start-up."""


class ModelOverride(_Model):
    name: str | None = None
    """Overrides ModelSpec.name."""
    uri: str | None = None
    """Overrides ModelSpec.uri."""
    format: Format | None = None
    """Overrides ModelSpec.format."""
    version: str | None = None
    """Overrides ModelSpec.version."""
    sha256: str | None = None
    """Overrides ModelSpec.sha256."""


class EnvVar(_Model):
    name: str
    """Variable name."""
    value: str | None = None
    """Literal value."""
    value_from: dict[str, Any] | None = Field(default=None, alias="valueFrom")
    """core/v1 EnvVarSource, passed through."""


class Toleration(_Model):
    key: str | None = None
    """Taint key."""
    operator: str | None = None
    """Exists or Equal."""
    value: str | None = None
    """Taint value."""
    effect: str | None = None
    """Taint effect."""
    toleration_seconds: int | None = Field(default=None, alias="tolerationSeconds")
    """NoExecute grace."""


class ServingSpec(_Model):
    image: str | None = None
    """Model server image; None means the operator's default."""
    image_pull_policy: str | None = Field(default=None, alias="imagePullPolicy")
    """Image pull policy."""
    replicas: int = 1
    """Replicas of the primary variant without autoscaling."""
    port: int = 8080
    """Container port."""
    resources: Resources | None = None
    """Container resources."""
    env: tuple[EnvVar, ...] = ()
    """Extra environment."""
    node_selector: dict[str, str] | None = Field(default=None, alias="nodeSelector")
    """Pod nodeSelector."""
    tolerations: tuple[Toleration, ...] = ()
    """Pod tolerations."""
    affinity: dict[str, Any] | None = None
    """Pod affinity, passed through."""
    service_account_name: str | None = Field(default=None, alias="serviceAccountName")
    """Pod service account."""
    image_pull_secrets: tuple[SecretRef, ...] = Field(default=(), alias="imagePullSecrets")
    """Pull secrets."""
    pod_labels: dict[str, str] | None = Field(default=None, alias="podLabels")
    """Extra pod labels."""
    pod_annotations: dict[str, str] | None = Field(default=None, alias="podAnnotations")
    """Extra pod annotations."""
    termination_grace_period_seconds: int = Field(default=30, alias="terminationGracePeriodSeconds")
    """Drain time."""


class MetricTarget(_Model):
    name: str
    """Pods metric name."""
    target_average_value: IntOrStr = Field(alias="targetAverageValue")
    """Per-pod average target."""


class AutoscalingSpec(_Model):
    min_replicas: int | None = Field(default=None, alias="minReplicas")
    """HPA lower bound (None: inherit, else 1)."""
    max_replicas: int | None = Field(default=None, alias="maxReplicas")
    """HPA upper bound (required at the top level)."""
    target_cpu: int | None = Field(default=None, alias="targetCPUUtilizationPercentage")
    """CPU utilization target."""
    target_memory: int | None = Field(default=None, alias="targetMemoryUtilizationPercentage")
    """Memory utilization target."""
    target_rps: IntOrStr | None = Field(default=None, alias="targetRequestsPerSecond")
    """Per-pod requests/s target."""
    metrics: tuple[MetricTarget, ...] = ()
    """Custom Pods metrics."""
    behavior: dict[str, Any] | None = None
    """HPA behavior, passed through."""

    def merged_over(self, base: AutoscalingSpec | None) -> AutoscalingSpec:
        """This override with unset fields taken from `base` (the top-level autoscaling)."""
        if base is None:
            return self
        mine = self.model_dump(exclude_unset=True)
        return base.model_copy(update=mine)


class HeaderMatch(_Model):
    header: str
    """Header name."""
    value: str | None = None
    """Exact value."""
    regex: str | None = None
    """RE2 pattern."""


class VariantSpec(_Model):
    name: str
    """Variant name."""
    weight: int = 0
    """Percent of unmatched traffic."""
    match: tuple[HeaderMatch, ...] = ()
    """Header rules routing to this variant."""
    model: ModelOverride = ModelOverride()
    """Model overrides."""
    quantization: Quantization | None = None
    """Quantization override."""
    replicas: int | None = None
    """Replicas (None: serving.replicas)."""
    resources: Resources | None = None
    """Resources (None: serving.resources)."""
    env: tuple[EnvVar, ...] = ()
    """Extra environment, after serving.env."""
    autoscaling: AutoscalingSpec | None = None
    """Autoscaling override merged over the top level."""


RolloutSpec = RolloutConfig
"""`spec.rollout` is the progressive delivery engine's configuration (rollout/config.py)."""


class ModelDeploymentSpec(_Model):
    model: ModelSpec
    """The primary model."""
    serving: ServingSpec = ServingSpec()
    """Pod settings."""
    autoscaling: AutoscalingSpec | None = None
    """Top-level autoscaling (primary, inherited by variants)."""
    variants: tuple[VariantSpec, ...] = ()
    """Extra variants."""
    rollout: RolloutSpec = RolloutSpec()
    """Rollout settings."""
    traffic: TrafficSpec = TrafficSpec()
    """Traffic splitting: provider, sticky sessions, shadows, pinning rules (traffic/spec.py)."""

    def variant_names(self) -> list[str]:
        return [PRIMARY, *(v.name for v in self.variants)]


def parse_spec(raw: dict[str, Any]) -> ModelDeploymentSpec:
    """Parse a spec dict (as stored by the apiserver); raises pydantic.ValidationError on bad input."""
    return ModelDeploymentSpec.model_validate(raw)
