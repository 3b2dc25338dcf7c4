"""What every provider renders from: backends with exact weights, pinning rules and mirrors. Pure.

A backend is one revision of one variant, reached through its per-revision Service
(render/workload.build_revision_service). Its weight is the variant's percent (primary: the remainder)
times the revision's percent of that variant (the rollout engine's `decision.weights` for the primary,
`{stable: 100}` elsewhere), divided by the gcd of all weights: 90/10 of primary with int8 at 10 gives
81/9/10, exact in integers, and the router's smooth round-robin repeats over the smallest window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modeldeploy.api.schema import PRIMARY
from modeldeploy.render.naming import workload_name
from modeldeploy.render.variants import Variant
from modeldeploy.revisions import VariantRevisions
from modeldeploy.traffic.spec import Condition, TrafficSpec

SERVICE_PORT = 80
"""Port of the per-revision Services (render/workload.py `_service`)."""

RevisionShares = Mapping[str, Mapping[str, int]]
"""variant -> (revision -> percent of that variant's traffic). Mapping order is table order: stable first."""


@dataclass(frozen=True)
class Backend:
    """One revision of one variant, as the router and the HTTPRoute address it."""

    name: str
    """`<variant>-<revision>`: the router's variant name and `variant` metric label."""
    variant: str
    """Variant name."""
    revision: str
    """Revision id."""
    service: str
    """Per-revision Service name (= Deployment name)."""
    port: int
    """Service port."""
    weight: int
    """Relative weight of unpinned traffic (gcd-reduced; 0 = only pinned or mirrored traffic)."""
    percent: float
    """The same as a percentage, rounded to 2 decimals (for status and docs)."""


@dataclass(frozen=True)
class Pin:
    """A pinning rule resolved to one backend; all its conditions must hold."""

    name: str
    """Rule name (router logs)."""
    group: str
    """Pins of a group form one HTTPRoute rule (matches ORed): `rule-<name>` or `match-<variant>`."""
    variant: str
    """Target variant."""
    backend: str
    """Target backend name."""
    headers: tuple[Condition, ...]
    """Header conditions."""
    cookies: tuple[Condition, ...]
    """Cookie conditions."""


@dataclass(frozen=True)
class Mirror:
    """A shadow resolved to one backend."""

    variant: str
    """Shadowed variant."""
    backend: str
    """Backend receiving the copies."""
    percent: float
    """Share of all requests copied."""


@dataclass(frozen=True)
class TrafficPlan:
    """Everything a provider needs; built by `plan_traffic` after `validate.traffic_errors` found nothing."""

    backends: tuple[Backend, ...]
    """In table order: variants in spec order (primary first), each variant's revisions in shares order."""
    pins: tuple[Pin, ...]
    """In evaluation order: `traffic.rules`, then each variant's `match` entries."""
    mirrors: tuple[Mirror, ...]
    """Shadows."""

    def backend(self, name: str) -> Backend:
        return next(b for b in self.backends if b.name == name)


def backend_name(variant: str, revision: str) -> str:
    return f"{variant}-{revision}"


def revision_shares(
    revisions: Mapping[str, VariantRevisions], primary_weights: Mapping[str, int] | None = None
) -> dict[str, dict[str, int]]:
    """Each variant's stable revision takes all its traffic, except the primary's when the rollout engine
    decided `primary_weights` (`decision.weights`: revision -> percent, stable first)."""
    out = {name: {r.stable: 100} for name, r in revisions.items()}
    if primary_weights and PRIMARY in out:
        out[PRIMARY] = dict(primary_weights)
    return out


def target_revision(shares: Mapping[str, int]) -> str:
    """Where pins and mirrors of a variant go: its largest share, the first (stable) one on a tie."""
    best = max(shares.values())
    return next(rev for rev, pct in shares.items() if pct == best)


def plan_traffic(
    md_name: str, variants: Sequence[Variant], shares: RevisionShares, traffic: TrafficSpec
) -> TrafficPlan:
    """`variants` from render.variants.resolve (weights resolved, primary first); validate first."""
    raw: list[tuple[str, str, int]] = []
    for v in variants:
        first = True
        for rev, pct in shares[v.name].items():
            # Revisions with no share are left out (their Service may not exist yet); the first one stays
            # even at 0 so the table keeps the variant's slot (sticky ranges) and pins have a target.
            if pct > 0 or first or rev == target_revision(shares[v.name]):
                raw.append((v.name, rev, v.weight * pct))
            first = False
    positive = [w for _, _, w in raw if w > 0]
    divisor = math.gcd(*positive) if positive else 1
    total = sum(positive) or 1
    backends = tuple(
        Backend(
            name=backend_name(variant, rev),
            variant=variant,
            revision=rev,
            service=workload_name(md_name, variant, rev),
            port=SERVICE_PORT,
            weight=w // divisor,
            percent=round(100 * w / total, 2),
        )
        for variant, rev, w in raw
    )

    def target(variant: str) -> str:
        return backend_name(variant, target_revision(shares[variant]))

    pins = [
        Pin(r.name, f"rule-{r.name}", r.variant, target(r.variant), r.headers, r.cookies)
        for r in traffic.rules
    ]
    for v in variants:
        for i, m in enumerate(v.match):
            cond = Condition(name=m.header, value=m.value, regex=m.regex)
            pins.append(Pin(f"match-{v.name}-{i}", f"match-{v.name}", v.name, target(v.name), (cond,), ()))
    mirrors = tuple(Mirror(s.variant, target(s.variant), s.percent) for s in traffic.shadow)
    return TrafficPlan(backends, tuple(pins), mirrors)
