"""How to reach the Kubernetes API: in-cluster ServiceAccount or a kubeconfig file.

Only the plain cases are supported (server URL, CA, bearer token or token file, client
certificate, basic auth); exec and auth-provider plugins are refused with a clear error, since
the router runs in-cluster and local harnesses use certificate kubeconfigs.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeConfigError(ValueError):
    """The API cannot be reached with this configuration; the message says what is missing."""


@dataclass(frozen=True)
class KubeAccess:
    """Connection parameters for the API server."""

    server: str
    """Base URL, e.g. ``https://10.96.0.1:443``."""
    ca_file: str | None = None
    """PEM file of the CA that signed the server certificate."""
    ca_data: bytes | None = None
    """PEM bytes of that CA (kubeconfig ``certificate-authority-data``)."""
    insecure: bool = False
    """Skip server certificate verification (``insecure-skip-tls-verify``)."""
    token: str | None = None
    """Static bearer token."""
    token_file: str | None = None
    """File holding a bearer token; re-read on every connection because projected tokens rotate."""
    client_cert: bytes | None = None
    """PEM client certificate."""
    client_key: bytes | None = None
    """PEM client key."""
    basic: tuple[str, str] | None = None
    """User name and password."""
    namespace: str | None = None
    """Default namespace (the pod's, or the kubeconfig context's)."""

    def auth_headers(self) -> dict[str, str]:
        """Authorization header for a new connection (blocking file read; call off the loop)."""
        token = self.token
        if self.token_file:
            token = Path(self.token_file).read_text().strip()
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self.basic:
            raw = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}

    def ssl_context(self) -> ssl.SSLContext | bool:
        """TLS settings for aiohttp (blocking file reads; call off the loop)."""
        if not self.server.startswith("https://"):
            return False
        ctx = ssl.create_default_context(
            cafile=self.ca_file, cadata=self.ca_data.decode() if self.ca_data else None
        )
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert and self.client_key:
            # ssl only loads client certificates from files; keep them on disk just long enough.
            with tempfile.TemporaryDirectory(prefix="mdroute-") as tmp:
                cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
                cert.write_bytes(self.client_cert)
                key.touch(mode=0o600)
                key.write_bytes(self.client_key)
                ctx.load_cert_chain(str(cert), str(key))
        return ctx


def in_cluster(env: Mapping[str, str], sa_dir: Path = SA_DIR) -> KubeAccess:
    """Access from inside a pod, through the ServiceAccount mount."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise KubeConfigError("not in a cluster (KUBERNETES_SERVICE_HOST unset) and no --kubeconfig given")
    token = sa_dir / "token"
    if not token.exists():
        raise KubeConfigError(f"no ServiceAccount token at {token}: is automountServiceAccountToken off?")
    ns_file = sa_dir / "namespace"
    bracketed = f"[{host}]" if ":" in host else host
    return KubeAccess(
        server=f"https://{bracketed}:{port}",
        ca_file=str(sa_dir / "ca.crt"),
        token_file=str(token),
        namespace=ns_file.read_text().strip() if ns_file.exists() else None,
    )


def _named(items: Any, name: str, kind: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(kind)
            return body if isinstance(body, dict) else {}
    raise KubeConfigError(f"kubeconfig has no {kind} named {name!r}")


def _bytes(section: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    data = section.get(f"{key}-data")
    if data:
        return base64.b64decode(data)
    path = section.get(key)
    if path:
        return (base / os.path.expanduser(str(path))).read_bytes()
    return None


def from_kubeconfig_doc(doc: Mapping[str, Any], base: Path, context: str | None = None) -> KubeAccess:
    """Access described by a parsed kubeconfig (relative paths resolve against ``base``)."""
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise KubeConfigError("kubeconfig has no current-context")
    ctx = _named(doc.get("contexts"), ctx_name, "context")
    cluster = _named(doc.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(doc.get("users"), ctx.get("user", ""), "user") if ctx.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        raise KubeConfigError("kubeconfig users with exec or auth-provider plugins are not supported")
    server = cluster.get("server")
    if not server:
        raise KubeConfigError(f"cluster of context {ctx_name!r} has no server")
    ca_path = cluster.get("certificate-authority")
    token_file = user.get("tokenFile")
    return KubeAccess(
        server=str(server).rstrip("/"),
        ca_file=str(base / ca_path) if ca_path and not cluster.get("certificate-authority-data") else None,
        ca_data=base64.b64decode(cluster["certificate-authority-data"])
        if cluster.get("certificate-authority-data")
        else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=user.get("token"),
        token_file=str(base / token_file) if token_file else None,
        client_cert=_bytes(user, "client-certificate", base),
        client_key=_bytes(user, "client-key", base),
        basic=(user["username"], user.get("password", "")) if user.get("username") else None,
        namespace=ctx.get("namespace"),
    )


def load_access(kubeconfig: Path | None, env: Mapping[str, str]) -> KubeAccess:
    """In-cluster access, or the kubeconfig's current context when one is given (blocking)."""
    if kubeconfig is None:
        return in_cluster(env)
    try:
        doc = yaml.safe_load(kubeconfig.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KubeConfigError(f"cannot read kubeconfig {kubeconfig}: {exc}") from exc
    if not isinstance(doc, dict):
        raise KubeConfigError(f"kubeconfig {kubeconfig} is not a mapping")
    return from_kubeconfig_doc(doc, kubeconfig.parent)
