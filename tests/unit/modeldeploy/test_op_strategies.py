"""Rolling and BlueGreen through the whole reconciler over an in-memory API: what is created, kept, scaled
and routed at each pass, the status it records, and no write once converged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from mdserve.router.table import ROUTES_KEY, parse_table
from modeldeploy.kube.client import KubeClient
from modeldeploy.reconciler import Reconciler
from modeldeploy.settings import Settings
from tests.unit.modeldeploy.md_helpers import BASIC, IMAGE, md_with
from tests.unit.modeldeploy.test_op_routing import MemoryKube

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class World:
    """A ModelDeployment, its children in memory, a controllable clock, and pods that become ready on
    request (as the Deployment controller would report them)."""

    def __init__(self, rollout: dict[str, Any]) -> None:
        self.kube = MemoryKube(md_with({**BASIC, "serving": {"replicas": 2}, "rollout": rollout}))
        self.now = T0
        self.reconciler = Reconciler(cast(KubeClient, self.kube), Settings(serving_image=IMAGE),
                                     clock=lambda: "2026-01-01T00:00:00Z", now=lambda: self.now)

    def run(self, seconds: float = 0) -> int:
        self.now += timedelta(seconds=seconds)
        return self.reconciler.reconcile("ns1", "m").writes

    def ready(self) -> None:
        for (kind, _), obj in self.kube.objects.items():
            if kind == "Deployment":
                n = obj["spec"].get("replicas", 1)
                obj["status"] = {"observedGeneration": 1, "replicas": n, "updatedReplicas": n,
                                 "availableReplicas": n, "readyReplicas": n}

    def new_version(self, version: str) -> None:
        self.kube.md["spec"]["model"]["version"] = version
        self.kube.md["metadata"]["generation"] += 1

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.kube.md["status"]
        return status

    def replicas(self) -> dict[str, int]:
        """Model server Deployment -> spec.replicas."""
        return {name: obj["spec"]["replicas"] for (kind, name), obj in self.kube.objects.items()
                if kind == "Deployment" and name != "m-router"}

    def routed(self) -> dict[str, int]:
        """Route table backends with a positive weight."""
        table = parse_table(self.kube.objects[("ConfigMap", "m-routes")]["data"][ROUTES_KEY])
        return {v.name: v.weight for v in table.variants if v.weight > 0}


def converged(rollout: dict[str, Any]) -> tuple[World, str]:
    w = World(rollout)
    w.run()
    w.ready()
    w.run()
    assert w.status["phase"] == "Healthy"
    return w, str(w.status["stableRevision"])


def test_rolling_promotes_when_ready_keeps_the_old_revision_at_zero_and_then_writes_nothing() -> None:
    w, rev1 = converged({"strategy": "Rolling", "scaleDownDelaySeconds": 30})
    assert w.run() == 0
    w.new_version("2")
    w.run()
    rev2 = w.status["rollout"]["canaryRevision"]
    assert w.status["phase"] == "Progressing" and w.status["stableRevision"] == rev1
    assert w.replicas() == {f"m-primary-{rev1}": 2, f"m-primary-{rev2}": 2}
    assert w.routed() == {f"primary-{rev1}": 1}

    w.ready()
    w.run(1)
    assert w.status["phase"] == "Healthy" and w.status["stableRevision"] == rev2
    assert [(h["revision"], h["outcome"]) for h in w.status["rollout"]["history"]] == [
        (rev2, "Promoted"), (rev1, "Promoted"),
    ]
    assert w.routed() == {f"primary-{rev2}": 1}
    assert w.replicas() == {f"m-primary-{rev1}": 2, f"m-primary-{rev2}": 2}, "old pods kept for the delay"

    w.run(30)
    assert w.replicas() == {f"m-primary-{rev1}": 0, f"m-primary-{rev2}": 2}
    assert ("Service", f"m-primary-{rev1}") in w.kube.objects, "a rollback target keeps its Service"
    w.ready()
    assert w.run(5) == 0 and w.run(600) == 0


def test_blue_green_switches_from_zero_to_all_traffic_and_holds_the_old_revision() -> None:
    w, rev1 = converged({"strategy": "BlueGreen", "interval": "20s", "scaleDownDelaySeconds": 10})
    w.new_version("2")
    w.run()
    rev2 = w.status["rollout"]["canaryRevision"]
    assert w.replicas() == {f"m-primary-{rev1}": 2, f"m-primary-{rev2}": 2}, "full size next to the stable"
    assert w.routed() == {f"primary-{rev1}": 1} and w.status["canaryWeight"] == 0

    w.ready()
    w.run(1)
    assert w.routed() == {f"primary-{rev2}": 1} and w.status["canaryWeight"] == 100
    assert w.status["phase"] == "Progressing" and w.status["stableRevision"] == rev1
    assert w.run(10) == 0, "holding: nothing to write"

    w.run(10)
    assert w.status["stableRevision"] == rev2 and w.status["phase"] == "Healthy"
    assert w.status["rollout"]["history"][0]["reason"] == "held 20s on all traffic"
    assert w.replicas() == {f"m-primary-{rev1}": 2, f"m-primary-{rev2}": 2}
    w.run(10)
    assert w.replicas() == {f"m-primary-{rev1}": 0, f"m-primary-{rev2}": 2}
