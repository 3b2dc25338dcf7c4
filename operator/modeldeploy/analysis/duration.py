"""Durations as written in the spec (`30s`, `1m30s`, `1.5h`, `500ms`), the CRD's DURATION pattern."""

from __future__ import annotations

import re

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError when it is not a sequence of <number><ms|s|m|h>."""
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 5m, 1h30m, 500ms")
    return total


def promql_range(seconds: float) -> str:
    """A PromQL range literal; whole seconds (PromQL rejects fractional units like `1.5m`), at least 1s."""
    return f"{max(1, round(seconds))}s"
