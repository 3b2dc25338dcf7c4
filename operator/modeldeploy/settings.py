"""Operator settings from `MODELDEPLOY_*` env vars (docs/CONTRACTS.md), overridable by command-line flags."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Literal

DEFAULT_SERVING_IMAGE = "ghcr.io/modeldeploy/mdserve:0.1.0"
DEFAULT_ROUTER_IMAGE = "ghcr.io/modeldeploy/mdroute:0.1.0"


@dataclass(frozen=True)
class Settings:
    """Everything the operator reads from its environment."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means cluster-wide (MODELDEPLOY_NAMESPACES, comma list)."""
    serving_image: str = DEFAULT_SERVING_IMAGE
    """Default model server image (MODELDEPLOY_SERVING_IMAGE)."""
    router_image: str = DEFAULT_ROUTER_IMAGE
    """Image of the `router` traffic provider, the Go `mdroute` (MODELDEPLOY_ROUTER_IMAGE)."""
    prometheus_url: str = ""
    """Prometheus base URL for analysis (MODELDEPLOY_PROMETHEUS_URL); used by the analysis engine."""
    prometheus_timeout: float = 10.0
    """Prometheus query timeout in seconds (MODELDEPLOY_PROMETHEUS_TIMEOUT)."""
    prometheus_auth_secret: str = ""
    """`namespace/name` of a Secret with key `token` (Bearer) or of type `kubernetes.io/basic-auth`
    (MODELDEPLOY_PROMETHEUS_AUTH_SECRET)."""
    log_format: Literal["json", "text"] = "text"
    """Log format (MODELDEPLOY_LOG_FORMAT)."""
    log_level: str = "INFO"
    """Log level (MODELDEPLOY_LOG_LEVEL)."""
    health_port: int = 8081
    """Port of the liveness endpoint GET /healthz (MODELDEPLOY_HEALTH_PORT); 0 disables it."""
    metrics_port: int = 9090
    """Port of the Prometheus /metrics endpoint (MODELDEPLOY_METRICS_PORT); 0 disables it."""
    workers: int = 4
    """Reconcile worker threads (MODELDEPLOY_WORKERS)."""
    resync_seconds: float = 300.0
    """Every ModelDeployment is reconciled at least this often (MODELDEPLOY_RESYNC_SECONDS)."""
    check_model_uri: bool = True
    """HEAD-check http(s) model URIs before rolling them out (MODELDEPLOY_CHECK_MODEL_URI)."""
    uri_check_timeout: float = 5.0
    """Timeout of that check in seconds (MODELDEPLOY_URI_CHECK_TIMEOUT)."""
    extra: dict[str, str] = field(default_factory=dict)
    """Unrecognised MODELDEPLOY_* variables, kept for the engines added later."""


_ENV = {
    "namespaces": "MODELDEPLOY_NAMESPACES",
    "serving_image": "MODELDEPLOY_SERVING_IMAGE",
    "router_image": "MODELDEPLOY_ROUTER_IMAGE",
    "prometheus_url": "MODELDEPLOY_PROMETHEUS_URL",
    "prometheus_timeout": "MODELDEPLOY_PROMETHEUS_TIMEOUT",
    "prometheus_auth_secret": "MODELDEPLOY_PROMETHEUS_AUTH_SECRET",
    "log_format": "MODELDEPLOY_LOG_FORMAT",
    "log_level": "MODELDEPLOY_LOG_LEVEL",
    "health_port": "MODELDEPLOY_HEALTH_PORT",
    "metrics_port": "MODELDEPLOY_METRICS_PORT",
    "workers": "MODELDEPLOY_WORKERS",
    "resync_seconds": "MODELDEPLOY_RESYNC_SECONDS",
    "check_model_uri": "MODELDEPLOY_CHECK_MODEL_URI",
    "uri_check_timeout": "MODELDEPLOY_URI_CHECK_TIMEOUT",
}


def _convert(name: str, raw: str) -> object:
    if name == "namespaces":
        return tuple(ns.strip() for ns in raw.split(",") if ns.strip())
    if name in ("health_port", "metrics_port", "workers"):
        return int(raw)
    if name in ("prometheus_timeout", "resync_seconds", "uri_check_timeout"):
        return float(raw)
    if name == "check_model_uri":
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if name == "log_format":
        if raw not in ("json", "text"):
            raise ValueError(f"MODELDEPLOY_LOG_FORMAT must be json or text, not {raw!r}")
        return raw
    return raw


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for name, var in _ENV.items():
        if var in env and env[var] != "":
            values[name] = _convert(name, env[var])
    known = set(_ENV.values())
    extra = {k: v for k, v in env.items() if k.startswith("MODELDEPLOY_") and k not in known}
    return Settings(**values, extra=extra)  # type: ignore[arg-type]


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One `--kebab-case` flag per setting; flags win over env vars."""
    for f in fields(Settings):
        if f.name == "extra":
            continue
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f.name, default=None, help=f"overrides {_ENV[f.name]}"
        )


def with_flags(base: Settings, args: argparse.Namespace) -> Settings:
    updates = {
        name: _convert(name, str(value))
        for name, value in vars(args).items()
        if name in _ENV and value is not None
    }
    return replace(base, **updates)  # type: ignore[arg-type]
