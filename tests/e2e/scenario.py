"""Shared steps of the end-to-end scenarios: deploy a first revision, roll out a new one under load, and the
assertions about the router (weights in its table, requests it sent to each backend)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from devcluster.e2e_models import ModelArtifact
from devcluster.e2e_rollout import RolloutWatcher, canary_percent, md_manifest
from devcluster.e2e_stack import Stack
from devcluster.e2e_traffic import TrafficLoop
from tests.e2e.conftest import diagnostics

READY_TIMEOUT = 240.0
"""A model server process starts in a few seconds, but the box may be busy with other work."""
ROLLOUT_TIMEOUT = 300.0


def backend(revision: str) -> str:
    """The router's name of a primary revision (traffic/plan.backend_name)."""
    return f"primary-{revision}"


def deploy_first(stack: Stack, name: str, model: ModelArtifact, rollout: dict[str, Any]) -> str:
    """Apply the ModelDeployment, wait until it is Healthy and its Service answers; the stable revision."""
    stack.apply(md_manifest(name, stack.ns, model, rollout))
    status = stack.wait(lambda: _healthy(stack, name), READY_TIMEOUT, f"{name} Healthy")
    revision: str = status["stableRevision"]
    assert stack.bridge is not None
    stack.bridge.wait_ready(stack.ns, f"{name}-{backend(revision)}", timeout=READY_TIMEOUT)
    if stack.has_router(name):
        stack.wait(lambda: (stack.router_weights(name) or {}).get(backend(revision)), READY_TIMEOUT,
                   f"the router of {name} sending traffic to {revision}")
    stack.wait(lambda: _answers(stack, name), READY_TIMEOUT, f"a prediction through Service {name}")
    return revision


def _healthy(stack: Stack, name: str) -> dict[str, Any] | None:
    status = stack.status(name)
    ok = status.get("phase") == "Healthy" and status.get("stableRevision")
    return status if ok else None


def _answers(stack: Stack, name: str) -> bool:
    loop = stack.traffic(name, rate=5, feedback=False, max_seconds=3)
    with loop:
        time.sleep(1.5)
    return any(a.code == 200 for a in loop.snapshot())


@dataclass
class Rollout:
    """A rollout under load, watched: what the operator decided and what the router did."""

    stack: Stack
    name: str
    stable: str
    load: TrafficLoop
    watcher: RolloutWatcher
    applied_at: float
    canary: str = ""

    def wait_canary(self) -> str:
        def canary() -> str | None:
            rev = self.stack.rollout(self.name).get("canaryRevision")
            return rev if rev and rev != self.stable else None

        self.canary = self.stack.wait(canary, READY_TIMEOUT, f"a canary revision of {self.name}")
        return self.canary

    def wait_phase(self, phase: str, timeout: float = ROLLOUT_TIMEOUT) -> dict[str, Any]:
        """Until status.rollout.phase is `phase` (Stable after a promotion, RolledBack after a rollback)."""
        try:
            state: dict[str, Any] = self.stack.wait(
                lambda: (r := self.stack.rollout(self.name)).get("phase") == phase and r, timeout,
                f"{self.name} rollout phase {phase}")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{diagnostics(self.stack, self.name)}") from None
        return state

    def wait_router_weight_zero(self, revision: str, timeout: float = 60) -> float:
        """Until the router's table gives `revision` no traffic; returns when it applied that table."""
        def zero() -> float | None:
            view = self.stack.router_view(self.name)
            if not view or not view.get("table"):
                return None
            weights = {v["name"]: int(v["weight"]) for v in view["table"]["variants"]}
            return float(view["applied_at"]) if weights.get(backend(revision), 0) == 0 else None

        applied: float = self.stack.wait(zero, timeout, f"router weight 0 for {revision}", interval=0.2)
        return applied

    def canary_percents(self) -> list[float]:
        """The canary's share in each route table the router applied, in order."""
        return [canary_percent(t.weights, backend(self.canary)) for t in self.watcher.tables]


def start_rollout(stack: Stack, name: str, stable: str, model: ModelArtifact, rollout: dict[str, Any],
                  rate: float = 25.0, manifest: dict[str, Any] | None = None) -> Rollout:
    """Start load (with feedback) and the watcher, then apply the new model (or `manifest`, for changes
    other than the model); stop both with `finish`."""
    load = stack.traffic(name, rate=rate).start()
    load.wait_answers(20, 60)
    applied_at = time.time()
    watcher = RolloutWatcher(stack, name, since=applied_at).start()
    stack.apply(manifest or md_manifest(name, stack.ns, model, rollout))
    return Rollout(stack, name, stable, load, watcher, applied_at)


def finish(r: Rollout) -> None:
    r.load.stop()
    r.watcher.stop()


def assert_no_traffic_after(r: Rollout, revision: str, since: float) -> None:
    """No answer from `revision` after `since`, and the router's counter for it no longer moves (a router
    the bridge restarted meanwhile starts from 0 and must have sent it nothing)."""
    late = [a for a in r.load.snapshot(since) if a.variant == backend(revision)]
    assert not late, f"{len(late)} requests reached {revision} after its weight went to 0: {late[:3]}"
    pid_before, before = _router_total(r, revision)
    time.sleep(3)
    pid_after, after = _router_total(r, revision)
    expected = before if pid_after == pid_before else 0.0
    assert after == expected, f"mdroute_requests_total for {revision} grows: {before} (router pid " \
                              f"{pid_before}) -> {after} (pid {pid_after})"


def _router_total(r: Rollout, revision: str) -> tuple[int | None, float]:
    """(router pid, requests it sent to `revision`), read from one router process."""
    assert r.stack.bridge is not None
    bridge = r.stack.bridge

    def read() -> tuple[int | None, float] | None:
        pid = getattr(bridge.process(r.stack.ns, f"{r.name}-router"), "pid", None)
        counts = r.stack.router_requests(r.name)
        if counts is None or getattr(bridge.process(r.stack.ns, f"{r.name}-router"), "pid", None) != pid:
            return None
        return pid, sum(v for (variant, _), v in counts.items() if variant == backend(revision))

    result: tuple[int | None, float] = r.stack.wait(read, 60, "the router's metrics")
    return result


def events_named(stack: Stack, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in stack.events(name) if e["reason"] == reason]
