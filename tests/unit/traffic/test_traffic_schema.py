"""spec.traffic / status.traffic fragments: structural rules, and the pydantic model agreeing with them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from modeldeploy.traffic import schema
from modeldeploy.traffic.spec import PROVIDERS, TrafficSpec

pytestmark = pytest.mark.unit


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, child in node.get("properties", {}).items():
        out += walk(child, f"{path}.{name}")
    if "items" in node:
        out += walk(node["items"], f"{path}[]")
    return out


@pytest.mark.parametrize("root", [schema.TRAFFIC_SPEC_SCHEMA, schema.TRAFFIC_STATUS_SCHEMA])
def test_described_bounded_and_map_keys_required(root: dict[str, Any]) -> None:
    for path, node in walk(root, "traffic"):
        if path.endswith(("requests", "limits")) or node.get("anyOf"):
            continue
        assert node.get("description"), f"{path} has no description"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path} is unbounded (CEL cost estimation needs maxItems)"
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, f"{path} has no maxLength"
        if node.get("x-kubernetes-list-type") == "map":
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in node["items"].get("required", []), f"{path}: map key {key} must be required"


def _model_fields(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def _submodel(model: type[BaseModel], field: str) -> type[BaseModel]:
    for name, f in model.model_fields.items():
        if (f.alias or name) == field:
            ann = f.annotation
            for candidate in (ann, *getattr(ann, "__args__", ())):
                for inner in (candidate, *getattr(candidate, "__args__", ())):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        return inner
    raise KeyError(field)


def _compare(node: dict[str, Any], model: type[BaseModel], path: str) -> None:
    props = node.get("properties", {})
    assert set(props) == _model_fields(model), f"{path}: schema {sorted(props)} vs model {model.__name__}"
    for name, child in props.items():
        child = child.get("items", child)
        if child.get("type") == "object" and child.get("properties") and name not in ("resources",):
            _compare(child, _submodel(model, name), f"{path}.{name}")


def test_pydantic_model_mirrors_the_schema() -> None:
    _compare(schema.TRAFFIC_SPEC_SCHEMA, TrafficSpec, "traffic")


def test_defaults_agree() -> None:
    s = schema.TRAFFIC_SPEC_SCHEMA
    parsed = TrafficSpec()
    assert s["properties"]["provider"]["default"] == parsed.provider == "router"
    assert s["properties"]["provider"]["enum"] == list(PROVIDERS)
    assert s["properties"]["router"]["properties"]["replicas"]["default"] == parsed.router.replicas
    assert TrafficSpec.model_validate(s["default"]) == parsed


def test_every_model_field_has_a_docstring() -> None:
    pending: list[type[BaseModel]] = [TrafficSpec]
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        seen.add(model)
        for name, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{name} has no docstring"
            for inner in (f.annotation, *getattr(f.annotation, "__args__", ())):
                for t in (inner, *getattr(inner, "__args__", ())):
                    if isinstance(t, type) and issubclass(t, BaseModel) and t not in seen:
                        pending.append(t)


def test_cross_field_rules_name_their_field() -> None:
    for r in (*schema.TRAFFIC_SPEC_RULES, *schema.TRAFFIC_SPEC_SCHEMA["x-kubernetes-validations"]):
        assert r["fieldPath"].startswith(".") and r["message"]
