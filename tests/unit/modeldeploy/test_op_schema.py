"""The CRD schema: generated files in sync, structural rules, and the pydantic parser agreeing with it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from modeldeploy.api import generate, schema
from modeldeploy.api.spec import ModelDeploymentSpec

pytestmark = pytest.mark.unit


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, child in node.get("properties", {}).items():
        out += walk(child, f"{path}.{name}")
    if "items" in node:
        out += walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_generated_files_match_the_schema() -> None:
    assert generate.drifted() == [], "run: python -m modeldeploy.api.generate"


def test_check_mode_detects_drift(tmp_path: Any) -> None:
    for path, text in generate.targets(tmp_path).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert generate.drifted(tmp_path) == []
    crd = tmp_path / "crds" / generate.CRD_FILE
    crd.write_text(crd.read_text().replace("maxReplicas", "maxReplicaz"))
    assert generate.drifted(tmp_path) == [crd]


def test_every_field_has_a_description_and_lists_are_bounded() -> None:
    root = schema.openapi_schema()
    for path, node in walk(root["properties"]["spec"], "spec") + walk(root["properties"]["status"], "status"):
        if path.endswith("{}") or node.get("anyOf"):
            continue
        assert node.get("description"), f"{path} has no description"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path} is unbounded (CEL cost estimation needs maxItems)"
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, f"{path} has no maxLength"


def test_list_map_keys_are_required() -> None:
    root = schema.openapi_schema()
    for path, node in walk(root):
        if node.get("x-kubernetes-list-type") == "map":
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in node["items"].get("required", []), f"{path}: map key {key} must be required"


def test_printer_columns_cover_the_issue() -> None:
    names = [c["name"] for c in schema.PRINTER_COLUMNS]
    assert names[:5] == ["Model", "Version", "Phase", "Canary", "Ready"] and names[-1] == "Age"
    status_props = schema.status_schema()["properties"]
    for column in schema.PRINTER_COLUMNS:
        top, _, field = column["jsonPath"].lstrip(".").partition(".")
        if top == "status":
            assert field in status_props, f"printer column {column['name']} reads an undeclared status field"


def _aliases(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or name): f for name, f in model.model_fields.items()}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation like `X | None` or `tuple[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _compare(node: dict[str, Any], model: type[BaseModel], path: str) -> None:
    props = node.get("properties", {})
    fields = _aliases(model)
    assert set(props) == set(fields), f"{path}: schema {sorted(props)} != parser {sorted(fields)}"
    for name, child in props.items():
        target = child["items"] if child.get("type") == "array" else child
        sub = _model_of(fields[name].annotation)
        if target.get("properties") and sub is not None:
            _compare(target, sub, f"{path}.{name}")


def test_parser_mirrors_the_schema() -> None:
    _compare(schema.spec_schema(), ModelDeploymentSpec, "spec")
