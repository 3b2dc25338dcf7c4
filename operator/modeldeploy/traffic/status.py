"""`status.traffic`: the split in effect, read back from the applied objects rather than from the spec. Pure.

router: the table in ConfigMap `<md>-routes` (the router applies it within a second, or keeps its previous
one only if it were invalid, which build_route_table rules out); gateway-api: the weighted rule of the
HTTPRoute, plus what its Gateways say about it; none: ready pods per revision (kube-proxy spreads connections
over ready endpoints, whatever the configured weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mdserve.router.table import ROUTES_KEY, RouteTableError, parse_table
from modeldeploy.render.naming import LABEL_REVISION, LABEL_VARIANT
from modeldeploy.traffic.httproute import SPLIT_RULE, route_problem
from modeldeploy.traffic.names import httproute_name, routes_configmap_name
from modeldeploy.traffic.spec import Provider

NONE_MESSAGE = "provider none: the split follows ready pods per revision; configured weights are not honoured"


def _entry(backend: str, weight: int, total: int) -> dict[str, Any]:
    variant, _, revision = backend.rpartition("-")
    return {
        "backend": backend,
        "variant": variant,
        "revision": revision,
        "weight": weight,
        "percent": round(100 * weight / total, 2) if total else 0.0,
    }


def _entries(pairs: list[tuple[str, int]]) -> list[dict[str, Any]]:
    total = sum(w for _, w in pairs)
    return [_entry(name, w, total) for name, w in pairs]


def _router(md_name: str, configmap: Mapping[str, Any] | None, router_ready: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"route": routes_configmap_name(md_name)}
    if configmap is None:
        return {**out, "weights": [], "message": "route table not written yet"}
    try:
        table = parse_table(str((configmap.get("data") or {}).get(ROUTES_KEY, "")))
    except RouteTableError as e:
        return {**out, "weights": [], "message": f"ConfigMap {out['route']}: {e}"}
    out["weights"] = _entries([(v.name, v.weight) for v in table.variants])
    out["tableVersion"] = table.version
    if not router_ready:
        out["message"] = f"router not ready: Service {md_name} still selects the primary's stable revision"
    return out


def _gateway(md_name: str, route: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"route": httproute_name(md_name)}
    if route is None:
        return {**out, "weights": [], "message": "HTTPRoute not created yet"}
    rules = (route.get("spec") or {}).get("rules", []) or []
    split = next((r for r in rules if r.get("name") == SPLIT_RULE), rules[-1] if rules else {})
    prefix = f"{md_name}-"
    pairs = [
        (str(ref["name"]).removeprefix(prefix), int(ref.get("weight", 1)))  # the API's default is 1
        for ref in split.get("backendRefs", []) or []
    ]
    out["weights"] = _entries(pairs)
    problem = route_problem(route)
    if problem:
        out["message"] = problem
    return out


def _none(md_name: str, deployments: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    pairs: list[tuple[str, int]] = []
    for _, dep in sorted(deployments.items()):
        labels = (dep.get("metadata") or {}).get("labels") or {}
        if labels.get("app.kubernetes.io/component") != "model-server":
            continue
        ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
        pairs.append((f"{labels.get(LABEL_VARIANT)}-{labels.get(LABEL_REVISION)}", ready))
    return {"route": md_name, "weights": _entries(pairs), "message": NONE_MESSAGE}


def traffic_status(
    md_name: str,
    provider: Provider,
    *,
    configmap: Mapping[str, Any] | None = None,
    httproute: Mapping[str, Any] | None = None,
    deployments: Mapping[str, Mapping[str, Any]] | None = None,
    router_ready: bool = False,
    problem: str | None = None,
) -> dict[str, Any]:
    """The `status.traffic` object. Pass the live (or just-applied) objects: `configmap` `<md>-routes` for
    router, `httproute` for gateway-api, the observed `deployments` (name -> object) for none. `problem` (a
    Ready=False message) is prefixed to the message: what is shown is still what serves."""
    if provider == "router":
        out = _router(md_name, configmap, router_ready)
    elif provider == "gateway-api":
        out = _gateway(md_name, httproute)
    else:
        out = _none(md_name, deployments or {})
    if problem:
        out["message"] = f"not applied: {problem}" + (f"; {out['message']}" if out.get("message") else "")
    return {"provider": provider, **out}
