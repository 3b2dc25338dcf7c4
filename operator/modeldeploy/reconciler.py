"""One level-based reconcile of one ModelDeployment: observe, decide (pure), write only what differs.

Runs in a worker thread (blocking I/O is fine here, never on the asyncio loop). Everything it needs comes from
the
cluster — the ModelDeployment with its status and the labelled children — so it resumes after a restart
without
memory, and a pass over an unchanged world makes no write at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modeldeploy import metrics
from modeldeploy.abtest import ABTest
from modeldeploy.api.schema import API_VERSION, KIND, PRIMARY
from modeldeploy.api.spec import ModelDeploymentSpec, parse_spec
from modeldeploy.delivery import Delivery, primary_plan
from modeldeploy.diff import is_subset
from modeldeploy.kube.client import DISCOVERY_TTL_SECONDS, ApiError, KubeClient
from modeldeploy.modelcheck import UriChecker, static_problems
from modeldeploy.plan import Action, Key, plan
from modeldeploy.render.children import desired_children, retained
from modeldeploy.render.naming import managed_selector
from modeldeploy.render.variants import Variant, resolve
from modeldeploy.revisions import VariantRevisions, decide, status_revisions
from modeldeploy.rollout.engine import Decision
from modeldeploy.routing import (
    GATEWAY_KINDS,
    discover_kinds,
    model_deployments,
    render_traffic,
    status_traffic,
)
from modeldeploy.settings import Settings
from modeldeploy.status import Problem, compute, condition_of
from modeldeploy.traffic.providers import REASON_GATEWAY_MISSING, merge_children

log = logging.getLogger("modeldeploy.reconciler")
STATUS_KEYS = (
    "observedGeneration",
    "phase",
    "message",
    "conditions",
    "canaryWeight",
    "ready",
    "replicas",
    "readyReplicas",
    "url",
    "variants",
    "stableRevision",
    "canaryRevision",
    "rollout",
    "traffic",
    "abTest",
)
"""The status fields this reconciler owns (server-side apply removes the ones it stops sending)."""
RETRY_UNAVAILABLE_SECONDS = 30.0


@dataclass(frozen=True)
class Outcome:
    """What one pass did."""

    writes: int
    """API writes made (applies, deletes, status, events)."""
    requeue_after: float | None = None
    """Reconcile again after this many seconds even without an event."""
    phase: str | None = None
    """The phase written (or kept)."""


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validation_message(error: ValidationError) -> str:
    parts = []
    for e in error.errors()[:5]:
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"spec.{where}: {e['msg']}")
    return "; ".join(parts)


def status_changed(new: dict[str, Any], old: dict[str, Any]) -> bool:
    if not is_subset(new, old):
        return True
    if new.get("traffic") != old.get("traffic") or new.get("abTest") != old.get("abTest"):
        return True  # their optional fields (message, figures) come and go: a subset is not enough
    return any(k in old and k not in new for k in STATUS_KEYS)


class Reconciler:
    def __init__(
        self,
        kube: KubeClient,
        settings: Settings,
        uri_checker: UriChecker | None = None,
        clock: Callable[[], str] = utcnow,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.uri_checker = uri_checker
        self.clock = clock
        self.now = now
        """The engine's time, read once per pass at this edge."""
        self.delivery = Delivery(kube, settings)
        self.ab_test = ABTest(self.delivery)

    def observe(self, md: dict[str, Any]) -> dict[Key, dict[str, Any]]:
        """Children labelled for this ModelDeployment and controlled by this very object (uid): workloads and
        every traffic provider's objects (HTTPRoutes only while the Gateway API is served)."""
        meta = md["metadata"]
        out: dict[Key, dict[str, Any]] = {}
        for kind in discover_kinds(self.kube):
            try:
                items = self.kube.list(kind, meta["namespace"], managed_selector(meta["name"]))
            except ApiError as e:
                if e.status != 404 or kind not in GATEWAY_KINDS:
                    raise
                self.kube.forget_discovery()  # the CRDs were removed since the cached discovery
                continue
            for obj in items:
                owners = obj["metadata"].get("ownerReferences", []) or []
                if any(o.get("uid") == meta["uid"] and o.get("controller") for o in owners):
                    out[(kind, obj["metadata"]["name"])] = obj
        return out

    def reconcile(self, namespace: str, name: str) -> Outcome:
        before = self.kube.writes()
        md = self.kube.get(KIND, namespace, name)
        if md is None or md["metadata"].get("deletionTimestamp"):
            metrics.forget_object(namespace, name)
            return Outcome(0)  # the garbage collector removes the children through their ownerReferences
        md.setdefault("apiVersion", API_VERSION)
        md.setdefault("kind", KIND)
        observed = self.observe(md)
        deployments = model_deployments(observed)
        requeue: float | None = None

        spec: ModelDeploymentSpec | None = None
        problem: Problem | None = None
        variants: list[Variant] = []
        try:
            spec = parse_spec(md.get("spec") or {})
            variants = resolve(name, spec, self.settings.serving_image)
        except ValidationError as e:
            problem = Problem("InvalidSpec", validation_message(e))
        if spec is not None:
            problem = static_problems(variants)
            if problem is None and self.uri_checker is not None:
                # Only revisions not serving yet are checked: a model store outage must not disturb running
                # ones.
                serving = status_revisions(md.get("status") or {})
                fresh = [v for v in variants if serving.get(v.name) != v.revision]
                problem = self.uri_checker.problem(fresh)
                if problem is not None:
                    requeue = RETRY_UNAVAILABLE_SECONDS

        revisions: dict[str, VariantRevisions] | None = None
        decision: Decision | None = None
        posted: set[str] = set()
        if spec is not None and problem is None:
            # The engine rolls out the primary variant (every strategy); extra variants switch when Ready.
            decision = self.delivery.decide(md, spec, variants[0], deployments, self.now())
            status_now, paused_spec = md.get("status") or {}, spec.rollout.paused
            extra = decide(name, variants[1:], status_now, deployments, paused=paused_spec)
            revisions = {
                PRIMARY: VariantRevisions(
                    PRIMARY, decision.state.stable_revision or variants[0].revision, variants[0].revision,
                    engine=True, engine_canary=decision.state.canary_revision,
                ),
                **extra,
            }
            primary = primary_plan(name, variants[0], decision, observed)
            variants = [primary.variant, *variants[1:]]
            keep = retained(name, extra) | primary.keep
            scale = primary.scale
            requeue = _sooner(requeue, decision.requeue_after)
            traffic = render_traffic(
                md, spec, variants, revisions, decision, observed, image=self.settings.router_image,
                gateway_api_available=self.kube.gateway_api_available(),
            )
            if traffic.problem is not None:
                # Nothing is applied: the engine's next state is not taken either (status.rollout kept).
                problem, revisions, decision = traffic.problem, None, None
                if problem.reason == REASON_GATEWAY_MISSING:  # CRDs installed later: no event tells us
                    requeue = _sooner(requeue, DISCOVERY_TTL_SECONDS)
            else:
                core = desired_children(md, variants, revisions, spec.rollout.progress_deadline_seconds)
                self._execute(md, plan(merge_children(core, traffic.objects), observed, keep), observed)
                self._scale(md, scale, observed)
                deployments = model_deployments(observed)
                posted = self._post(md, revisions, decision)
        # With a problem, nothing is applied or deleted: the last good children keep serving, never a partial
        # set.

        weights = {v.name: v.weight for v in variants}
        paused = spec is not None and spec.rollout.paused  # the engine reports the primary's pause itself
        rollout = decision.state if decision is not None else None
        canary = rollout.canary_revision if rollout is not None else None
        canary_weight = decision.weights.get(canary, 0) if decision is not None and canary else 0
        status = compute(
            md, revisions, deployments, weights, problem, paused, self.clock(), rollout, canary_weight
        )
        applied = spec is not None and problem is None
        shown = status_traffic(md, spec, observed, problem.message if problem else None, applied)
        if shown is not None:
            status["traffic"] = shown
        ab, ab_requeue = self.ab_test.status(md, spec if applied else None, status["variants"], self.now())
        if ab is not None:
            status["abTest"] = ab
        requeue = _sooner(requeue, ab_requeue)
        old = md.get("status") or {}
        if problem is not None and "rollout" in old:
            status["rollout"] = old["rollout"]  # the engine's memory survives a refused spec
        if status_changed(status, old):
            self.kube.apply_status(KIND, API_VERSION, namespace, name, status)
            self._transition_events(md, old, status, posted)
        metrics.record_object(namespace, name, status, posted)
        return Outcome(self.kube.writes() - before, requeue, status["phase"])

    def _post(
        self, md: dict[str, Any], revisions: dict[str, VariantRevisions], decision: Decision | None
    ) -> set[str]:
        """Promotion Events and the engine's own; returns the reasons posted."""
        posted: set[str] = set()
        for r in revisions.values():
            if r.promoted:
                self._event(md, "Normal", "Promoted", f"revision {r.stable} now serves variant {r.variant}")
        for ev in decision.events if decision is not None else ():
            self._event(md, ev.type, ev.reason, ev.message)
            posted.add(ev.reason)
        return posted

    def _execute(self, md: dict[str, Any], actions: list[Action], live: dict[Key, dict[str, Any]]) -> None:
        """Makes the writes; `live` (observed children) follows them."""
        ns = md["metadata"]["namespace"]
        for a in actions:
            if a.verb == "delete":
                uid = (a.live or {}).get("metadata", {}).get("uid")
                self.kube.delete(a.kind, ns, a.name, uid)
                live.pop((a.kind, a.name), None)
                self._event(md, "Normal", "Deleted", f"Deleted {a.kind} {a.name} (no longer desired)")
                continue
            live[(a.kind, a.name)] = self.kube.apply(a.manifest)
            self._event(md, "Normal", *self._describe(a))

    @staticmethod
    def _describe(a: Action) -> tuple[str, str]:
        if a.verb == "create":
            return "Created", f"Created {a.kind} {a.name}"
        if a.kind == "Deployment" and a.live is not None:
            was = a.live.get("spec", {}).get("replicas")
            now = a.manifest.get("spec", {}).get("replicas")
            if now is not None and was != now:
                return "Scaled", f"Scaled Deployment {a.name} from {was} to {now} replicas"
        return "Updated", f"Re-applied {a.kind} {a.name} (it differed from the rendered manifest)"

    def _scale(self, md: dict[str, Any], scale: dict[str, int], live: dict[Key, dict[str, Any]]) -> None:
        ns = md["metadata"]["namespace"]
        for name, replicas in scale.items():
            was = live.get(("Deployment", name), {}).get("spec", {}).get("replicas")
            live[("Deployment", name)] = self.kube.scale("Deployment", ns, name, replicas)
            self._event(md, "Normal", "Scaled", f"Scaled Deployment {name} from {was} to {replicas} replicas")

    def _transition_events(
        self, md: dict[str, Any], old: dict[str, Any], new: dict[str, Any], posted: set[str]
    ) -> None:
        b_ready, a_ready = condition_of(old, "Ready"), condition_of(new, "Ready")
        b_deg, a_deg = condition_of(old, "Degraded"), condition_of(new, "Degraded")
        if a_deg.get("status") == "True":
            repeated = a_deg.get("reason") in posted  # the engine's own Event already said it
            if (b_deg.get("status"), b_deg.get("reason")) != ("True", a_deg.get("reason")) and not repeated:
                self._event(md, "Warning", str(a_deg.get("reason")), str(a_deg.get("message")))
        elif a_ready.get("status") == "True" and b_ready.get("status") != "True":
            self._event(md, "Normal", "Ready", f"All pods ready ({new.get('ready')})")

    def _event(self, md: dict[str, Any], etype: str, reason: str, message: str) -> None:
        try:
            self.kube.event(md, etype, reason, message)
        except Exception as e:  # an Event is informative; losing one must not fail the reconcile
            log.warning("could not post event %s on %s: %s", reason, md["metadata"]["name"], e)
