"""docs/benchmarks.md is shared by every benchmark: each rewrites only its own marked section."""

from __future__ import annotations

from pathlib import Path

from devcluster.paths import REPO_ROOT

BENCHMARKS_DOC = REPO_ROOT / "docs" / "benchmarks.md"


def write_section(area: str, text: str, doc: Path = BENCHMARKS_DOC) -> None:
    """Replaces what stands between `<!-- BEGIN area -->` and `<!-- END area -->`, or appends the section."""
    begin, end = f"<!-- BEGIN {area} -->", f"<!-- END {area} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    current = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if begin in current and end in current:
        current = current[: current.index(begin)] + block + current[current.index(end) + len(end) :]
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(current)
