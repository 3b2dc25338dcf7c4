"""The table in use: validates what sources deliver, keeps the last good table, reports why."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from mdserve.router.decide import Decider
from mdserve.router.metrics import RouterMetrics
from mdserve.router.table import RouteTable, RouteTableError, parse_table

log = logging.getLogger("mdserve.router")

Outcome = Literal["applied", "unchanged", "invalid"]


def resolve_backends(table: RouteTable, overrides: Mapping[str, str]) -> dict[str, str]:
    """Backend URL per variant, after ``--backend-override``.

    An override key matches, in this order, a variant name, a backend ``host:port`` or a backend
    host; this lets a local harness point in-cluster Service names at loopback ports.
    """
    resolved: dict[str, str] = {}
    for v in table.variants:
        parts = urlsplit(v.backend)
        for key in (v.name, parts.netloc, parts.hostname or ""):
            if key in overrides:
                resolved[v.name] = overrides[key].rstrip("/")
                break
        else:
            resolved[v.name] = v.backend
    return resolved


@dataclass(frozen=True)
class ActiveTable:
    """A validated table ready to serve from."""

    table: RouteTable
    """The parsed table."""
    decider: Decider
    """Its compiled routing state."""
    backends: dict[str, str]
    """Effective backend URL per variant name (overrides applied)."""
    digest: str
    """SHA-256 of the document it came from; identical re-deliveries are ignored."""
    source: str
    """Which source delivered it (``file``, ``kubernetes``, ``admin``)."""
    applied_at: float = field(default_factory=time.time)
    """Unix time it was applied."""


class TableHolder:
    """Owns the active table; sources call ``offer``/``source_error``, the proxy reads ``active``."""

    def __init__(self, metrics: RouterMetrics, overrides: Mapping[str, str] | None = None) -> None:
        self.metrics = metrics
        self.overrides = dict(overrides or {})
        self.active: ActiveTable | None = None
        self.last_error: str | None = None
        """Why the newest delivery or source access failed, if it did; cleared by a good table."""
        self._last_rejected: str | None = None

    def offer(self, document: str | bytes, source: str) -> Outcome:
        """Validate and apply a document; on error keep the current table and record why."""
        raw = document.encode() if isinstance(document, str) else document
        digest = hashlib.sha256(raw).hexdigest()
        if self.active is not None and digest == self.active.digest:
            return "unchanged"
        if digest == self._last_rejected:
            return "invalid"  # the same bad document again (e.g. after a re-list): already reported
        try:
            table = parse_table(raw)
            active = ActiveTable(
                table, Decider(table), resolve_backends(table, self.overrides), digest, source
            )
        except (RouteTableError, ValueError) as exc:
            self._last_rejected = digest
            self.last_error = f"{source}: {exc}"
            self.metrics.reloads.labels(source, "invalid").inc()
            self.metrics.table_rejected.set(1)
            kept = self.active.table.version if self.active else "none"
            log.error("rejected route table from %s, keeping version %s: %s", source, kept, exc)
            return "invalid"
        self._install(active)
        return "applied"

    def source_error(self, source: str, message: str) -> None:
        """A source could not be read; the current table stays in use."""
        self.last_error = f"{source}: {message}"
        self.metrics.reloads.labels(source, "error").inc()
        kept = self.active.table.version if self.active else "none"
        log.warning("route source %s failed, keeping version %s: %s", source, kept, message)

    def _install(self, active: ActiveTable) -> None:
        previous = self.active
        self.active = active
        self._last_rejected = None
        self.last_error = None
        m = self.metrics
        m.reloads.labels(active.source, "applied").inc()
        m.table_rejected.set(0)
        m.table_applied_at.set(active.applied_at)
        m.table_info.clear()
        m.table_info.labels(active.table.version).set(1)
        names = {v.name for v in active.table.variants}
        if previous is not None:
            for old in previous.table.variants:
                if old.name not in names:
                    m.weight.remove(old.name)
        for v in active.table.variants:
            m.weight.labels(v.name).set(v.weight)
        log.info(
            "route table %s applied from %s: %s",
            active.table.version,
            active.source,
            ", ".join(f"{v.name}={v.weight}@{active.backends[v.name]}" for v in active.table.variants),
        )

    def view(self) -> dict[str, object]:
        """What ``GET /-/routes`` shows."""
        a = self.active
        return {
            "version": a.table.version if a else None,
            "source": a.source if a else None,
            "applied_at": a.applied_at if a else None,
            "backends": a.backends if a else {},
            "table": a.table.model_dump(mode="json") if a else None,
            "last_error": self.last_error,
        }
