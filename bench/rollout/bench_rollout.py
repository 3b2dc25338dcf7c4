"""Rollout reaction times on the real stack (cluster, operator process, router, model servers, Prometheus at
1 s scrapes), written to the `rollout` section of docs/benchmarks.md.

- onset of degradation -> weight 0 at the router: a faulty canary (HTTP 500 on two thirds of the rows) is
  rolled out under load; onset = the first failed answer the load generator got from it; end = when the
  router applied the route table giving it weight 0 (the router's own `applied_at` from `/-/routes`);
- decision -> traffic shifted: the operator's timeline entry (Step, RolledBack, Promoted: its `at` is taken
  at the start of the reconcile that decided, before the analysis queries) to the router's `applied_at` of
  the table with the decided weights.

The rollout configuration is the end-to-end tests' (`interval: 5s`, steps 20% and 50% held 10 s, error-rate
<= 0.05 and accuracy >= 0.8 with minSamples 10, default limits: consecutiveFailureLimit 2).

    .venv/bin/python bench/rollout/bench_rollout.py [--rollbacks 3] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devcluster import benchmarks_doc
from devcluster.e2e_models import ModelArtifact, train
from devcluster.e2e_rollout import (
    RolloutWatcher,
    TableChange,
    canary_percent,
    canary_rollout,
    md_manifest,
    parse_time,
)
from devcluster.e2e_stack import Stack, StackOptions
from devcluster.e2e_traffic import TrafficLoop

REPO = Path(__file__).resolve().parents[2]
NAME = "iris-bench"
ROLLOUT = canary_rollout()


def say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def wait_state(stack: Stack, check: Any, timeout: float, what: str) -> dict[str, Any]:
    state: dict[str, Any] = stack.wait(lambda: (r := stack.rollout(NAME)) and check(r) and r, timeout, what)
    return state


def shifts(watcher: RolloutWatcher, canary: str, after: float) -> list[tuple[str, float]]:
    """(what, decision -> table applied) for every Step/RolledBack/Promoted entry of this canary's rollout."""
    backend = f"primary-{canary}"
    out = []
    for e in watcher.entries:
        at = parse_time(e["at"])
        if at < after or e["kind"] not in ("Step", "RolledBack", "Promoted"):
            continue
        want = {"Step": float(e["weight"]), "RolledBack": 0.0, "Promoted": 100.0}[e["kind"]]
        table = _first(
            watcher.tables, lambda t, want=want: round(canary_percent(t.weights, backend)) == want, at - 1.0
        )
        if table is not None:
            label = f"{e['kind']} {e['weight']}%" if e["kind"] == "Step" else e["kind"]
            out.append((label, table.applied_at - at))
    return out


def _first(tables: list[TableChange], check: Any, after: float) -> TableChange | None:
    return next((t for t in tables if t.applied_at >= after and check(t)), None)


RESULTS = Path(__file__).resolve().parent / "results" / "rollout.json"


def timeline(
    watcher: RolloutWatcher, canary: str, after: float, title: str, marks: list[tuple[float, str]]
) -> dict[str, Any]:
    """The canary's share at the router over time (seconds since `after`), for bench/plots.py."""
    backend = f"primary-{canary}"
    points = [
        {"t": round(t.applied_at - after, 3), "canary_weight": canary_percent(t.weights, backend)}
        for t in watcher.tables
        if t.applied_at >= after
    ]
    markers = [{"t": round(at - after, 3), "label": label} for at, label in marks]
    for e in watcher.entries:
        at = parse_time(e["at"])
        if at >= after and e["kind"] in ("Step", "RolledBack", "Promoted", "Analysis"):
            verdict = e.get("outcome", "") if e["kind"] == "Analysis" else ""
            markers.append({"t": round(at - after, 3), "label": f"{e['kind']} {verdict}".strip()})
    return {"title": title, "points": [{"t": 0.0, "canary_weight": 0.0}, *points], "markers": markers}


@dataclass
class Observed:
    """One rollout under load: the load, the watcher of operator and router, and when it was applied."""

    load: TrafficLoop
    watcher: RolloutWatcher
    applied: float
    canary: str


@contextmanager
def observed_rollout(stack: Stack, stable: str, model: ModelArtifact) -> Iterator[Observed]:
    """Start load and the watcher, apply `model`, wait for its canary; stops both on exit."""
    load = stack.traffic(NAME, rate=25).start()
    watcher = RolloutWatcher(stack, NAME, period=0.1, since=time.time()).start()
    try:
        load.wait_answers(20, 60)
        applied = time.time()
        stack.apply(md_manifest(NAME, stack.ns, model, ROLLOUT))
        canary = wait_state(
            stack, lambda r: r.get("canaryRevision") not in (None, stable), 180, "the canary"
        )["canaryRevision"]
        yield Observed(load, watcher, applied, canary)
    finally:
        watcher.stop()
        load.stop()


def rollback_once(stack: Stack, stable: str, model: ModelArtifact) -> dict[str, Any]:
    with observed_rollout(stack, stable, model) as o:
        wait_state(stack, lambda r: r.get("phase") == "RolledBack", 300, "the rollback")
        backend = f"primary-{o.canary}"
        stack.wait(lambda: (stack.router_weights(NAME) or {}).get(backend, 0) == 0, 60, "router weight 0")
        time.sleep(1.0)
    watcher, canary, applied = o.watcher, o.canary, o.applied
    failed = [a for a in o.load.snapshot(applied) if a.variant == backend and a.code >= 500]
    served = [a for a in o.load.snapshot(applied) if a.variant == backend]
    zero = _first(
        watcher.tables,
        lambda t: (
            t.weights.get(backend, 0) == 0
            and any(s.weights.get(backend, 0) > 0 for s in watcher.tables if s.applied_at < t.applied_at)
        ),
        applied,
    )
    first_traffic = _first(watcher.tables, lambda t: t.weights.get(backend, 0) > 0, applied)
    if not failed or zero is None or first_traffic is None:
        raise RuntimeError(f"incomplete measurement: {len(failed)} failures, tables {watcher.tables}")
    marks = [(applied, "kubectl apply"), (failed[0].at, "first failed request")]
    return {
        "timeline": timeline(watcher, canary, applied, "bad canary: rolled back", marks),
        "onset_to_zero": zero.applied_at - failed[0].at,
        "traffic_to_zero": zero.applied_at - first_traffic.applied_at,
        "apply_to_zero": zero.applied_at - applied,
        "shifts": shifts(watcher, canary, applied),
        "served": len(served),
        "failed": len(failed),
    }


Shifts = list[tuple[str, float]]


def promote_once(stack: Stack, stable: str, model: ModelArtifact) -> tuple[Shifts, float, dict[str, Any]]:
    """(decision -> traffic shifts, apply -> promoted seconds, the timeline series for the plot)."""
    with observed_rollout(stack, stable, model) as o:
        wait_state(
            stack,
            lambda r: r.get("phase") == "Stable" and r.get("stableRevision") == o.canary,
            300,
            "the promotion",
        )
        stack.wait(lambda: (stack.router_weights(NAME) or {}).get(f"primary-{stable}", 0) == 0, 60, "v1 at 0")
        time.sleep(1.0)
    series = timeline(
        o.watcher, o.canary, o.applied, "good canary: promoted step by step", [(o.applied, "kubectl apply")]
    )
    return shifts(o.watcher, o.canary, o.applied), time.time() - o.applied, series


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})"


def render(rollbacks: list[dict[str, Any]], promotion: Shifts, promote_s: float, router: str) -> str:
    every = [*(s for r in rollbacks for s in r["shifts"]), *promotion]
    # A canary's first step is the first table naming its new Service, which the Go router must resolve
    # through the pod bridge's Service map: reported apart from the later shifts.
    per_rollout: list[Shifts] = [*(r["shifts"] for r in rollbacks), promotion]
    first = [x[0][1] for x in per_rollout if x and x[0][0].startswith("Step")]
    rest = [d for x in per_rollout for i, (w, d) in enumerate(x) if i > 0 or not w.startswith("Step")]
    load = os.getloadavg()[0]
    lines = [
        "## Rollout reaction (rollout)",
        "",
        "Reproduce: `make cluster-up && .venv/bin/python bench/rollout/bench_rollout.py`.",
        "Everything but the pods is real: local control plane (kwok nodes), the operator as a process, the",
        "router and one model server per revision as local processes (pod bridge), Prometheus scraping them",
        "every second, 25 predictions/s with feedback. Rollout: `interval: 5s`, steps 20% / 50% held 10 s,",
        "error-rate <= 0.05 and accuracy >= 0.8 (minSamples 10), consecutiveFailureLimit 2 (default): a bad",
        "canary is rolled back at its third failed analysis in a row. The bad canary answers HTTP 500 to two",
        f"thirds of the rows. Router: `{router}`. Machine: {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}, load average {load:.1f} at the end.",
        "",
        "Times are wall-clock on one machine: the operator's timeline `at` (taken when the reconcile that",
        "decided starts, before its Prometheus queries) and the router's own `applied_at` (`GET /-/routes`).",
        "A canary gets its first step once its pods are Ready (the pod bridge marks them so when the model",
        "server answers its readiness probe); the Go router picks the new Service's local address up from",
        "the pod bridge's Service map without restarting.",
        "",
        "| measure | value | goal |",
        "|---|---:|---:|",
        f"| onset of degradation (first failed request) -> weight 0 at the router | "
        f"{_stats([r['onset_to_zero'] for r in rollbacks])} | <= 30 s |",
        f"| canary first given traffic -> weight 0 at the router | "
        f"{_stats([r['traffic_to_zero'] for r in rollbacks])} | |",
        f"| `kubectl apply` of the bad model -> weight 0 at the router | "
        f"{_stats([r['apply_to_zero'] for r in rollbacks])} | |",
        f"| decision (timeline entry) -> route table applied by the router: later steps, rollbacks, "
        f"promotions | {_stats(rest)} | <= 1 s |",
        f"| the same for a canary's first step (its Service just appeared) | "
        f"{_stats(first)} | <= 1 s |",
        f"| all decisions | {_stats([d for _, d in every])} | |",
        f"| `kubectl apply` of a good model -> promoted (2 steps) | {promote_s:.1f} s | |",
        "",
        "Each decision -> traffic shifted:",
        "",
        "| rollout | decision | seconds |",
        "|---|---|---:|",
    ]
    for i, r in enumerate(rollbacks, 1):
        name = f"bad canary {i} ({r['served']} requests served, {r['failed']} failed)"
        lines += [f"| {name} | {what} | {d:.3f} |" for what, d in r["shifts"]]
    lines += [f"| good canary | {what} | {d:.3f} |" for what, d in promotion]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Rewrites the `rollout` section of docs/benchmarks.md."""
    benchmarks_doc.write_section("rollout", text)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rollbacks", type=int, default=3, help="bad canaries rolled back (default 3)")
    parser.add_argument("--no-write", action="store_true", help="print, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    good = train("good", "1", work)
    bad = [train("faulty", f"2.{i}", work) for i in range(args.rollbacks)]
    better = train("good", "3", work, seed=2)
    with Stack(StackOptions(namespace="bench-rollout", workdir=work / "stack", log=say)) as stack:
        stack.kubectl(
            "delete",
            "md",
            NAME,
            "-n",
            stack.ns,
            "--ignore-not-found",
            "--cascade=foreground",
            "--timeout=120s",
        )
        stack.apply(md_manifest(NAME, stack.ns, good, ROLLOUT))
        stable = wait_state(
            stack, lambda r: r.get("phase") == "Stable" and r.get("stableRevision"), 240, "v1"
        )["stableRevision"]
        stack.wait(lambda: (stack.router_weights(NAME) or {}).get(f"primary-{stable}"), 240, "the router")
        rollbacks = []
        for i, model in enumerate(bad, 1):
            say(f"bad canary {i}/{len(bad)}")
            rollbacks.append(rollback_once(stack, stable, model))
            say(f"  {rollbacks[-1]}")
        router = " ".join(
            json.loads(
                stack.kubectl(
                    "get",
                    "deployment",
                    f"{NAME}-router",
                    "-n",
                    stack.ns,
                    "-o",
                    "jsonpath={.spec.template.spec.containers[0].command}",
                ).stdout
                or "[]"
            )
        )
        say("good canary")
        promotion, promote_s, promotion_series = promote_once(stack, stable, better)
        stack.delete(NAME)
    text = render(rollbacks, promotion, promote_s, router)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps({"series": [rollbacks[-1]["timeline"], promotion_series]}, indent=1) + "\n"
    )
    print(text)
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
