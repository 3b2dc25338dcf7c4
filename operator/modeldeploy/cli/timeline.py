"""Readable views of a ModelDeployment's rollout for `kubectl modeldeploy status|history`. Pure: JSON in,
text out (the object as `kubectl get -o json` prints it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.rollout.state import RolloutState, from_status

OUTCOME_MARK = {"Pass": "PASS", "Fail": "FAIL", "Inconclusive": "WAIT", "Error": "ERR "}


def _time(value: Any) -> str:
    """`2024-01-01 10:00:05` from a datetime (or an already formatted string)."""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value or "-")
    return text.replace("T", " ").replace("+00:00", "").rstrip("Z")


def _bound(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _figure(value: Any, kind: str) -> str:
    """One cell of the A/B table; `-` for no data."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "seconds":
        return f"{value * 1000:.3g}ms" if value < 1 else f"{value:.3g}s"
    return f"{value:g}" if kind == "count" else f"{value:.3g}"


def format_ab_test(ab: Mapping[str, Any]) -> list[str]:
    """The variants of an A/B test side by side (status.abTest)."""
    measured = ab.get("measuredAt")
    when = f"measured {_time(measured)}" if measured else "not measured yet"
    lines = [f"A/B test ({when}, window {ab.get('window', '-')}):"]
    rows = [["VARIANT", "REVISION", "WEIGHT", "REQ/S", "ERRORS", "P50", "P99", "ACCURACY", "FEEDBACK"]]
    for v in ab.get("variants") or []:
        rows.append([
            str(v.get("name", "?")), str(v.get("revision", "-")), f"{v.get('weight', 0)}%",
            _figure(v.get("requestsPerSecond"), "rate"), _figure(v.get("errorRate"), "percent"),
            _figure(v.get("latencyP50"), "seconds"), _figure(v.get("latencyP99"), "seconds"),
            _figure(v.get("accuracy"), "percent"), _figure(v.get("feedback"), "count"),
        ])
    lines += ["  " + r for r in _table(rows)]
    if ab.get("message"):
        lines.append(f"  Warning: {ab['message']}")
    return lines


def _state(md: Mapping[str, Any]) -> RolloutState:
    status = md.get("status") or {}
    return from_status(status.get("rollout"), status.get("stableRevision"))


def _position(rollout: Mapping[str, Any], s: RolloutState) -> tuple[str, str]:
    """(label of the new revision, where its rollout is) in the words of the strategy."""
    strategy = rollout.get("strategy") or "Rolling"
    label = "Canary:" if strategy == "Canary" else "New:"
    if s.direct:
        return label, "direct (manual)"
    if strategy == "BlueGreen":
        return label, ("blue-green: all traffic, held for analysis before promotion" if s.canary_weight
                       else "blue-green: full size, no traffic until Ready")
    if strategy == "Rolling":
        return label, "rolling: promoted once Ready"
    return label, f"step {s.step_index + 1}/{len(rollout.get('steps') or []) or '?'}"


def format_timeline(md: Mapping[str, Any]) -> str:
    """Header (phase, revisions, step, weights, counters), the last analysis, then the timeline."""
    meta, status = md.get("metadata", {}), md.get("status") or {}
    s = _state(md)
    rollout = (md.get("spec") or {}).get("rollout") or {}
    lines = [
        f"ModelDeployment {meta.get('namespace', '?')}/{meta.get('name', '?')}",
        f"  Phase:    {status.get('phase', '-')} (rollout {s.phase.value})",
        f"  Message:  {s.message or status.get('message', '')}",
        f"  Stable:   {s.stable_revision or '-'} {s.stable_model}".rstrip(),
    ]
    if s.canary_revision:
        label, where = _position(rollout, s)
        lines += [
            f"  {label:<9} {s.canary_revision} {s.canary_model}  {where}",
            f"  Weights:  stable {100 - s.canary_weight}%  {label[:-1].lower()} {s.canary_weight}%",
            f"  Analysis: {s.analysis_runs} runs, {s.failures} failed ({s.consecutive_failures} in a row), "
            f"{s.consecutive_errors} errors in a row, {s.inconclusive_streak} inconclusive in a row",
        ]
        if s.paused_by_user:
            lines.append("  Paused by request: `kubectl modeldeploy resume` to continue")
    if s.held_revision:
        lines.append(f"  Held:     {s.held_revision} (change the spec or `kubectl modeldeploy retry`)")
    if status.get("abTest"):
        lines += ["", *format_ab_test(status["abTest"])]
    if s.last_analysis:
        lines += ["", f"Last analysis ({_time(s.last_analysis_at)}): {s.last_outcome or '-'}"]
        rows = [["", "METRIC", "VALUE", "MIN", "MAX", "SAMPLES", "DETAIL"]]
        for m in s.last_analysis:
            value = "-" if m.value is None else f"{m.value:.4g}"
            samples = "-" if m.samples is None else f"{m.samples:g}"
            rows.append([OUTCOME_MARK.get(m.outcome.value, "?"), m.name, value, _bound(m.min), _bound(m.max),
                         samples, m.message])
        lines += ["  " + r for r in _table(rows)]
    if s.timeline:
        lines += ["", "Timeline:"]
        rows = [["TIME", "STEP", "WEIGHT", "EVENT", "DETAIL"]]
        for t in s.timeline:
            kind = t.kind + (f" {t.outcome.value}" if t.outcome else "")
            rows.append([_time(t.at), "-" if t.step is None else str(t.step + 1), f"{t.weight}%", kind,
                         t.message])
        lines += ["  " + r for r in _table(rows)]
    return "\n".join(lines) + "\n"


def format_history(md: Mapping[str, Any]) -> str:
    """The finished rollouts, newest first; the revisions marked * can be `rollback` targets."""
    s = _state(md)
    if not s.history:
        return "No rollout history yet.\n"
    rows = [["REVISION", "MODEL", "OUTCOME", "STARTED", "FINISHED", "REASON"]]
    for h in s.history:
        mark = " (stable)" if h.revision == s.stable_revision else ""
        rows.append([h.revision + mark, h.model, h.outcome.value, _time(h.started_at), _time(h.finished_at),
                     h.reason])
    return "\n".join(_table(rows)) + "\n"
