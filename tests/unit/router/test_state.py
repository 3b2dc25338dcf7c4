"""The table holder: last good table wins, rejections are explained in logs and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mdserve.router.metrics import RouterMetrics
from mdserve.router.source_file import FileSource
from mdserve.router.state import TableHolder, resolve_backends
from mdserve.router.table import parse_table

pytestmark = pytest.mark.unit


def document(version: str, stable: int = 90, canary: int = 10, **extra: Any) -> str:
    return json.dumps(
        {
            "version": version,
            "variants": [
                {"name": "stable", "backend": "http://demo-stable.ns.svc:8080", "weight": stable},
                {"name": "canary", "backend": "http://demo-canary.ns.svc:8080", "weight": canary},
            ],
            **extra,
        }
    )


def sample(m: RouterMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_invalid_table_keeps_last_good_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    m = RouterMetrics()
    holder = TableHolder(m)
    assert holder.offer(document("v1"), "file") == "applied"
    with caplog.at_level(logging.ERROR, logger="mdserve.router"):
        assert holder.offer(document("v2", stable=0, canary=0), "file") == "invalid"
    assert holder.active is not None and holder.active.table.version == "v1"
    assert "positive weight" in (holder.last_error or "")
    assert "keeping version v1" in caplog.text and "positive weight" in caplog.text
    assert sample(m, "mdroute_table_reloads_total", source="file", outcome="invalid") == 1
    assert sample(m, "mdroute_table_rejected") == 1
    assert sample(m, "mdroute_table_info", version="v1") == 1
    # The same bad document again (a re-list) is not counted twice.
    assert holder.offer(document("v2", stable=0, canary=0), "kubernetes") == "invalid"
    assert sample(m, "mdroute_table_reloads_total", source="kubernetes", outcome="invalid") is None


def test_applying_updates_metrics_and_drops_removed_variants() -> None:
    m = RouterMetrics()
    holder = TableHolder(m)
    holder.offer(document("v1"), "file")
    assert sample(m, "mdroute_weight", variant="canary") == 10
    single = json.dumps(
        {"version": "v2", "variants": [{"name": "stable", "backend": "http://s:1", "weight": 1}]}
    )
    assert holder.offer(single, "admin") == "applied"
    assert holder.offer(single, "file") == "unchanged"
    assert sample(m, "mdroute_weight", variant="canary") is None
    assert sample(m, "mdroute_table_info", version="v1") is None
    assert sample(m, "mdroute_table_info", version="v2") == 1
    assert sample(m, "mdroute_table_rejected") == 0
    assert sample(m, "mdroute_table_reloads_total", source="admin", outcome="applied") == 1
    view = holder.view()
    assert view["version"] == "v2" and view["last_error"] is None


def test_source_errors_keep_the_table() -> None:
    m = RouterMetrics()
    holder = TableHolder(m)
    holder.offer(document("v1"), "kubernetes")
    holder.source_error("kubernetes", "connection refused")
    assert holder.active is not None and holder.active.table.version == "v1"
    assert holder.last_error == "kubernetes: connection refused"
    assert sample(m, "mdroute_table_reloads_total", source="kubernetes", outcome="error") == 1


def test_backend_overrides_match_variant_then_host_port_then_host() -> None:
    table = parse_table(document("v1"))
    assert resolve_backends(table, {}) == {
        "stable": "http://demo-stable.ns.svc:8080",
        "canary": "http://demo-canary.ns.svc:8080",
    }
    assert resolve_backends(
        table, {"demo-stable.ns.svc:8080": "http://127.0.0.1:1/", "canary": "http://127.0.0.1:2"}
    ) == {
        "stable": "http://127.0.0.1:1",
        "canary": "http://127.0.0.1:2",
    }
    assert (
        resolve_backends(table, {"demo-canary.ns.svc": "http://127.0.0.1:3"})["canary"]
        == "http://127.0.0.1:3"
    )


def test_file_source_follows_the_file(tmp_path: Path) -> None:
    m = RouterMetrics()
    holder = TableHolder(m)
    path = tmp_path / "routes.json"
    source = FileSource(holder, path, 0.05)

    async def scenario() -> None:
        await source.poll_once()  # missing file: reported once, nothing applied
        await source.poll_once()
        assert holder.active is None
        assert sample(m, "mdroute_table_reloads_total", source="file", outcome="error") == 1
        path.write_text(document("v1"))
        await source.poll_once()
        assert holder.active is not None and holder.active.table.version == "v1"
        path.write_text("{not json")
        await source.poll_once()
        assert holder.active.table.version == "v1" and "not valid JSON" in (holder.last_error or "")
        path.write_text(document("v2", 50, 50))
        await source.poll_once()
        assert holder.active.table.version == "v2"

    asyncio.run(scenario())
