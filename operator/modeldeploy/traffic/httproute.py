"""The HTTPRoute (gateway.networking.k8s.io/v1) of provider `gateway-api`. Pure.

Rules, in order: one per pinning group (a `traffic.rules` entry: its headers ANDed in one match; a variant's
`match` list: one match per header, ORed), each to the target variant's serving revision, then the weighted
rule over every backend. Every backendRef carries an explicit weight: the API's default for an omitted weight
is 1, not 0. Header-matching rules win over the weighted one by the Gateway API's precedence (more header
matches first, then list order), so the router's "rules first, then the split" holds here as well; between
two pinning rules, one with more header conditions wins where the router would take the first listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modeldeploy.render.workload import with_hash
from modeldeploy.traffic.names import COMPONENT_ROUTE, httproute_name, meta
from modeldeploy.traffic.plan import Backend, Mirror, Pin, TrafficPlan
from modeldeploy.traffic.spec import Condition, GatewaySpec, ParentRef

API_VERSION = "gateway.networking.k8s.io/v1"
GATEWAY_GROUP = "gateway.networking.k8s.io"
SPLIT_RULE = "split"
FRACTION_DENOMINATOR = 10_000
"""Non-integer shadow percents become fractions of 10 000 (the spec allows two decimals)."""


def _all_paths() -> dict[str, Any]:
    # A fresh dict each time: shared sub-objects would alias across rules (and YAML dumps show anchors).
    return {"path": {"type": "PathPrefix", "value": "/"}}


def _ref(b: Backend, weight: int) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": b.service, "port": b.port, "weight": weight}


def _header(c: Condition) -> dict[str, Any]:
    if c.regex is not None:
        return {"type": "RegularExpression", "name": c.name, "value": c.regex}
    return {"type": "Exact", "name": c.name, "value": c.value or ""}


def _mirror(m: Mirror, plan: TrafficPlan) -> dict[str, Any]:
    b = plan.backend(m.backend)
    ref = {"group": "", "kind": "Service", "name": b.service, "port": b.port}
    mirror: dict[str, Any] = {"backendRef": ref}
    if float(m.percent).is_integer():
        mirror["percent"] = int(m.percent)
    else:
        mirror["fraction"] = {"numerator": round(m.percent * 100), "denominator": FRACTION_DENOMINATOR}
    return {"type": "RequestMirror", "requestMirror": mirror}


def _rule(name: str, matches: list[dict[str, Any]], refs: list[dict[str, Any]],
          filters: list[dict[str, Any]]) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": name, "matches": matches, "backendRefs": refs}
    if filters:
        rule["filters"] = filters
    return rule


def _groups(pins: Sequence[Pin]) -> list[list[Pin]]:
    order: dict[str, list[Pin]] = {}
    for p in pins:
        order.setdefault(p.group, []).append(p)
    return list(order.values())


def _parent_ref(ref: ParentRef) -> dict[str, Any]:
    out: dict[str, Any] = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": ref.name}
    if ref.namespace:
        out["namespace"] = ref.namespace
    if ref.section_name:
        out["sectionName"] = ref.section_name
    if ref.port is not None:
        out["port"] = ref.port
    return out


def build_httproute(md: Mapping[str, Any], plan: TrafficPlan, gateway: GatewaySpec) -> dict[str, Any]:
    """validate.traffic_errors must be empty (parentRefs present, at most 16 rules and backends)."""
    rules: list[dict[str, Any]] = []
    for group in _groups(plan.pins):
        target = plan.backend(group[0].backend)
        # A request pinned to the shadowed variant is not mirrored to it again (the router's rule too).
        filters = [_mirror(m, plan) for m in plan.mirrors if m.variant != target.variant]
        matches = [{**_all_paths(), "headers": [_header(c) for c in p.headers]} for p in group]
        rules.append(_rule(group[0].group, matches, [_ref(target, 1)], filters))
    rules.append(
        _rule(
            SPLIT_RULE,
            [_all_paths()],
            [_ref(b, b.weight) for b in plan.backends],
            [_mirror(m, plan) for m in plan.mirrors],
        )
    )
    spec: dict[str, Any] = {"parentRefs": [_parent_ref(r) for r in gateway.parent_refs], "rules": rules}
    if gateway.hostnames:
        spec["hostnames"] = list(gateway.hostnames)
    md_name = md["metadata"]["name"]
    return with_hash({"apiVersion": API_VERSION, "kind": "HTTPRoute",
                      "metadata": meta(md, httproute_name(md_name), COMPONENT_ROUTE), "spec": spec})


def route_problem(live: Mapping[str, Any] | None) -> str | None:
    """Why a Gateway does not serve the applied HTTPRoute (a parent's Accepted or ResolvedRefs is False),
    or None (accepted, or not looked at by a Gateway controller yet)."""
    if live is None:
        return None
    problems = []
    for parent in (live.get("status") or {}).get("parents", []) or []:
        gw = (parent.get("parentRef") or {}).get("name", "?")
        for c in parent.get("conditions", []) or []:
            if c.get("type") in ("Accepted", "ResolvedRefs") and c.get("status") == "False":
                what = f"{c.get('type')}=False ({c.get('reason')})"
                problems.append(f"Gateway {gw}: {what}: {c.get('message', '')}")
    return "; ".join(problems) or None
