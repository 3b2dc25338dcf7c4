"""ModelDeployment manifests for rollout stories, and a watcher that records what the operator decided
(status.rollout.timeline) and what the router did (route table versions, weights, when applied).

The watcher polls in a thread (every 0.25 s by default) and calls `on_line` with one readable line per new
timeline entry and per route table change; the demo prints them, the benchmark measures them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from devcluster.e2e_models import ModelArtifact
from devcluster.e2e_stack import Stack


def canary_rollout(interval: str = "5s", weights: tuple[int, ...] = (20, 50), hold: str = "10s",
                   error_max: float = 0.05, accuracy_min: float = 0.8, min_samples: int = 10,
                   **extra: Any) -> dict[str, Any]:
    """`spec.rollout` of the tests: Canary steps held `hold` each, error-rate and accuracy gates."""
    return {
        "strategy": "Canary",
        "interval": interval,
        "steps": [{"setWeight": w, "pause": {"duration": hold}} for w in weights],
        "metrics": [
            {"name": "error-rate", "thresholdRange": {"max": error_max}, "minSamples": min_samples},
            {"name": "accuracy", "thresholdRange": {"min": accuracy_min}, "minSamples": min_samples},
        ],
        **extra,
    }


def md_manifest(name: str, namespace: str, model: ModelArtifact, rollout: dict[str, Any],
                replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "serving.modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": "iris", "format": "sklearn", "uri": model.uri, "version": model.version,
                      "sha256": model.sha256},
            "serving": {"replicas": replicas,
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                      "limits": {"memory": "512Mi"}}},
            "rollout": rollout,
        },
    }


def parse_time(value: str) -> float:
    """Unix time of an RFC 3339 timestamp from status."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def canary_percent(weights: dict[str, int], backend: str) -> float:
    """Percent of the table's traffic on `backend` (weights are gcd-reduced)."""
    total = sum(weights.values())
    return 0.0 if total == 0 else 100.0 * weights.get(backend, 0) / total


@dataclass(frozen=True)
class TableChange:
    seen: float
    """When the watcher saw it (time.time())."""
    applied_at: float
    """When the router applied it (its own clock, time.time())."""
    version: str
    weights: dict[str, int]


@dataclass
class RolloutWatcher:
    stack: Stack
    name: str
    on_line: Callable[[str], None] = lambda line: None
    period: float = 0.25
    since: float = 0.0
    """Timeline entries older than this (time.time()) are earlier rollouts': neither recorded nor shown."""
    entries: list[dict[str, Any]] = field(default_factory=list)
    tables: list[TableChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._seen: set[tuple[str, str, str]] = set()
        self._thread = threading.Thread(target=self._loop, name="rollout-watcher", daemon=True)
        self.md: dict[str, Any] = {}

    def start(self) -> RolloutWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling, after one last poll (what the caller just saw is recorded too)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        with contextlib.suppress(Exception):
            self.poll()

    def __enter__(self) -> RolloutWatcher:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            # The API or the router restarting: try again next period.
            with contextlib.suppress(Exception):
                self.poll()
            self._stop.wait(self.period)

    def poll(self) -> None:
        view = self.stack.router_view(self.name)
        if view and view.get("table"):
            weights = {v["name"]: int(v["weight"]) for v in view["table"]["variants"]}
            last = self.tables[-1] if self.tables else None
            if last is None or last.version != view["version"] or last.weights != weights:
                change = TableChange(time.time(), float(view.get("applied_at") or 0), str(view["version"]),
                                     weights)
                self.tables.append(change)
                shares = ", ".join(f"{k} {canary_percent(weights, k):.0f}%" for k in weights)
                self.on_line(f"router    table {change.version[:12]}: {shares}")
        self.md = self.stack.get(self.name)
        for entry in ((self.md.get("status") or {}).get("rollout") or {}).get("timeline") or []:
            key = (str(entry.get("at")), str(entry.get("kind")), str(entry.get("message", "")))
            if key in self._seen:
                continue
            self._seen.add(key)
            if parse_time(str(entry.get("at"))) < self.since:
                continue
            self.entries.append(entry)
            step = entry.get("step")
            where = f"step {step + 1}" if isinstance(step, int) else "      "
            outcome = f" {entry['outcome']}" if entry.get("outcome") else ""
            self.on_line(f"operator  {where} weight {entry.get('weight', 0):>3}%  "
                         f"{entry.get('kind')}{outcome}: {entry.get('message', '')}")

    def first_entry(self, kind: str, after: float = 0.0) -> dict[str, Any] | None:
        return next((e for e in self.entries if e.get("kind") == kind and parse_time(e["at"]) >= after), None)

    def first_table(self, check: Callable[[dict[str, int]], bool], after: float = 0.0) -> TableChange | None:
        return next((t for t in self.tables if t.applied_at >= after and check(t.weights)), None)
