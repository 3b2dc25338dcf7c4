"""The single source of truth for the ModelDeployment CRD (`serving.modeldeploy.dev/v1alpha1`).

`python -m modeldeploy.api.generate` writes crds/ (and the chart's copy) from `crd()`; a unit test fails when
the
files drift. Cross-field rules are CEL so the apiserver rejects bad specs with a message naming the field;
what
only the operator can know (model reachability, format/quantization combinations) is reported in status.
"""

from __future__ import annotations

import copy
from typing import Any

from modeldeploy.api.openapi import (
    Node,
    array,
    integer,
    number,
    obj,
    passthrough,
    quantity_map,
    rule,
    string,
    string_map,
)

GROUP = "serving.modeldeploy.dev"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("md",)
API_VERSION = f"{GROUP}/{VERSION}"

FORMATS = ("auto", "sklearn", "tensorflow", "tflite", "onnx")
QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
STRATEGIES = ("Rolling", "Canary", "BlueGreen")
PHASES = ("Pending", "Progressing", "Healthy", "Degraded", "Paused")
PRIMARY = "primary"
"""The variant described by the top-level `model`/`serving` (reserved: no extra variant may use it)."""

# Child names are `<md>-<variant>-<8-char revision>` and must stay valid DNS-1035 labels (<= 63 chars).
MAX_NAME = 45
MAX_VARIANT = 20
MAX_VARIANT_NAME_SUM = 53
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
URI_PREFIXES = r"^(/|file://|pvc://|https?://|s3://|gs://)"


def _model(partial: bool) -> Node:
    """The model block; for variants (`partial`) every field is an optional override of the primary's."""
    what = "Overrides the primary model's" if partial else "The model's"
    props: dict[str, Node] = {
        "name": string(
            f"{what} name, used in the inference URLs (`/v2/models/{{name}}`) and the `model` metric label.",
            pattern=DNS_LABEL,
            max_length=63,
        ),
        "format": string(
            f"{what} serialization format; `auto` lets the server detect it from the artifact.",
            enum=FORMATS,
            default=None if partial else "auto",
        ),
        "uri": string(
            f"{what} location: an absolute path or `file://` path inside the image, "
            "`pvc://<claim>/<path>` (mounted read-only), or `http(s)://` (downloaded at start-up). "
            "`s3://` and `gs://` are reserved.",
            min_length=1,
            max_length=2048,
            pattern=URI_PREFIXES,
        ),
        "version": string(
            f"{what} version label (`/v2/models/{{name}}/versions/{{version}}`, the `version` metric label).",
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
            max_length=63,
            default=None if partial else "1",
        ),
        "sha256": string(
            f"{what} expected SHA-256 of the artifact (hex); the server refuses a mismatching download.",
            pattern=r"^[a-f0-9]{64}$",
            max_length=64,
        ),
    }
    if not partial:
        props["quantization"] = string(
            "Quantize the model at server start-up; `none` serves it as is. TensorFlow/Keras models become "
            "TFLite (dynamic, float16, int8), sklearn models ONNX (dynamic, int8); a tflite or onnx artifact "
            "is served as it was converted.",
            enum=QUANTIZATIONS,
            default="none",
        )
    return obj(
        "Model overrides for this variant; unset fields inherit from `spec.model`."
        if partial
        else "The model to serve.",
        props,
        required=() if partial else ("name", "uri"),
    )


def _env() -> Node:
    return array(
        "Extra environment variables for the model server container (core/v1 EnvVar).",
        obj(
            "An environment variable.",
            {
                "name": string("Variable name.", min_length=1, max_length=253),
                "value": string("Literal value.", max_length=32768),
                "valueFrom": passthrough(
                    "A core/v1 EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef...)."
                ),
            },
            required=("name",),
        ),
        max_items=64,
        map_keys=("name",),
    )


def _resources() -> Node:
    return obj(
        "Compute resources of the model server container (core/v1 ResourceRequirements).",
        {
            "requests": quantity_map("Minimum resources, e.g. `cpu: 500m`, `memory: 1Gi`."),
            "limits": quantity_map("Maximum resources."),
        },
    )


def _serving() -> Node:
    return obj(
        "How the model server pods run.",
        {
            "image": string(
                "Model server image; defaults to the operator's `MODELDEPLOY_SERVING_IMAGE`.",
                max_length=512,
            ),
            "imagePullPolicy": string("Image pull policy.", enum=("Always", "IfNotPresent", "Never")),
            "replicas": integer(
                "Replicas of the primary variant when `autoscaling` is not set.",
                minimum=0,
                maximum=1000,
                default=1,
            ),
            "port": integer(
                "Port the model server listens on (HTTP, metrics and probes).",
                minimum=1,
                maximum=65535,
                default=8080,
            ),
            "resources": _resources(),
            "env": _env(),
            "nodeSelector": string_map("Pod nodeSelector."),
            "tolerations": array(
                "Pod tolerations (core/v1 Toleration).",
                obj(
                    "A toleration.",
                    {
                        "key": string("Taint key.", max_length=317),
                        "operator": string("`Exists` or `Equal`.", enum=("Exists", "Equal")),
                        "value": string("Taint value.", max_length=63),
                        "effect": string(
                            "Taint effect.", enum=("NoSchedule", "PreferNoSchedule", "NoExecute")
                        ),
                        "tolerationSeconds": integer(
                            "For NoExecute: seconds the pod stays bound.", fmt="int64"
                        ),
                    },
                ),
                max_items=32,
            ),
            "affinity": passthrough("Pod affinity (core/v1 Affinity), copied verbatim."),
            "serviceAccountName": string(
                "Service account of the model server pods.", pattern=DNS_LABEL, max_length=253
            ),
            "imagePullSecrets": array(
                "Secrets used to pull the image.",
                obj(
                    "A secret reference.", {"name": string("Secret name.", min_length=1)}, required=("name",)
                ),
                max_items=16,
                map_keys=("name",),
            ),
            "podLabels": string_map("Extra labels on the pods (the operator's own labels win)."),
            "podAnnotations": string_map("Extra annotations on the pods."),
            "terminationGracePeriodSeconds": integer(
                "Seconds a pod gets to drain in-flight requests before it is killed.",
                minimum=0,
                maximum=3600,
                default=30,
                fmt="int64",
            ),
        },
        default={},
    )


def _metric_target() -> Node:
    return array(
        "Pods metrics (served by a custom metrics adapter) with a per-pod average target.",
        obj(
            "A per-pod custom metric target.",
            {
                "name": string("Metric name as exposed by the metrics adapter.", min_length=1),
                "targetAverageValue": {
                    "x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "description": "Target per-pod average value (a quantity, e.g. `10` or `500m`).",
                },
            },
            required=("name", "targetAverageValue"),
        ),
        max_items=8,
        map_keys=("name",),
    )


def _autoscaling(partial: bool) -> Node:
    props: dict[str, Node] = {
        "minReplicas": integer(
            "Lower bound of the HorizontalPodAutoscaler.",
            minimum=1,
            maximum=1000,
            default=None if partial else 1,
        ),
        "maxReplicas": integer("Upper bound of the HorizontalPodAutoscaler.", minimum=1, maximum=1000),
        "targetCPUUtilizationPercentage": integer(
            "Average CPU utilization target, % of requests.", minimum=1, maximum=1000
        ),
        "targetMemoryUtilizationPercentage": integer(
            "Average memory utilization target, % of requests.", minimum=1, maximum=1000
        ),
        "targetRequestsPerSecond": {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "description": "Per-pod requests/s target; needs a metrics adapter exposing "
            "`mdserve_requests_per_second` as a Pods metric.",
        },
        "metrics": _metric_target(),
        "behavior": passthrough("HorizontalPodAutoscaler `behavior` (autoscaling/v2), copied verbatim."),
    }
    return obj(
        "Run a HorizontalPodAutoscaler (autoscaling/v2) for this variant's Deployment; `serving.replicas` is "
        "then ignored. With no target set, CPU at 80% is used.",
        props,
        required=() if partial else ("maxReplicas",),
        rules=(
            rule(
                "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                "minReplicas must be less than or equal to maxReplicas",
                field_path=".minReplicas",
            ),
        ),
    )


def _variant() -> Node:
    return obj(
        "An extra variant (A/B arm, quantized or shadow model) served next to the primary one.",
        {
            "name": string(
                "Variant name (`primary` is reserved for the top-level model).",
                pattern=DNS_LABEL,
                min_length=1,
                max_length=MAX_VARIANT,
            ),
            "weight": integer(
                "Percent of unmatched traffic routed to this variant; the primary gets the rest.",
                minimum=0,
                maximum=100,
                default=0,
            ),
            "match": array(
                "Requests matching any of these header rules go to this variant regardless of weights.",
                obj(
                    "A header match.",
                    {
                        "header": string(
                            "HTTP header name.",
                            min_length=1,
                            max_length=256,
                            pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
                        ),
                        "value": string("Exact header value to match.", max_length=1024),
                        "regex": string(
                            "RE2 regular expression the header value must match.", max_length=1024
                        ),
                    },
                    required=("header",),
                    rules=(rule("has(self.value) != has(self.regex)", "set exactly one of value or regex"),),
                ),
                max_items=8,
            ),
            "model": _model(partial=True),
            "quantization": string(
                "Quantize this variant's model at start-up (e.g. an int8 arm of the same "
                "model); overrides `model.quantization`.",
                enum=QUANTIZATIONS,
            ),
            "replicas": integer(
                "Replicas of this variant (default: `serving.replicas`).", minimum=0, maximum=1000
            ),
            "resources": _resources(),
            "env": _env(),
            "autoscaling": _autoscaling(partial=True),
        },
        required=("name",),
        rules=(
            rule(
                "self.name != 'primary'",
                "variant name 'primary' is reserved for the top-level model",
                field_path=".name",
            ),
        ),
    )


def _rollout() -> Node:
    """`spec.rollout`: the progressive delivery engine's fragment (rollout/schema.py, which imports this
    module's constants, hence the import here)."""
    from modeldeploy.rollout.schema import ROLLOUT_SPEC_SCHEMA

    return copy.deepcopy(ROLLOUT_SPEC_SCHEMA)


def _rollout_status() -> Node:
    """`status.rollout`: the engine's persisted state (rollout/state.py)."""
    from modeldeploy.rollout.schema import ROLLOUT_STATUS_SCHEMA

    return copy.deepcopy(ROLLOUT_STATUS_SCHEMA)


def _traffic() -> tuple[Node, tuple[Node, ...], Node]:
    """`spec.traffic`, its CEL rules (they compare against `variants`, so they sit on `spec`) and
    `status.traffic` (traffic/schema.py imports api/openapi.py, hence the import here)."""
    from modeldeploy.traffic.schema import (
        TRAFFIC_SPEC_RULES,
        TRAFFIC_SPEC_SCHEMA,
        TRAFFIC_STATUS_SCHEMA,
    )

    return (
        copy.deepcopy(TRAFFIC_SPEC_SCHEMA),
        copy.deepcopy(TRAFFIC_SPEC_RULES),
        copy.deepcopy(TRAFFIC_STATUS_SCHEMA),
    )


def spec_schema() -> Node:
    traffic, traffic_rules, _ = _traffic()
    return obj(
        "The desired state: one model served by one or more variants.",
        {
            "model": _model(partial=False),
            "serving": _serving(),
            "autoscaling": _autoscaling(partial=False),
            "variants": array(
                "Extra variants served next to the primary one, addressed by weight or header match.",
                _variant(),
                max_items=8,
                map_keys=("name",),
            ),
            "rollout": _rollout(),
            "traffic": traffic,
        },
        required=("model",),
        rules=(
            rule(
                "!has(self.variants) || self.variants.map(v, v.weight).sum() <= 100",
                "the sum of variants[].weight must be at most 100",
                field_path=".variants",
            ),
            *traffic_rules,
        ),
    )


def _condition() -> Node:
    return obj(
        "A condition (KEP-1623 shape).",
        {
            "type": string("`Ready`, `Progressing` or `Degraded`.", max_length=64),
            "status": string("`True`, `False` or `Unknown`.", enum=("True", "False", "Unknown")),
            "reason": string("CamelCase machine-readable reason.", max_length=1024),
            "message": string("Human-readable detail.", max_length=32768),
            "lastTransitionTime": string("When `status` last changed.", fmt="date-time", max_length=64),
            "observedGeneration": integer(
                "The `metadata.generation` this condition was computed for.", fmt="int64"
            ),
        },
        required=("type", "status"),
    )


def _ab_test_status() -> Node:
    figures = obj(
        "Figures of one variant over the window; a figure without data is absent (never 0).",
        {
            "name": string("Variant name."),
            "revision": string("Revision measured (the one serving the variant's traffic).", max_length=64),
            "weight": integer("Configured percent of unmatched traffic."),
            "requestsPerSecond": number("Inference requests per second (v1 and v2 protocols)."),
            "errorRate": number("Fraction of inference requests answered with a 5xx status."),
            "latencyP50": number("Median inference latency, seconds."),
            "latencyP99": number("99th percentile inference latency, seconds."),
            "accuracy": number("Online accuracy from feedback: correct / (correct + incorrect)."),
            "feedback": integer("Scored feedback rows (classification) in the window.", fmt="int64"),
        },
        required=("name",),
    )
    return obj(
        "A/B test figures, side by side, when the ModelDeployment has variants beyond the primary and a "
        "Prometheus address is configured; refreshed at most once per `spec.rollout.interval`. Nothing is "
        "promoted automatically.",
        {
            "observedAt": string("Last refresh attempt.", fmt="date-time", max_length=64),
            "measuredAt": string("When the figures shown were measured.", fmt="date-time", max_length=64),
            "window": string("Query window of the figures, e.g. `60s`.", max_length=32),
            "message": string(
                "Why the last refresh failed (the previous figures are kept).", max_length=4096
            ),
            "variants": array("Per-variant figures.", figures, max_items=16, map_keys=("name",)),
        },
    )


def status_schema() -> Node:
    variant = obj(
        "Observed state of one variant.",
        {
            "name": string("Variant name."),
            "revision": string("Revision serving this variant's traffic (stable).", max_length=64),
            "desiredRevision": string("Revision rendered from the current spec.", max_length=64),
            "deployment": string("Deployment serving the stable revision."),
            "service": string("Service in front of that Deployment."),
            "weight": integer("Current percent of traffic."),
            "replicas": integer("Pods of the variant (all revisions)."),
            "readyReplicas": integer("Ready pods of the variant (all revisions)."),
            "updatedReplicas": integer("Pods of the desired revision."),
        },
        required=("name",),
    )
    return obj(
        "Observed state, written by the operator only.",
        {
            "observedGeneration": integer("The `metadata.generation` last reconciled.", fmt="int64"),
            "phase": string("Summary for people and tools.", enum=PHASES),
            "message": string("Human-readable explanation of the phase.", max_length=32768),
            "conditions": array(
                "Ready, Progressing and Degraded conditions.", _condition(), max_items=16, map_keys=("type",)
            ),
            "stableRevision": string(
                "Revision of the primary variant serving production traffic.", max_length=64
            ),
            "canaryRevision": string(
                "Revision of the primary variant being rolled out, if any.", max_length=64
            ),
            "canaryWeight": integer("Percent of primary traffic sent to the canary revision."),
            "ready": string("Ready/desired pods of the serving revisions, e.g. `2/2`.", max_length=32),
            "replicas": integer("Desired pods of the serving revisions."),
            "readyReplicas": integer("Ready pods of the serving revisions."),
            "url": string("In-cluster URL of the stable Service.", max_length=512),
            "variants": array("Per-variant observed state.", variant, max_items=16, map_keys=("name",)),
            "rollout": _rollout_status(),
            "traffic": _traffic()[2],
            "abTest": _ab_test_status(),
        },
    )


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name", "description": "Model name."},
    {"name": "Version", "type": "string", "jsonPath": ".spec.model.version", "description": "Model version."},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Summary phase."},
    {
        "name": "Canary",
        "type": "integer",
        "jsonPath": ".status.canaryWeight",
        "description": "Percent of traffic on the canary revision.",
    },
    {"name": "Ready", "type": "string", "jsonPath": ".status.ready", "description": "Ready/desired pods."},
    {
        "name": "Revision",
        "type": "string",
        "jsonPath": ".status.stableRevision",
        "priority": 1,
        "description": "Stable revision.",
    },
    {
        "name": "Message",
        "type": "string",
        "jsonPath": ".status.message",
        "priority": 1,
        "description": "Why the phase is what it is.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def openapi_schema() -> Node:
    return {
        "type": "object",
        "description": "ModelDeployment serves a machine-learning model with owned Deployments, Services and "
        "HorizontalPodAutoscalers, and ships new versions progressively.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this representation."},
            "kind": {"type": "string", "description": "Kind of this representation."},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        "x-kubernetes-validations": [
            rule(
                f"size(self.metadata.name) <= {MAX_NAME} && self.metadata.name.matches('{DNS_LABEL}')",
                f"metadata.name must be a DNS-1035 label of at most {MAX_NAME} characters "
                "(it prefixes the names of the Deployments and Services)",
                reason="FieldValueInvalid",
            ),
            rule(
                f"!has(self.spec.variants) || self.spec.variants.all(v, "
                f"size(self.metadata.name) + size(v.name) <= {MAX_VARIANT_NAME_SUM})",
                f"len(metadata.name) + len(variant name) must be at most {MAX_VARIANT_NAME_SUM}",
                field_path=".spec.variants",
            ),
        ],
    }


def crd() -> Node:
    """The CustomResourceDefinition manifest."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "modeldeploy", "app.kubernetes.io/part-of": "modeldeploy"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["all", "modeldeploy"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }
