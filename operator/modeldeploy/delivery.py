"""The progressive delivery engine (rollout/) wired to the reconciler: it rolls out the primary variant of
every ModelDeployment, whatever the strategy (rollout/config.py `effective_steps` says what each one walks).
Extra (A/B) variants switch when Ready (revisions.py).

`Delivery.decide` is the edge: it reads the persisted state from status.rollout, runs the analysis when it is
due (blocking Prometheus queries, bounded by the client timeout: this runs in a reconcile worker thread, never
on the asyncio loop) and asks the pure engine for the next state. `primary_plan` (pure) turns the decision
into what the reconciler renders, keeps, scales and deletes for the primary variant's revisions.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from modeldeploy.analysis.checks import Target
from modeldeploy.analysis.runner import Querier, run_analysis
from modeldeploy.api.schema import PRIMARY
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.kube.client import ApiError, KubeClient
from modeldeploy.plan import Key
from modeldeploy.prometheus import PrometheusClient, ProviderError, ProviderErrorKind, QueryResult
from modeldeploy.render.naming import LABEL_REVISION, LABEL_VARIANT, workload_name
from modeldeploy.render.variants import Variant
from modeldeploy.revisions import deployment_ready
from modeldeploy.rollout.actions import parse_action
from modeldeploy.rollout.config import RolloutConfig
from modeldeploy.rollout.engine import Decision, Observed, analysis_due, decide
from modeldeploy.rollout.state import from_status
from modeldeploy.settings import Settings

BASIC_AUTH_SECRET = "kubernetes.io/basic-auth"


def primary_deployments(deployments: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """revision -> observed Deployment of the primary variant."""
    out: dict[str, Mapping[str, Any]] = {}
    for dep in deployments.values():
        labels = dep.get("metadata", {}).get("labels", {}) or {}
        if labels.get(LABEL_VARIANT) == PRIMARY and labels.get(LABEL_REVISION):
            out[str(labels[LABEL_REVISION])] = dep
    return out


def desired_model(spec: ModelDeploymentSpec) -> str:
    m = spec.model
    return f"{m.name}:{m.version}" + (f" ({m.quantization})" if m.quantization != "none" else "")


def serving_replicas(v: Variant) -> int:
    """Replicas a serving revision runs with (the HPA's floor when autoscaled)."""
    if v.autoscaling is not None:
        return v.autoscaling.min_replicas or 1
    return v.replicas


class Unavailable:
    """A Querier that answers every query with the same provider error (no address, no token): the engine
    counts it toward consecutiveErrorLimit like any other provider error."""

    def __init__(self, message: str) -> None:
        self.error = ProviderError(ProviderErrorKind.UNREACHABLE, message)

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        return QueryResult(promql, error=self.error)


class Delivery:
    def __init__(self, kube: KubeClient, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings

    def decide(
        self,
        md: Mapping[str, Any],
        spec: ModelDeploymentSpec,
        primary: Variant,
        deployments: Mapping[str, Mapping[str, Any]],
        now: datetime,
    ) -> Decision:
        meta, status = md["metadata"], md.get("status") or {}
        cfg = spec.rollout
        state = from_status(status.get("rollout"), status.get("stableRevision"))
        by_revision = primary_deployments(deployments)
        run = None
        if analysis_due(cfg, state, now) and state.canary_revision is not None:
            target = Target(
                meta["namespace"], meta["name"], spec.model.name, PRIMARY, state.canary_revision,
                state.stable_revision,
            )
            run = run_analysis(self.querier(cfg, meta["namespace"]), cfg.metrics, target, cfg.interval, now)
        observed = Observed(
            desired_revision=primary.revision,
            desired_model=desired_model(spec),
            replicas=serving_replicas(primary),
            ready_revisions=frozenset(r for r, dep in by_revision.items() if deployment_ready(dep)),
            analysis=run,
            action=parse_action(meta.get("annotations")),
            existing_revisions=frozenset(by_revision),
        )
        return decide(cfg, state, observed, now)

    def querier(self, cfg: RolloutConfig, namespace: str) -> Querier:
        """This ModelDeployment's Prometheus client (its address/timeout/token, else the operator's)."""
        ref = cfg.prometheus
        address = (ref.address if ref else None) or self.settings.prometheus_url
        if not address:
            return Unavailable("no Prometheus address: set spec.rollout.prometheus.address or "
                               "MODELDEPLOY_PROMETHEUS_URL")
        timeout = (ref.timeout_seconds if ref else None) or self.settings.prometheus_timeout
        if ref is not None and ref.auth_secret_ref is not None:
            where = (namespace, ref.auth_secret_ref.name, ref.auth_secret_ref.key)
        elif self.settings.prometheus_auth_secret:
            ns, _, name = self.settings.prometheus_auth_secret.partition("/")
            where = (ns, name, "token")
        else:
            return PrometheusClient(address, timeout)
        authorization = self.authorization(*where)
        if isinstance(authorization, Unavailable):
            return authorization
        return PrometheusClient(address, timeout, authorization)

    def authorization(self, namespace: str, name: str, key: str) -> str | Unavailable:
        """The `Authorization` header from a Secret: Basic from a `kubernetes.io/basic-auth` Secret
        (`username`, `password`; what Prometheus' own web config checks), else Bearer from `key`."""
        where = f"Prometheus auth Secret {namespace}/{name}"
        try:
            secret = self.kube.get_secret(namespace, name)
        except ApiError as e:
            return Unavailable(f"cannot read {where}: HTTP {e.status}")
        if secret is None:
            return Unavailable(f"{where} not found")
        basic = secret.get("type") == BASIC_AUTH_SECRET
        values: dict[str, str] = {}
        for k in ("username", "password") if basic else (key,):
            raw = (secret.get("data") or {}).get(k)
            if raw is None:
                return Unavailable(f"{where} has no key {k!r}")
            try:
                values[k] = base64.b64decode(raw).decode()
            except (binascii.Error, UnicodeDecodeError):
                return Unavailable(f"{where} key {k!r} is not base64 text")
        if basic:
            pair = f"{values['username']}:{values['password']}".encode()
            return f"Basic {base64.b64encode(pair).decode()}"
        return f"Bearer {values[key].strip()}"


@dataclass(frozen=True)
class PrimaryPlan:
    """What the reconciler does with the primary variant's revisions for one decision."""

    variant: Variant
    """The desired revision to render (at zero replicas, without HPA, when the decision holds it)."""
    keep: frozenset[Key]
    """Children of retained older revisions: neither re-rendered nor deleted."""
    scale: dict[str, int]
    """Deployment name -> replicas to patch (older revisions are not rendered from the current spec)."""


def primary_plan(
    md_name: str, primary: Variant, decision: Decision, observed: Mapping[Key, Mapping[str, Any]]
) -> PrimaryPlan:
    desired = primary.revision
    render = primary
    if decision.replicas.get(desired, 1) == 0:
        render = replace(primary, replicas=0, autoscaling=None)
    keep: set[Key] = set()
    scale: dict[str, int] = {}
    for revision in sorted(decision.retain - {desired}):
        name = workload_name(md_name, PRIMARY, revision)
        want = decision.replicas.get(revision, 0)
        keep.update({("Deployment", name), ("Service", name)})
        hpa = observed.get(("HorizontalPodAutoscaler", name))
        if hpa is not None and want > 0:
            keep.add(("HorizontalPodAutoscaler", name))  # the HPA owns its replicas while it serves
            continue
        dep = observed.get(("Deployment", name))
        if dep is not None and int(dep.get("spec", {}).get("replicas", 1)) != want:
            scale[name] = want
    return PrimaryPlan(render, frozenset(keep), scale)
