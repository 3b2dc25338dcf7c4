"""Traffic settings that cannot be honoured, as clear messages. Pure.

Repeats the CEL rules of traffic/schema.py (same messages) for objects stored before a rule existed, and adds
what only the operator can see: revision shares from the rollout engine, provider limits (an HTTPRoute holds
at most 16 rules and 16 backendRefs per rule), and regular expressions the router cannot compile. A
non-empty result means: apply nothing of the traffic objects, report `Ready=False` (reason INVALID_TRAFFIC).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from modeldeploy.api.schema import PRIMARY
from modeldeploy.render.variants import Variant
from modeldeploy.traffic import schema as msg
from modeldeploy.traffic.plan import RevisionShares, plan_traffic
from modeldeploy.traffic.spec import Condition, TrafficSpec

REASON_INVALID = "InvalidTraffic"
"""Ready=False reason when `traffic_errors` is not empty."""
GATEWAY_MAX_RULES = 16
GATEWAY_MAX_BACKENDS = 16
"""HTTPRoute v1 limits: rules per route, backendRefs per rule."""


def _condition_errors(where: str, conds: Sequence[Condition]) -> list[str]:
    out: list[str] = []
    for i, c in enumerate(conds):
        if (c.value is None) == (c.regex is None):
            out.append(f"{where}[{i}] ({c.name}): set exactly one of value or regex")
        elif c.regex is not None:
            try:
                re.compile(c.regex)
            except re.error as e:
                out.append(f"{where}[{i}] ({c.name}): bad regex {c.regex!r}: {e}")
    return out


def _spec_errors(variants: Sequence[Variant], traffic: TrafficSpec) -> list[str]:
    names = {v.name for v in variants}
    provider = traffic.provider
    errors: list[str] = []
    for i, r in enumerate(traffic.rules):
        if r.variant not in names:
            errors.append(f"traffic.rules[{i}] ({r.name}): unknown variant {r.variant!r}; "
                          + msg.MSG_UNKNOWN_RULE_VARIANT)
        if not r.headers and not r.cookies:
            errors.append(f"traffic.rules[{i}] ({r.name}): needs at least one header or cookie condition")
        errors += _condition_errors(f"traffic.rules[{i}].headers", r.headers)
        errors += _condition_errors(f"traffic.rules[{i}].cookies", r.cookies)
        if provider == "gateway-api" and r.cookies:
            errors.append(f"traffic.rules[{i}] ({r.name}): {msg.MSG_COOKIES_ROUTER}")
        lowered = [h.name.lower() for h in r.headers]
        if provider == "gateway-api" and len(set(lowered)) != len(lowered):
            errors.append(f"traffic.rules[{i}] ({r.name}): an HTTPRoute match uses only the first "
                          "condition on a header; give each header once")
    if len(rule_names := [r.name for r in traffic.rules]) != len(set(rule_names)):
        errors.append("traffic.rules[].name must be unique")
    for i, s in enumerate(traffic.shadow):
        if s.variant not in names:
            errors.append(
                f"traffic.shadow[{i}]: unknown variant {s.variant!r}; " + msg.MSG_UNKNOWN_SHADOW_VARIANT
            )
        if not 0 < s.percent <= 100:
            errors.append(f"traffic.shadow[{i}] ({s.variant}): percent must be in (0, 100], got {s.percent}")
    if len(shadowed := [s.variant for s in traffic.shadow]) != len(set(shadowed)):
        errors.append("traffic.shadow: at most one entry per variant")
    if traffic.sticky is not None:
        if (traffic.sticky.header is None) == (traffic.sticky.cookie is None):
            errors.append("traffic.sticky: set exactly one of header or cookie")
        if provider != "router":
            errors.append(f"traffic.sticky: {msg.MSG_STICKY_ROUTER}")
    if provider == "gateway-api" and not (traffic.gateway and traffic.gateway.parent_refs):
        errors.append(f"traffic.gateway: {msg.MSG_GATEWAY_PARENTS}")
    if provider == "none":
        if traffic.rules or traffic.shadow:
            errors.append(f"traffic.provider: {msg.MSG_NONE_RULES}")
        if any(v.match for v in variants):
            errors.append(f"variants: {msg.MSG_NONE_MATCH}")
    return errors


def _share_errors(variants: Sequence[Variant], shares: RevisionShares) -> list[str]:
    errors: list[str] = []
    for v in variants:
        mine = shares.get(v.name)
        if not mine:
            errors.append(f"variant {v.name}: no serving revision to route to")
            continue
        if any(pct < 0 for pct in mine.values()) or sum(mine.values()) != 100:
            errors.append(f"variant {v.name}: revision weights {dict(mine)} must be >= 0 and sum to 100")
        if v.weight < 0:
            errors.append(f"variant {v.name}: weight {v.weight} is negative (variants[].weight sum > 100)")
    if not errors and sum(v.weight for v in variants) <= 0:
        errors.append("every variant has weight 0: no variant would receive unpinned traffic")
    return errors


def traffic_errors(
    md_name: str, variants: Sequence[Variant], shares: RevisionShares, traffic: TrafficSpec
) -> list[str]:
    """Every reason the traffic settings cannot be honoured; empty when `plan_traffic` may be rendered."""
    if not variants or variants[0].name != PRIMARY:
        return ["the primary variant must come first"]
    errors = _spec_errors(variants, traffic) + _share_errors(variants, shares)
    if errors or traffic.provider != "gateway-api":
        return errors
    plan = plan_traffic(md_name, variants, shares, traffic)
    groups = {p.group for p in plan.pins}
    if len(groups) + 1 > GATEWAY_MAX_RULES:
        errors.append(
            f"gateway-api: {len(groups)} pinning rules + the weighted rule exceed the HTTPRoute limit of "
            f"{GATEWAY_MAX_RULES} rules"
        )
    if len(plan.backends) > GATEWAY_MAX_BACKENDS:
        errors.append(
            f"gateway-api: {len(plan.backends)} backends (variant revisions) exceed the HTTPRoute limit of "
            f"{GATEWAY_MAX_BACKENDS} backendRefs per rule"
        )
    return errors
