"""The model server pod template (env per the MDSERVE_* contract, probes, hardened security context). Pure."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from modeldeploy.api.spec import EnvVar, ModelSpec, ServingSpec
from modeldeploy.render.hardening import (
    container_security_context,
    http_probe,
    pod_security_context,
)
from modeldeploy.render.naming import COMPONENT_SERVER, LABEL_REVISION, LABEL_VARIANT, base_labels

CONTAINER = "mdserve"
MODEL_MOUNT = "/mnt/models"


def model_location(uri: str) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """(URI the server sees, volume, volumeMount): `pvc://claim/path` is mounted read-only at /mnt/models."""
    if not uri.startswith("pvc://"):
        return uri, None, None
    parts = urlsplit(uri)
    claim = parts.netloc
    path = parts.path.lstrip("/")
    volume = {"name": "model-store", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
    mount = {"name": "model-store", "mountPath": MODEL_MOUNT, "readOnly": True}
    return f"{MODEL_MOUNT}/{path}".rstrip("/"), volume, mount


def _env(
    variant: str, revision: str, model: ModelSpec, uri: str, port: int, extra: tuple[EnvVar, ...]
) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "MDSERVE_MODEL_NAME", "value": model.name},
        {"name": "MDSERVE_MODEL_URI", "value": uri},
        {"name": "MDSERVE_MODEL_FORMAT", "value": model.format},
        {"name": "MDSERVE_MODEL_VERSION", "value": model.version},
        {"name": "MDSERVE_MODEL_SHA256", "value": model.sha256 or ""},
        {"name": "MDSERVE_QUANTIZATION", "value": model.quantization},
        {"name": "MDSERVE_VARIANT", "value": variant},
        {"name": "MDSERVE_REVISION", "value": revision},
        {"name": "MDSERVE_HTTP_PORT", "value": str(port)},
        {"name": "MDSERVE_HOST", "value": "0.0.0.0"},
        # The root filesystem is read-only: downloads, quantized artefacts and caches go to the emptyDir.
        {"name": "TMPDIR", "value": "/tmp"},
        {"name": "HOME", "value": "/tmp"},
    ]
    ours = {e["name"] for e in env}
    for e in extra:
        if e.name in ours:
            continue  # the contract variables are the operator's; a user override would desync labels/status
        env.append(e.model_dump(by_alias=True, exclude_none=True))
    return env


def build_pod_template(
    md_name: str, variant: str, revision: str, model: ModelSpec, serving: ServingSpec, default_image: str
) -> dict[str, Any]:
    port = serving.port
    uri, volume, mount = model_location(model.uri)
    labels = {
        **(serving.pod_labels or {}),
        **base_labels(md_name, COMPONENT_SERVER),
        "app.kubernetes.io/version": model.version,
        LABEL_VARIANT: variant,
        LABEL_REVISION: revision,
    }
    annotations = {
        **(serving.pod_annotations or {}),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": serving.image or default_image,
        "command": ["mdserve", "serve"],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": _env(variant, revision, model, uri, port, serving.env),
        # Loading or downloading a model can take minutes: the startup probe holds liveness off for up to 10
        # min.
        "startupProbe": http_probe("/v2/health/live", 5, 120),
        "readinessProbe": http_probe("/v2/health/ready", 5, 3),
        "livenessProbe": http_probe("/v2/health/live", 10, 3),
        # Gives endpoints controllers and proxies time to drop the pod before it stops accepting requests.
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if serving.image_pull_policy:
        container["imagePullPolicy"] = serving.image_pull_policy
    if serving.resources is not None:
        resources = serving.resources.model_dump(exclude_none=True)
        if resources:
            container["resources"] = resources
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if volume is not None and mount is not None:
        volumes.append(volume)
        container["volumeMounts"].append(mount)
    spec: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        "terminationGracePeriodSeconds": serving.termination_grace_period_seconds,
        # Model servers never call the Kubernetes API, and service links only pollute their environment.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(fs_group=True),
    }
    if serving.service_account_name:
        spec["serviceAccountName"] = serving.service_account_name
    if serving.node_selector:
        spec["nodeSelector"] = dict(serving.node_selector)
    if serving.tolerations:
        spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in serving.tolerations]
    if serving.affinity:
        spec["affinity"] = serving.affinity
    if serving.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s.name} for s in serving.image_pull_secrets]
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}
