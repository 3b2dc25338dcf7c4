"""Does a live object already match what we would apply? Pure, and tolerant of what the apiserver adds.

Two checks, both needed for zero writes on a no-op pass and for self-healing:
- the desired manifest is a semantic subset of the live object (catches hand edits of fields we own; ignores
  defaults, status and fields other controllers add; quantities compare by value: `0.5` == `500m`);
- the live object carries the desired content hash (catches fields we stopped setting, which a subset check
  cannot see; server-side apply then removes them).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from modeldeploy.render.naming import ANNOTATION_HASH

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[numkMGTPE]i?|Ki)?$")
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(1000),
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(value: str | int | float) -> Decimal | None:
    """A Kubernetes quantity's numeric value, or None if `value` is not a quantity."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(value.strip())
    if not match:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        base = Decimal(number)
    except InvalidOperation:
        return None
    if suffix[:1] in ("e", "E"):
        return base * (Decimal(10) ** int(suffix[1:]))
    factor = _SUFFIX.get(suffix)
    return None if factor is None else base * factor


def _scalar_equal(want: Any, have: Any) -> bool:
    if want == have and type(want) is type(have):
        return True
    if isinstance(want, bool) or isinstance(have, bool):
        return False
    if isinstance(want, str | int | float) and isinstance(have, str | int | float):
        a, b = parse_quantity(want), parse_quantity(have)
        return a is not None and b is not None and a == b
    return False


def _omitted(value: Any) -> bool:
    """Go's `omitempty` drops empty strings, lists and maps from typed objects: absent means equal."""
    return value is None or value == "" or value == [] or value == {}


def is_subset(want: Any, have: Any) -> bool:
    """Every field in `want` is present in `have` with an equal value (lists element-wise, same length)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        return all(is_subset(v, have[k]) if k in have else _omitted(v) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return False
        return all(is_subset(w, h) for w, h in zip(want, have, strict=True))
    return _scalar_equal(want, have)


def applied_hash(obj: dict[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_HASH)
    return str(value) if value is not None else None


def needs_apply(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    if live is None:
        return True
    if applied_hash(desired) != applied_hash(live):
        return True
    return not is_subset(desired, live)
