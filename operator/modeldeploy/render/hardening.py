"""The shapes every pod the operator renders shares: HTTP probes on the `http` port and the restricted
Pod Security Standard (non-root, no privilege escalation, read-only root, no capabilities). Pure."""

from __future__ import annotations

from typing import Any

NONROOT_UID = 65532
"""The distroless `nonroot` user; images must run as it (the root filesystem is read-only)."""


def http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    """An HTTP GET probe on the container port named `http`."""
    return {
        "httpGet": {"path": path, "port": "http", "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
        "successThreshold": 1,
    }


def container_security_context() -> dict[str, Any]:
    """The container side of the restricted profile (a new dict: callers own what they get)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security_context(*, fs_group: bool) -> dict[str, Any]:
    """The pod side; `fs_group` makes mounted volumes (a model PVC) readable by the non-root user."""
    context: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": NONROOT_UID, "runAsGroup": NONROOT_UID}
    if fs_group:
        context["fsGroup"] = NONROOT_UID
    context["seccompProfile"] = {"type": "RuntimeDefault"}
    return context
