"""Typed parse of `spec.traffic`, mirroring traffic/schema.py (a unit test keeps the two in step).

The apiserver has defaulted and validated the object (including the CEL rules); traffic/validate.py repeats
the cross-field checks for objects stored before a rule existed and for specs built by hand in tests.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modeldeploy.api.base import Resources

Provider = Literal["router", "gateway-api", "none"]
PROVIDERS: tuple[Provider, ...] = ("router", "gateway-api", "none")


class _Model(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True, extra="forbid", frozen=True, use_attribute_docstrings=True
    )


class Condition(_Model):
    name: str
    """Header name (case-insensitive) or cookie name (case-sensitive)."""
    value: str | None = None
    """Exact value; exactly one of `value` and `regex` is set."""
    regex: str | None = None
    """Regular expression the whole value must match (RE2 subset)."""


class TrafficRule(_Model):
    name: str
    """Rule name, shown in router logs and the HTTPRoute rule name."""
    variant: str
    """Variant that matching requests are pinned to (`primary` or an entry of `spec.variants`)."""
    headers: tuple[Condition, ...] = ()
    """Header conditions; all must hold."""
    cookies: tuple[Condition, ...] = ()
    """Cookie conditions; all must hold (provider `router` only)."""


class StickySpec(_Model):
    header: str | None = None
    """Request header whose value keeps a caller on one variant (e.g. `x-user-id`)."""
    cookie: str | None = None
    """Cookie whose value keeps a caller on one variant."""
    salt: str = ""
    """Mixed into the hash; changing it reshuffles callers between variants (a new experiment)."""


class ShadowSpec(_Model):
    variant: str
    """Variant that receives copies of requests; its responses are discarded."""
    percent: float
    """Share of all requests copied, in percent (0 < percent <= 100)."""


class ParentRef(_Model):
    name: str
    """Name of the Gateway."""
    namespace: str | None = None
    """Namespace of the Gateway (default: the ModelDeployment's)."""
    section_name: str | None = Field(default=None, alias="sectionName")
    """Listener name on the Gateway."""
    port: int | None = None
    """Listener port on the Gateway."""


class GatewaySpec(_Model):
    parent_refs: tuple[ParentRef, ...] = Field(default=(), alias="parentRefs")
    """Gateways the HTTPRoute attaches to."""
    hostnames: tuple[str, ...] = ()
    """Host names the HTTPRoute answers (empty: the listeners' own)."""


class RouterTimeouts(_Model):
    connect_seconds: float = Field(default=2.0, alias="connectSeconds")
    """Time to obtain a backend connection before answering 504."""
    request_seconds: float = Field(default=60.0, alias="requestSeconds")
    """Time for a backend to start answering before 504."""
    shadow_seconds: float = Field(default=10.0, alias="shadowSeconds")
    """Time given to one shadow copy before it is abandoned."""


class RouterSpec(_Model):
    replicas: int = 2
    """Router pods; each one splits exactly on its own."""
    resources: Resources | None = None
    """Router container resources (None: traffic.router_objects.DEFAULT_RESOURCES)."""
    timeouts: RouterTimeouts = RouterTimeouts()
    """Upstream timeouts."""


class TrafficSpec(_Model):
    provider: Provider = "router"
    """Who splits the traffic: the built-in `router`, a Gateway API `gateway-api`, or `none` (one Service)."""
    sticky: StickySpec | None = None
    """Sticky assignment of callers to variants (provider `router` only)."""
    shadow: tuple[ShadowSpec, ...] = ()
    """Mirrored traffic per variant."""
    rules: tuple[TrafficRule, ...] = ()
    """Ordered pinning rules, evaluated before the variants' own header `match` rules."""
    gateway: GatewaySpec | None = None
    """Gateway API settings (provider `gateway-api`)."""
    router: RouterSpec = RouterSpec()
    """Built-in router settings (provider `router`)."""
