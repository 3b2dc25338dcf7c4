"""Each benchmark rewrites only its own section of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from devcluster.benchmarks_doc import write_section

pytestmark = pytest.mark.unit


def test_sections_are_appended_then_replaced_in_place(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    write_section("serving", "serving v1", doc)
    write_section("router", "router v1\n\n", doc)
    write_section("serving", "serving v2", doc)
    text = doc.read_text()
    assert text == (
        "# Benchmarks\n\n<!-- BEGIN serving -->\nserving v2\n<!-- END serving -->\n\n"
        "<!-- BEGIN router -->\nrouter v1\n<!-- END router -->\n"
    )
