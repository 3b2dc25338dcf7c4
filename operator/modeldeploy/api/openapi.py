"""Small builders for structural OpenAPI v3 schema nodes, so the CRD schema reads like a spec.

Every builder requires a description: `kubectl explain` and docs/crd-reference.md are generated from them.
"""

from __future__ import annotations

from typing import Any

Node = dict[str, Any]
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def rule(expr: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> Node:
    """A CEL `x-kubernetes-validations` entry; `field_path` makes the apiserver name the offending field."""
    out: Node = {"rule": expr, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def obj(
    description: str,
    properties: dict[str, Node],
    *,
    required: tuple[str, ...] = (),
    rules: tuple[Node, ...] = (),
    default: Any = None,
) -> Node:
    out: Node = {"type": "object", "description": description, "properties": properties}
    if required:
        out["required"] = list(required)
    if rules:
        out["x-kubernetes-validations"] = list(rules)
    if default is not None:
        out["default"] = default
    return out


def string(
    description: str,
    *,
    enum: tuple[str, ...] | None = None,
    pattern: str | None = None,
    default: str | None = None,
    min_length: int | None = None,
    max_length: int | None = 253,
    fmt: str | None = None,
) -> Node:
    out: Node = {"type": "string", "description": description}
    if enum is not None:
        out["enum"] = list(enum)
    elif max_length is not None:
        out["maxLength"] = max_length
    if min_length is not None:
        out["minLength"] = min_length
    if pattern is not None:
        out["pattern"] = pattern
    if default is not None:
        out["default"] = default
    if fmt is not None:
        out["format"] = fmt
    return out


def integer(
    description: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    default: int | None = None,
    fmt: str = "int32",
) -> Node:
    out: Node = {"type": "integer", "format": fmt, "description": description}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    if default is not None:
        out["default"] = default
    return out


def number(description: str, *, minimum: float | None = None, maximum: float | None = None) -> Node:
    out: Node = {"type": "number", "description": description}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def boolean(description: str, *, default: bool | None = None) -> Node:
    out: Node = {"type": "boolean", "description": description}
    if default is not None:
        out["default"] = default
    return out


def array(
    description: str,
    items: Node,
    *,
    max_items: int,
    min_items: int | None = None,
    map_keys: tuple[str, ...] | None = None,
    rules: tuple[Node, ...] = (),
) -> Node:
    """A bounded list; `map_keys` makes it an SSA list-map, which also rejects duplicate keys."""
    out: Node = {"type": "array", "description": description, "items": items, "maxItems": max_items}
    if min_items is not None:
        out["minItems"] = min_items
    if map_keys:
        out["x-kubernetes-list-type"] = "map"
        out["x-kubernetes-list-map-keys"] = list(map_keys)
    if rules:
        out["x-kubernetes-validations"] = list(rules)
    return out


def string_map(description: str, *, max_properties: int = 64) -> Node:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string", "maxLength": 1024},
        "maxProperties": max_properties,
    }


def quantity_map(description: str) -> Node:
    """Resource name -> quantity, as in core/v1 ResourceRequirements."""
    return {
        "type": "object",
        "description": description,
        "maxProperties": 16,
        "additionalProperties": {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
        },
    }


def passthrough(description: str) -> Node:
    """A Kubernetes-native object copied verbatim into children; the apiserver validates it there."""
    return {"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": True}
