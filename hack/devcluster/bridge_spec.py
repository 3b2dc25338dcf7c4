"""The local process standing in for a Deployment's pods: argv, env, port. Pure but `resolve_executable`.

kwok makes Pods Running without running anything; the pod bridge runs one real process per scaled-up
Deployment instead, built from the pod template's first container as a kubelet would (env, `$(VAR)`
expansion, downward API for the fields a process can know locally), but listening on a loopback port.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from devcluster.paths import REPO_ROOT, cache_dir

Obj = dict[str, Any]
Key = tuple[str, str]
"""(namespace, name) of a Deployment."""

SERVER_PORT_ENV = "MDSERVE_HTTP_PORT"
ROUTER_PORT_ENV = "MDROUTE_PORT"
DEFAULT_PORT = 8080
"""What mdserve and the router listen on when nothing says otherwise."""
LOCAL_HOST = "127.0.0.1"
_PYTHONS = {"python", "python3", f"python3.{sys.version_info.minor}"}
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class SpecError(ValueError):
    """The pod template cannot be run locally; the message says why (shown in the process status)."""


@dataclass(frozen=True)
class ProcessSpec:
    """How to run the stand-in process of one Deployment (port not yet chosen)."""

    namespace: str
    """Namespace of the Deployment."""
    name: str
    """Name of the Deployment (also used as the process's pod name)."""
    argv: list[str]
    """Resolved command + args, `$(VAR)` expanded."""
    env: dict[str, str]
    """The container's env as the kubelet would set it, before the port and host are replaced."""
    port_env: str
    """Variable that carries the listen port: `MDSERVE_HTTP_PORT` or, for the router, `MDROUTE_PORT`."""
    container_port: int
    """Port the container listens on in the cluster; Services targeting it are mapped to the local port."""
    port_names: dict[str, int]
    """Named container ports, for Services whose targetPort is a name."""
    labels: dict[str, str]
    """Pod template labels (Service selectors match these)."""
    annotations: dict[str, str]
    """Pod template annotations (prometheus.io/scrape, prometheus.io/path)."""
    readiness_path: str | None
    """HTTP path of the readiness probe, if the container has an httpGet one."""
    grace_seconds: float
    """terminationGracePeriodSeconds: SIGTERM, then SIGKILL after this long."""
    template_hash: str
    """Digest of everything above that changes the process; a new value means restart."""
    skipped: list[str] = field(default_factory=list)
    """Env entries that could not be resolved locally (logged, not fatal)."""
    failure_threshold: int = 3
    """readinessProbe.failureThreshold: probes failed in a row before a ready process is not ready."""
    success_threshold: int = 1
    """readinessProbe.successThreshold."""
    probe_timeout: float = 1.0
    """readinessProbe.timeoutSeconds."""

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def is_router(self) -> bool:
        return self.port_env == ROUTER_PORT_ENV

    def launch(self, port: int, extra_env: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
        """argv and env for a process listening on 127.0.0.1:`port`."""
        host_env = "MDROUTE_HOST" if self.is_router else "MDSERVE_HOST"
        env = {**self.env, **(extra_env or {}), self.port_env: str(port), host_env: LOCAL_HOST}
        return _replace_port_flag(self.argv, port), env

    def with_env(self, extra: dict[str, str]) -> ProcessSpec:
        """The same spec with more env (e.g. the router's backend overrides); the hash covers them."""
        if not extra:
            return self
        env = {**self.env, **extra}
        digest = _digest([self.template_hash, sorted(extra.items())])
        return replace(self, env=env, template_hash=digest)


def wants_process(deployment: Obj) -> bool:
    """A Deployment gets a process while it is not being deleted and wants >0 replicas. Not "has a ready
    replica": the bridge makes its pods Ready only once the process answers (bridge_pods.py)."""
    meta, spec = deployment.get("metadata", {}), deployment.get("spec", {})
    if meta.get("deletionTimestamp"):
        return False
    return bool(spec.get("replicas", 1))


def build_spec(deployment: Obj, python: str = sys.executable) -> ProcessSpec:
    """The process spec of a Deployment's first container; raises SpecError when it cannot run locally."""
    meta = deployment["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    template = deployment.get("spec", {}).get("template", {})
    containers = template.get("spec", {}).get("containers") or []
    if not containers:
        raise SpecError("pod template has no containers")
    c = containers[0]
    env, skipped = _container_env(c.get("env") or [], namespace, name)
    words = [*(c.get("command") or []), *(c.get("args") or [])]
    if not c.get("command"):
        raise SpecError(f"container {c.get('name')!r} has no command: an image entrypoint cannot run locally")
    argv = [_expand(w, env) for w in words]
    argv = [*resolve_executable(argv[0], python), *argv[1:]]
    port_env = ROUTER_PORT_ENV if (ROUTER_PORT_ENV in env or "router" in argv[1:3]) else SERVER_PORT_ENV
    port_names = {p["name"]: int(p["containerPort"]) for p in c.get("ports") or [] if p.get("name")}
    container_port = _listen_port(argv, env, port_env, c.get("ports") or [])
    readiness = c.get("readinessProbe") or {}
    probe = readiness.get("httpGet") or {}
    tmeta = template.get("metadata") or {}
    grace = float(template.get("spec", {}).get("terminationGracePeriodSeconds", 30))
    digest = _digest([namespace, name, template, python])
    return ProcessSpec(namespace, name, argv, env, port_env, container_port, port_names,
                       dict(tmeta.get("labels") or {}), dict(tmeta.get("annotations") or {}),
                       probe.get("path"), grace, digest, skipped,
                       int(readiness.get("failureThreshold") or 3),
                       int(readiness.get("successThreshold") or 1),
                       float(readiness.get("timeoutSeconds") or 1))


def resolve_executable(command: str, python: str = sys.executable) -> list[str]:
    """The local argv prefix for a container's executable (`mdserve`, `python`, or anything on PATH)."""
    if command == "mdserve":
        for candidate in (Path(python).parent / "mdserve", REPO_ROOT / ".venv" / "bin" / "mdserve"):
            if candidate.exists():
                return [str(candidate)]
        return [python, "-m", "mdserve"]
    if command == "mdroute":  # the Go router, built by hack/build-router.sh into the binaries cache
        built = cache_dir() / "bin" / "mdroute"
        if not built.exists():
            raise SpecError(f"{built} is not built: run `make binaries` (hack/build-router.sh)")
        return [str(built)]
    if command in _PYTHONS:
        return [python]  # the project's interpreter: the image's python has the same packages
    if "/" in command:
        if not Path(command).exists():
            raise SpecError(f"executable {command} does not exist on this machine")
        return [command]
    found = shutil.which(command)
    if found is None:
        raise SpecError(f"executable {command!r} is not on PATH")
    return [found]


def _container_env(items: list[Obj], namespace: str, name: str) -> tuple[dict[str, str], list[str]]:
    # The downward API fields a local process can know; the Deployment stands in for its pod.
    fields = {"metadata.name": name, "metadata.namespace": namespace, "status.podIP": LOCAL_HOST,
              "status.hostIP": LOCAL_HOST, "spec.nodeName": "localhost"}
    env: dict[str, str] = {}
    skipped: list[str] = []
    for item in items:
        key = item["name"]
        if "value" in item or "valueFrom" not in item:
            env[key] = _expand(str(item.get("value", "")), env)
            continue
        ref = (item["valueFrom"].get("fieldRef") or {}).get("fieldPath")
        if ref in fields:
            env[key] = fields[ref]
        else:
            source = json.dumps(item["valueFrom"], sort_keys=True)
            skipped.append(f"{key}: valueFrom {source} is not resolved locally: variable left unset")
    return env, skipped


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined variables are replaced, `$$` escapes, unknown refs stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, text)


def _listen_port(argv: list[str], env: dict[str, str], port_env: str, ports: list[Obj]) -> int:
    for i, word in enumerate(argv):
        if word == "--port" and i + 1 < len(argv) and argv[i + 1].isdigit():
            return int(argv[i + 1])
        if word.startswith("--port=") and word[7:].isdigit():
            return int(word[7:])
    if env.get(port_env, "").isdigit():
        return int(env[port_env])
    if ports:
        return int(ports[0]["containerPort"])
    return DEFAULT_PORT


def _replace_port_flag(argv: list[str], port: int) -> list[str]:
    out = list(argv)
    for i, word in enumerate(out):
        if word == "--port" and i + 1 < len(out):
            out[i + 1] = str(port)
        elif word.startswith("--port="):
            out[i] = f"--port={port}"
    return out


def _digest(value: object) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
