"""Where bridged processes can be reached: Service map, router overrides, Prometheus file_sd (+ atomic write).

The map plays kube-proxy and cluster DNS for local callers: it turns an in-cluster Service address into
the loopback address(es) of the processes standing in for the pods that Service selects.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devcluster.bridge_spec import LOCAL_HOST, Key, Obj, ProcessSpec

SERVICE_SUFFIXES = ("svc", "svc.cluster.local")


@dataclass(frozen=True)
class ServiceRoute:
    """One port of one Service and the local addresses behind it."""

    namespace: str
    """Namespace of the Service."""
    service: str
    """Name of the Service."""
    port: int
    """The Service port (what in-cluster clients dial)."""
    addresses: tuple[str, ...]
    """`127.0.0.1:<port>` of every bridged process whose pod template the Service selects, sorted."""
    deployments: tuple[str, ...]
    """Names of those Deployments, in the same order."""


Bridged = Mapping[Key, tuple[ProcessSpec, int]]
"""Each bridged Deployment's spec and local port."""


def service_routes(services: Iterable[Obj], bridged: Bridged) -> list[ServiceRoute]:
    """Routes of every Service port that selects at least one bridged Deployment and targets its port."""
    routes: list[ServiceRoute] = []
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec") or {}
        selector: dict[str, str] = spec.get("selector") or {}
        if not selector or spec.get("type") == "ExternalName":
            continue  # no selector: endpoints are managed by someone else, nothing of ours behind it
        ns = meta["namespace"]
        members = sorted(
            (p, s.name) for (dns, _), (s, p) in bridged.items()
            if dns == ns and all(s.labels.get(k) == v for k, v in selector.items())
        )
        for sp in spec.get("ports") or []:
            target = sp.get("targetPort", sp["port"])
            hits = [(p, name) for p, name in members if _targets(bridged[(ns, name)][0], target)]
            if hits:
                routes.append(ServiceRoute(ns, meta["name"], int(sp["port"]),
                                           tuple(f"{LOCAL_HOST}:{p}" for p, _ in hits),
                                           tuple(name for _, name in hits)))
    return sorted(routes, key=lambda r: (r.namespace, r.service, r.port))


def _targets(spec: ProcessSpec, target: int | str) -> bool:
    if isinstance(target, str) and not target.isdigit():
        return spec.port_names.get(target) == spec.container_port
    return int(target) == spec.container_port


def host_keys(route: ServiceRoute, short: bool) -> list[str]:
    """The in-cluster `host:port` spellings of a route; `short` adds the namespace-relative `<svc>:<port>`."""
    hosts = [f"{route.service}.{route.namespace}.{suffix}" for suffix in SERVICE_SUFFIXES]
    if short:
        hosts.append(route.service)
    keys = [f"{h}:{route.port}" for h in hosts]
    if route.port == 80:
        keys += hosts  # http://svc.ns.svc has no port in its netloc
    return keys


def map_document(routes: list[ServiceRoute]) -> dict[str, list[str]]:
    """The JSON map file: `<svc>.<ns>.svc[.cluster.local]:<port>` (and `<svc>:<port>` when that name is unique
    across the watched namespaces) to the local addresses."""
    namespaces_of: dict[str, set[str]] = {}
    for r in routes:
        namespaces_of.setdefault(r.service, set()).add(r.namespace)
    doc: dict[str, list[str]] = {}
    for r in routes:
        for key in host_keys(r, short=len(namespaces_of[r.service]) == 1):
            doc[key] = list(r.addresses)
    return dict(sorted(doc.items()))


def router_overrides(routes: list[ServiceRoute], namespace: str) -> str:
    """`MDROUTE_BACKEND_OVERRIDES` for a router in `namespace`: every Service host (short names only for its
    own namespace) to the first local address; the router takes one URL per backend."""
    parts = []
    for r in routes:
        for key in host_keys(r, short=r.namespace == namespace):
            parts.append(f"{key}=http://{r.addresses[0]}")
    return ",".join(sorted(parts))


def file_sd_document(bridged: Bridged) -> list[dict[str, Any]]:
    """Prometheus file_sd targets: one per bridged process that does not opt out of scraping."""
    groups: list[dict[str, Any]] = []
    for (ns, name), (spec, port) in sorted(bridged.items()):
        if spec.annotations.get("prometheus.io/scrape", "true").lower() == "false":
            continue
        labels = {"namespace": ns, "pod": name, "deployment": name,
                  "variant": _label(spec, "variant", "MDSERVE_VARIANT"),
                  "revision": _label(spec, "revision", "MDSERVE_REVISION"),
                  "component": spec.labels.get("app.kubernetes.io/component", "")}
        path = spec.annotations.get("prometheus.io/path")
        if path:
            labels["__metrics_path__"] = path
        groups.append({"targets": [f"{LOCAL_HOST}:{port}"], "labels": {k: v for k, v in labels.items() if v}})
    return groups


def _label(spec: ProcessSpec, suffix: str, env: str) -> str:
    # modeldeploy labels its pods `<group>/variant`; any `*/variant` label works, then the server's own env.
    for key, value in sorted(spec.labels.items()):
        if key == suffix or key.endswith(f"/{suffix}"):
            return value
    return spec.env.get(env, "")


def write_json_atomic(path: Path, document: object) -> bool:
    """Replace `path` by `document` (temp + rename: readers never see half a file); False if unchanged."""
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
