"""The route table: the JSON document the operator writes and the router serves from.

Only pydantic and the standard library are imported here, so the operator can build, validate
and serialise tables (``RouteTable(...).to_json()``) without the router's runtime dependencies.

The operator stores the document in the ConfigMap ``<md-name>-routes`` under the key
``routes.json`` (see ``ROUTES_KEY``); ``docs/router.md`` shows a full example.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ROUTES_KEY = "routes.json"
"""Key of the route table inside the ConfigMap ``<md-name>-routes``."""

SCHEMA_VERSION = 1
"""Current value of ``RouteTable.schema_version``; a router refuses tables of another schema."""

MAX_WEIGHT = 1_000_000
"""Upper bound of one variant's weight; keeps the smooth round-robin arithmetic small."""

_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class RouteTableError(ValueError):
    """A route table document was rejected; the message says why, for logs and ``/-/routes``."""


class _Strict(BaseModel):
    # Unknown keys are refused: a typo in a rule must not silently turn it into "match all".
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variant(_Strict):
    """One arm of the split: a named backend and its share of the unpinned traffic."""

    name: str
    """Variant name (``stable``, ``canary``, …); the ``variant`` label of every ``mdroute_`` metric."""
    backend: str
    """Base URL of the variant's Service, e.g. ``http://demo-canary.ns.svc:8080`` (no path or query)."""
    weight: Annotated[int, Field(ge=0, le=MAX_WEIGHT)] = 0
    """Relative weight of the exact split; 0 takes only rule-pinned or shadow traffic."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"variant name {value!r} must be 1-63 chars of [A-Za-z0-9_.-]")
        return value

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"backend {value!r} must be an absolute http(s) URL with a host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"backend {value!r} must not have a path, query or fragment")
        try:
            parts.port  # noqa: B018 - raises on an out-of-range port
        except ValueError as exc:
            raise ValueError(f"backend {value!r}: {exc}") from exc
        return value.rstrip("/")


MatchKind = Literal["exact", "prefix", "regex", "present"]


class Match(_Strict):
    """One condition on a request header or cookie."""

    name: str
    """Header name (case-insensitive) or cookie name (case-sensitive)."""
    value: str = ""
    """Value to compare with; ignored for ``type: present``."""
    type: MatchKind = "exact"
    """``exact`` equality, ``prefix``, ``regex`` (full match, Python syntax) or ``present``."""

    @model_validator(mode="after")
    def _check(self) -> Match:
        if not self.name:
            raise ValueError("match name must not be empty")
        if self.type == "regex":
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"bad regex {self.value!r} for {self.name!r}: {exc}") from exc
        return self


class Rule(_Strict):
    """Pins every request that satisfies all its conditions to one variant (first rule wins)."""

    name: str
    """Rule name, used in logs and the ``/-/routes`` view."""
    variant: str
    """Name of the variant that matching requests go to, whatever its weight."""
    headers: list[Match] = Field(default_factory=list)
    """Header conditions; all must hold."""
    cookies: list[Match] = Field(default_factory=list)
    """Cookie conditions; all must hold."""

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if not self.headers and not self.cookies:
            raise ValueError(f"rule {self.name!r} needs at least one header or cookie condition")
        for header in self.headers:
            if not _HEADER_RE.match(header.name):
                raise ValueError(f"rule {self.name!r}: {header.name!r} is not a valid header name")
        return self


class Sticky(_Strict):
    """Where the sticky key comes from: exactly one of ``header`` or ``cookie``."""

    header: str | None = None
    """Request header whose value is the key (e.g. ``x-user-id``)."""
    cookie: str | None = None
    """Cookie whose value is the key."""
    salt: str = ""
    """Mixed into the hash; changing it reshuffles users between variants (a new experiment)."""

    @model_validator(mode="after")
    def _check(self) -> Sticky:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("sticky needs exactly one of 'header' or 'cookie'")
        if self.header is not None and not _HEADER_RE.match(self.header):
            raise ValueError(f"sticky header {self.header!r} is not a valid header name")
        if self.cookie is not None and not self.cookie:
            raise ValueError("sticky cookie name must not be empty")
        return self


class Shadow(_Strict):
    """Mirrors a share of all requests to a variant; its responses are discarded."""

    variant: str
    """Name of the variant that receives the copies."""
    percent: Annotated[float, Field(gt=0, le=100)]
    """Share of requests copied, in percent (exact over any window of requests)."""


class Timeouts(_Strict):
    """Upstream timeouts, in seconds."""

    connect_seconds: Annotated[float, Field(gt=0, le=600)] = 2.0
    """Time to obtain a connection to a backend before answering 502."""
    request_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """Time for a backend to send its response headers before answering 504."""
    shadow_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    """Total time given to one shadow request before it is abandoned."""


class RouteTable(_Strict):
    """The whole routing configuration of one ModelDeployment."""

    schema_version: Literal[1] = 1
    """Document schema; bumped only with an incompatible change."""
    version: str
    """Opaque version chosen by the writer (e.g. ``<generation>-<hash>``); shown in metrics and logs."""
    variants: list[Variant]
    """All variants, in a fixed order (the order defines the sticky hash ranges)."""
    rules: list[Rule] = Field(default_factory=list)
    """Pinning rules, evaluated in order before the split."""
    sticky: Sticky | None = None
    """Sticky assignment; requests without the key use the exact split."""
    shadows: list[Shadow] = Field(default_factory=list)
    """Mirrors; at most one entry per variant."""
    timeouts: Timeouts = Field(default_factory=Timeouts)
    """Upstream timeouts."""

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if not value or len(value) > 128 or not value.isprintable():
            raise ValueError("version must be 1-128 printable characters")
        return value

    @model_validator(mode="after")
    def _check_refs(self) -> RouteTable:
        names = [v.name for v in self.variants]
        if not names:
            raise ValueError("at least one variant is required")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate variant names: {duplicates}")
        if sum(v.weight for v in self.variants) <= 0:
            raise ValueError("at least one variant must have a positive weight")
        known = set(names)
        for rule in self.rules:
            if rule.variant not in known:
                raise ValueError(f"rule {rule.name!r} names unknown variant {rule.variant!r}")
        shadowed = [s.variant for s in self.shadows]
        for name in shadowed:
            if name not in known:
                raise ValueError(f"shadow names unknown variant {name!r}")
        if len(set(shadowed)) != len(shadowed):
            raise ValueError("at most one shadow entry per variant")
        return self

    def variant(self, name: str) -> Variant:
        """The variant called ``name`` (``KeyError`` if absent)."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), as the operator should store it."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def parse_table(text: str | bytes) -> RouteTable:
    """Parse and validate a route table document; ``RouteTableError`` says what is wrong."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RouteTableError(f"route table is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise RouteTableError("route table must be a JSON object")
    try:
        return RouteTable.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise RouteTableError(f"invalid route table: {problems}") from exc
