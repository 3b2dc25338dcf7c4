"""Deterministic names, labels and revision ids of everything the operator creates."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modeldeploy.api.schema import API_VERSION, GROUP, KIND

MANAGER = "modeldeploy"
"""Value of app.kubernetes.io/managed-by on every child, and the server-side apply field manager."""
LABEL_MD = f"{GROUP}/modeldeployment"
LABEL_VARIANT = f"{GROUP}/variant"
LABEL_REVISION = f"{GROUP}/revision"
ANNOTATION_HASH = f"{GROUP}/applied-hash"
"""Hash of the last applied manifest: a child whose annotation differs is re-applied (removed fields)."""
COMPONENT_SERVER = "model-server"
REVISION_LEN = 8


def managed_selector(md_name: str) -> str:
    """Label selector of every child of one ModelDeployment."""
    return f"app.kubernetes.io/managed-by={MANAGER},{LABEL_MD}={md_name}"


def workload_name(md_name: str, variant: str, revision: str) -> str:
    """Deployment, per-revision Service and HPA share this name."""
    return f"{md_name}-{variant}-{revision}"


def stable_service_name(md_name: str) -> str:
    return md_name


def base_labels(md_name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "mdserve",
        "app.kubernetes.io/instance": md_name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "modeldeploy",
        "app.kubernetes.io/managed-by": MANAGER,
        LABEL_MD: md_name,
    }


def selector_labels(md_name: str, variant: str, revision: str) -> dict[str, str]:
    """Pod selector of one revision of one variant (immutable on a Deployment: revision in the name)."""
    return {"app.kubernetes.io/instance": md_name, LABEL_VARIANT: variant, LABEL_REVISION: revision}


def owner_reference(md: dict[str, Any]) -> dict[str, Any]:
    """controller=true so the garbage collector deletes children with their ModelDeployment."""
    meta = md["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def stable_hash(value: Any, length: int = REVISION_LEN) -> str:
    """Short content hash of JSON-able data, independent of dict ordering."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]
