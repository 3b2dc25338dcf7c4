"""The router's route table (`mdserve.router.table.RouteTable`) for one ModelDeployment. Pure.

The table is the router's own pydantic model, so anything it would refuse is refused here, before the
ConfigMap is written: a router never receives a table it would reject (it would keep the previous one and the
status would lie about the weights in effect).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from mdserve.router.table import Match, RouteTable, Rule, Shadow, Sticky, Timeouts
from mdserve.router.table import Variant as TableVariant
from modeldeploy.render.naming import stable_hash
from modeldeploy.traffic.plan import Backend, TrafficPlan
from modeldeploy.traffic.spec import Condition, TrafficSpec


class TrafficError(ValueError):
    """Traffic settings that cannot be rendered; the message lists every reason."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def backend_url(b: Backend, namespace: str) -> str:
    """The per-revision Service's in-cluster URL (FQDN-less `.svc` form, resolvable from any namespace)."""
    return f"http://{b.service}.{namespace}.svc:{b.port}"


def _matches(conds: Sequence[Condition]) -> list[Match]:
    return [
        Match(name=c.name, value=c.regex, type="regex")
        if c.regex is not None
        else Match(name=c.name, value=c.value or "", type="exact")
        for c in conds
    ]


def table_version(md: Mapping[str, Any], content: Mapping[str, Any]) -> str:
    """`<generation>-<hash of everything else>`: changes with every rollout step, not only with the spec."""
    generation = int(md["metadata"].get("generation", 0))
    return f"{generation}-{stable_hash(content, length=12)}"


def build_route_table(md: Mapping[str, Any], plan: TrafficPlan, traffic: TrafficSpec) -> RouteTable:
    """Raises TrafficError if the router's model refuses the result (validate.traffic_errors came first)."""
    namespace = md["metadata"]["namespace"]
    t = traffic.router.timeouts
    sticky = traffic.sticky
    try:
        body: dict[str, Any] = {
            "variants": [
                TableVariant(name=b.name, backend=backend_url(b, namespace), weight=b.weight)
                for b in plan.backends
            ],
            "rules": [
                Rule(name=p.name, variant=p.backend, headers=_matches(p.headers), cookies=_matches(p.cookies))
                for p in plan.pins
            ],
            "sticky": None
            if sticky is None
            else Sticky(header=sticky.header, cookie=sticky.cookie, salt=sticky.salt),
            "shadows": [Shadow(variant=m.backend, percent=m.percent) for m in plan.mirrors],
            "timeouts": Timeouts(
                connect_seconds=t.connect_seconds,
                request_seconds=t.request_seconds,
                shadow_seconds=t.shadow_seconds,
            ),
        }
        draft = RouteTable(version="draft", **body)
        content = draft.model_dump(mode="json", exclude={"version"})
        return draft.model_copy(update={"version": table_version(md, content)})
    except ValidationError as e:
        raise TrafficError([f"route table: {err['msg']}" for err in e.errors()]) from e
