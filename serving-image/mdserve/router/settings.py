"""Router settings from command-line flags, with ``MDROUTE_*`` environment variables as defaults."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class SettingsError(ValueError):
    """Settings that cannot work together; the message names the flag or variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the router process is configured with."""

    host: str = "0.0.0.0"
    """Listen address of the proxy port (``MDROUTE_HOST``)."""
    port: int = 8080
    """Proxy port (``MDROUTE_PORT``); also
    serves ``/-/`` endpoints: healthz, ready, routes, and ``/metrics``."""
    routes_file: Path | None = None
    """Route table file polled for changes (``--routes-file``, ``MDROUTE_ROUTES_FILE``)."""
    poll_interval: float = 0.2
    """Seconds between two looks at ``routes_file`` (``MDROUTE_POLL_INTERVAL``)."""
    configmap: str | None = None
    """ConfigMap watched through the Kubernetes API, usually ``<md-name>-routes`` (``MDROUTE_CONFIGMAP``)."""
    namespace: str | None = None
    """Namespace of the ConfigMap (``MDROUTE_NAMESPACE``); in-cluster default: the pod's namespace."""
    kubeconfig: Path | None = None
    """Kubeconfig for running outside a cluster (``--kubeconfig``, ``KUBECONFIG``); else in-cluster."""
    admin_port: int = 0
    """Port of the admin API (``PUT /-/routes``); 0 disables it (``MDROUTE_ADMIN_PORT``)."""
    admin_host: str = "127.0.0.1"
    """Listen address of the admin API (``MDROUTE_ADMIN_HOST``)."""
    admin_token: str | None = None
    """Bearer token the admin API requires (``MDROUTE_ADMIN_TOKEN`` or ``--admin-token-file``)."""
    backend_overrides: dict[str, str] = field(default_factory=dict)
    """Variant name, backend ``host:port`` or host → URL (``--backend-override``,
    ``MDROUTE_BACKEND_OVERRIDES`` as a comma list)."""
    pool_size: int = 256
    """Most concurrent upstream connections per backend (``MDROUTE_POOL_SIZE``)."""
    keepalive_seconds: float = 4.0
    """Idle time after which a pooled upstream connection is closed (``MDROUTE_KEEPALIVE_SECONDS``)."""
    max_body_bytes: int = 64 << 20
    """Largest request body accepted; bigger ones get 413 (``MDROUTE_MAX_BODY_BYTES``)."""
    shadow_max_inflight: int = 256
    """Shadow copies in flight at once per variant; more are dropped and counted
    (``MDROUTE_SHADOW_MAX_INFLIGHT``)."""
    feedback_memory: int = 100_000
    """Request ids whose variant is remembered so their feedback goes to the same variant; 0 turns
    the memory off (``MDROUTE_FEEDBACK_MEMORY``)."""
    access_log: bool = False
    """Log every request (``MDROUTE_ACCESS_LOG=true``); off by default for speed."""
    log_level: str = "INFO"
    """Python log level (``MDROUTE_LOG_LEVEL``)."""


def _parse_overrides(items: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, url = part.partition("=")
            if not sep or not key or not url.startswith(("http://", "https://")):
                raise SettingsError(f"backend override {part!r} must look like name=http://host:port")
            overrides[key] = url
    return overrides


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Settings:
    """Build ``Settings`` from ``argv`` (without the program name) and ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(prog="mdserve router", description="modeldeploy traffic router")
    p.add_argument("--host", default=env.get("MDROUTE_HOST", "0.0.0.0"))
    p.add_argument("--port", type=int, default=int(env.get("MDROUTE_PORT", "8080")))
    p.add_argument("--routes-file", type=Path, default=env.get("MDROUTE_ROUTES_FILE") or None)
    p.add_argument("--poll-interval", type=float, default=float(env.get("MDROUTE_POLL_INTERVAL", "0.2")))
    p.add_argument("--configmap", default=env.get("MDROUTE_CONFIGMAP") or None)
    p.add_argument("--namespace", default=env.get("MDROUTE_NAMESPACE") or None)
    kubeconfig = env.get("KUBECONFIG", "").split(os.pathsep)[0]  # the first file of a KUBECONFIG list
    p.add_argument("--kubeconfig", type=Path, default=kubeconfig or None)
    p.add_argument("--admin-port", type=int, default=int(env.get("MDROUTE_ADMIN_PORT", "0")))
    p.add_argument("--admin-host", default=env.get("MDROUTE_ADMIN_HOST", "127.0.0.1"))
    p.add_argument("--admin-token-file", type=Path, default=None)
    p.add_argument("--backend-override", action="append", default=[], metavar="NAME=URL")
    p.add_argument("--pool-size", type=int, default=int(env.get("MDROUTE_POOL_SIZE", "256")))
    p.add_argument(
        "--keepalive-seconds", type=float, default=float(env.get("MDROUTE_KEEPALIVE_SECONDS", "4"))
    )
    p.add_argument(
        "--max-body-bytes", type=int, default=int(env.get("MDROUTE_MAX_BODY_BYTES", str(64 << 20)))
    )
    p.add_argument(
        "--shadow-max-inflight", type=int, default=int(env.get("MDROUTE_SHADOW_MAX_INFLIGHT", "256"))
    )
    p.add_argument(
        "--feedback-memory", type=int, default=int(env.get("MDROUTE_FEEDBACK_MEMORY", "100000"))
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        default=env.get("MDROUTE_ACCESS_LOG", "").lower() in ("1", "true", "yes"),
    )
    p.add_argument("--log-level", default=env.get("MDROUTE_LOG_LEVEL", "INFO"))
    a = p.parse_args(list(argv))

    token = env.get("MDROUTE_ADMIN_TOKEN") or None
    if a.admin_token_file is not None:
        token = a.admin_token_file.read_text().strip() or None
    overrides = _parse_overrides([env.get("MDROUTE_BACKEND_OVERRIDES", ""), *a.backend_override])
    s = Settings(
        host=a.host,
        port=a.port,
        routes_file=a.routes_file,
        poll_interval=a.poll_interval,
        configmap=a.configmap,
        namespace=a.namespace,
        kubeconfig=a.kubeconfig,
        admin_port=a.admin_port,
        admin_host=a.admin_host,
        admin_token=token,
        backend_overrides=overrides,
        pool_size=a.pool_size,
        keepalive_seconds=a.keepalive_seconds,
        max_body_bytes=a.max_body_bytes,
        shadow_max_inflight=a.shadow_max_inflight,
        feedback_memory=a.feedback_memory,
        access_log=a.access_log,
        log_level=a.log_level.upper(),
    )
    _check(s)
    return s


def _check(s: Settings) -> None:
    if s.routes_file is not None and s.configmap is not None:
        raise SettingsError("give either --routes-file or --configmap (MDROUTE_CONFIGMAP), not both")
    if s.routes_file is None and s.configmap is None and not s.admin_port:
        raise SettingsError("no route source: give --routes-file, --configmap or --admin-port")
    if s.admin_port and not s.admin_token:
        raise SettingsError("the admin API needs a token: set MDROUTE_ADMIN_TOKEN or --admin-token-file")
    if not 0.01 <= s.poll_interval <= 60:
        raise SettingsError("--poll-interval must be between 0.01 and 60 seconds")
    if s.pool_size < 1 or s.shadow_max_inflight < 0 or s.max_body_bytes < 1:
        raise SettingsError("--pool-size, --max-body-bytes must be positive, --shadow-max-inflight >= 0")
    if not 0 <= s.feedback_memory <= 100_000_000:
        raise SettingsError("--feedback-memory must be between 0 and 100000000 request ids")
    for port in (s.port, s.admin_port):
        if not 0 <= port <= 65535:
            raise SettingsError(f"port {port} out of range")
