"""Observed children + desired children -> the writes to make. Pure; empty when nothing changed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from modeldeploy.diff import needs_apply

Key = tuple[str, str]
"""(kind, name) of a child; all children live in the ModelDeployment's namespace."""


@dataclass(frozen=True)
class Action:
    """One write."""

    verb: Literal["create", "update", "delete"]
    """`create`/`update` are server-side applies (the verb only says whether the object existed)."""
    kind: str
    """Child kind."""
    name: str
    """Child name."""
    manifest: dict[str, Any] = field(default_factory=dict, compare=False)
    """The manifest to apply; empty for deletes."""
    live: dict[str, Any] | None = field(default=None, compare=False)
    """The observed object before the write, if any."""


def key_of(obj: Mapping[str, Any]) -> Key:
    return str(obj["kind"]), str(obj["metadata"]["name"])


def plan(
    desired: Iterable[dict[str, Any]], observed: Mapping[Key, dict[str, Any]], keep: set[Key]
) -> list[Action]:
    """Applies for missing or drifted children first (so replacements exist before anything is removed), then
    deletes for observed children neither desired nor kept (renamed variants, superseded revisions)."""
    actions: list[Action] = []
    wanted: set[Key] = set()
    for manifest in desired:
        key = key_of(manifest)
        wanted.add(key)
        live = observed.get(key)
        if needs_apply(manifest, live):
            actions.append(Action("update" if live is not None else "create", key[0], key[1], manifest, live))
    for key in sorted(observed):
        if key not in wanted and key not in keep:
            actions.append(Action("delete", key[0], key[1], live=observed[key]))
    return actions
