"""Spec building blocks shared by api/spec.py and traffic/spec.py (kept apart so that api/spec.py can embed
traffic.spec.TrafficSpec without an import cycle)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

IntOrStr = int | str


class SpecModel(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True, extra="forbid", frozen=True, use_attribute_docstrings=True
    )


class Resources(SpecModel):
    requests: dict[str, IntOrStr] | None = None
    """Resource requests."""
    limits: dict[str, IntOrStr] | None = None
    """Resource limits."""


class SecretRef(SpecModel):
    name: str
    """Secret name."""
