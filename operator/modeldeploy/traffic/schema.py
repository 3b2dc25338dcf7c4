"""OpenAPI fragments of `spec.traffic` and `status.traffic`, for api/schema.py to plug in.

    spec_schema():   properties["traffic"] = TRAFFIC_SPEC_SCHEMA; rules += TRAFFIC_SPEC_RULES
    status_schema(): properties["traffic"] = TRAFFIC_STATUS_SCHEMA

Rules that only look inside `traffic` sit on the fragment itself; rules that compare `traffic` with
`spec.variants` (unknown variant names, header matches under provider `none`) must sit on `spec`, hence
TRAFFIC_SPEC_RULES. traffic/validate.py repeats every rule in Python with the same messages.
"""

from __future__ import annotations

from modeldeploy.api.openapi import Node, array, integer, number, obj, quantity_map, rule, string
from modeldeploy.traffic.spec import PROVIDERS

HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
"""RFC 7230 token: valid for header and cookie names, and the Gateway API's header name pattern."""
RULE_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A DNS label: valid as a router rule name and as an HTTPRoute rule name."""
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MAX_RULES = 8
MAX_CONDITIONS = 8

MSG_GATEWAY_PARENTS = "provider gateway-api needs at least one gateway.parentRefs entry"
MSG_STICKY_ROUTER = "sticky needs provider router (the Gateway API has no standard sticky sessions)"
MSG_NONE_RULES = "provider none cannot pin or mirror requests: remove rules and shadow, or use router"
MSG_COOKIES_ROUTER = "cookie conditions need provider router (HTTPRoute matches headers only)"
MSG_UNKNOWN_RULE_VARIANT = "traffic.rules[].variant must be primary or the name of an entry of variants"
MSG_UNKNOWN_SHADOW_VARIANT = "traffic.shadow[].variant must be primary or the name of an entry of variants"
MSG_NONE_MATCH = "provider none cannot route variants[].match: use router or gateway-api"


def _condition(what: str) -> Node:
    return obj(
        f"A {what} condition: exactly one of `value` and `regex`.",
        {
            "name": string(f"{what.capitalize()} name.", min_length=1, max_length=256, pattern=HEADER_NAME),
            "value": string("Exact value.", max_length=1024),
            "regex": string(
                "Regular expression the whole value must match (keep to the RE2 subset: the router "
                "uses Python `re`, Gateway implementations usually RE2).",
                max_length=1024,
            ),
        },
        required=("name",),
        rules=(rule("has(self.value) != has(self.regex)", "set exactly one of value or regex"),),
    )


def _rules() -> Node:
    return array(
        "Ordered pinning rules, evaluated before the variants' own `match` rules: the first rule whose "
        "conditions all hold sends the request to its variant, whatever the weights.",
        obj(
            "A pinning rule.",
            {
                "name": string("Rule name (logs, HTTPRoute rule name).", pattern=RULE_NAME, max_length=63),
                "variant": string("`primary` or the name of an entry of `variants`.", max_length=20),
                "headers": array("Header conditions; all must hold.", _condition("header"),
                                 max_items=MAX_CONDITIONS),
                "cookies": array("Cookie conditions; all must hold (provider `router` only).",
                                 _condition("cookie"), max_items=MAX_CONDITIONS),
            },
            required=("name", "variant"),
            rules=(
                rule(
                    "(has(self.headers) ? size(self.headers) : 0) + "
                    "(has(self.cookies) ? size(self.cookies) : 0) > 0",
                    "a rule needs at least one header or cookie condition",
                ),
            ),
        ),
        max_items=MAX_RULES,
        map_keys=("name",),
    )


def _sticky() -> Node:
    return obj(
        "Sticky assignment: callers carrying the key keep their variant while the weights stay the same "
        "(and move as little as possible when they change). Provider `router` only.",
        {
            "header": string("Request header holding the key, e.g. `x-user-id`.", max_length=256,
                             pattern=HEADER_NAME),
            "cookie": string("Cookie holding the key.", max_length=256, pattern=HEADER_NAME),
            "salt": string("Mixed into the hash; change it to reshuffle callers.", max_length=64),
        },
        rules=(rule("has(self.header) != has(self.cookie)", "set exactly one of header or cookie"),),
    )


def _shadow() -> Node:
    percent = number("Share of all requests copied, in percent.", minimum=0, maximum=100)
    percent["exclusiveMinimum"] = True
    return array(
        "Mirror a share of all requests to a variant (usually one of weight 0); responses are discarded.",
        obj(
            "A mirror.",
            {
                "variant": string("`primary` or the name of an entry of `variants`.", max_length=20),
                "percent": percent,
            },
            required=("variant", "percent"),
        ),
        max_items=8,
        map_keys=("variant",),
    )


def _gateway() -> Node:
    parent = obj(
        "A Gateway (listener) the HTTPRoute attaches to.",
        {
            "name": string("Gateway name.", min_length=1, max_length=253, pattern=DNS_SUBDOMAIN),
            "namespace": string("Gateway namespace (default: this one).", max_length=63, pattern=RULE_NAME),
            "sectionName": string("Listener name.", max_length=253, pattern=DNS_SUBDOMAIN),
            "port": integer("Listener port.", minimum=1, maximum=65535),
        },
        required=("name",),
    )
    return obj(
        "Gateway API settings (provider `gateway-api`).",
        {
            "parentRefs": array("Gateways the HTTPRoute attaches to.", parent, max_items=8),
            "hostnames": array(
                "Host names of the HTTPRoute (empty: the listeners' own).",
                string("A host name, optionally `*.`-prefixed.", max_length=253, pattern=HOSTNAME),
                max_items=16,
            ),
        },
    )


def _router() -> Node:
    return obj(
        "Built-in router settings (provider `router`).",
        {
            "replicas": integer("Router pods (each one splits exactly on its own).", minimum=1, maximum=20,
                                default=2),
            "resources": obj(
                "Router container resources (default: requests 100m CPU / 64Mi, limit 256Mi memory).",
                {
                    "requests": quantity_map("Minimum resources."),
                    "limits": quantity_map("Maximum resources."),
                },
            ),
            "timeouts": obj(
                "Upstream timeouts, in seconds.",
                {
                    "connectSeconds": number("Connection wait before 504.", minimum=0.01, maximum=600),
                    "requestSeconds": number("Backend silence before 504.", minimum=0.01, maximum=3600),
                    "shadowSeconds": number("Time given to one shadow copy.", minimum=0.01, maximum=3600),
                },
            ),
        },
        default={},
    )


def traffic_spec_schema() -> Node:
    provider_is = "has(self.provider) && self.provider == "
    return obj(
        "How requests are split between variants and revisions. `router` (default): a per-"
        "ModelDeployment router with exact weights, pinning rules, sticky keys and shadows. `gateway-api`: "
        "an owned HTTPRoute with explicit weights. `none`: one Service selecting every variant's pods, "
        "so the split follows ready replica counts (coarse; weights are not honoured).",
        {
            "provider": string("Traffic provider.", enum=PROVIDERS, default="router"),
            "sticky": _sticky(),
            "shadow": _shadow(),
            "rules": _rules(),
            "gateway": _gateway(),
            "router": _router(),
        },
        default={"provider": "router"},
        rules=(
            rule(
                f"!({provider_is}'gateway-api') || (has(self.gateway) && has(self.gateway.parentRefs) "
                "&& size(self.gateway.parentRefs) > 0)",
                MSG_GATEWAY_PARENTS,
                field_path=".gateway",
            ),
            rule("!has(self.sticky) || !has(self.provider) || self.provider == 'router'", MSG_STICKY_ROUTER,
                 field_path=".sticky"),
            rule(
                f"!({provider_is}'none') || ((!has(self.shadow) || size(self.shadow) == 0) && "
                "(!has(self.rules) || size(self.rules) == 0))",
                MSG_NONE_RULES,
                field_path=".provider",
            ),
            rule(
                f"!({provider_is}'gateway-api') || !has(self.rules) || "
                "self.rules.all(r, !has(r.cookies) || size(r.cookies) == 0)",
                MSG_COOKIES_ROUTER,
                field_path=".rules",
            ),
        ),
    )


def _known(item: str) -> str:
    return f"{item} == 'primary' || (has(self.variants) && self.variants.exists(v, v.name == {item}))"


TRAFFIC_SPEC_RULES: tuple[Node, ...] = (
    rule(
        f"!has(self.traffic) || !has(self.traffic.rules) || self.traffic.rules.all(r, {_known('r.variant')})",
        MSG_UNKNOWN_RULE_VARIANT,
        field_path=".traffic.rules",
    ),
    rule(
        "!has(self.traffic) || !has(self.traffic.shadow) || "
        f"self.traffic.shadow.all(s, {_known('s.variant')})",
        MSG_UNKNOWN_SHADOW_VARIANT,
        field_path=".traffic.shadow",
    ),
    rule(
        "!has(self.traffic) || !has(self.traffic.provider) || self.traffic.provider != 'none' || "
        "!has(self.variants) || self.variants.all(v, !has(v.match) || size(v.match) == 0)",
        MSG_NONE_MATCH,
        field_path=".variants",
    ),
)
"""Cross-field rules to append to `spec`'s x-kubernetes-validations."""


def traffic_status_schema() -> Node:
    entry = obj(
        "Share of unpinned traffic one backend (a revision of a variant) receives.",
        {
            "backend": string("Backend name (`<variant>-<revision>`), the router's `variant` label.",
                              max_length=63),
            "variant": string("Variant name.", max_length=63),
            "revision": string("Revision.", max_length=64),
            "weight": integer("Relative weight in effect (router table, HTTPRoute, or ready pods).",
                              fmt="int64"),
            "percent": number("The same as a percentage of the unpinned traffic."),
        },
        required=("backend",),
    )
    return obj(
        "The traffic split in effect, read back from what was applied.",
        {
            "provider": string("Provider in effect.", enum=PROVIDERS),
            "weights": array("Per-backend weights in effect.", entry, max_items=64, map_keys=("backend",)),
            "tableVersion": string("Version of the router table in effect (provider `router`).",
                                   max_length=128),
            "route": string("The ConfigMap, HTTPRoute or Service that carries the split.", max_length=253),
            "message": string("Why the split is what it is (e.g. weights not honoured by `none`).",
                              max_length=4096),
        },
    )


TRAFFIC_SPEC_SCHEMA: Node = traffic_spec_schema()
"""`spec.traffic`."""
TRAFFIC_STATUS_SCHEMA: Node = traffic_status_schema()
"""`status.traffic`."""
