"""Manual control through one annotation, `serving.modeldeploy.dev/action: <verb>[=<revision>]@<request-id>`.

The request id makes an action apply once: the engine records the last applied id in status.rollout and
ignores an annotation carrying it again, so the annotation can stay on the object (the operator never writes
to the spec or metadata of a ModelDeployment). The kubectl plugin writes a fresh id per command.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from modeldeploy.api.schema import GROUP

ACTION_ANNOTATION = f"{GROUP}/action"
Verb = Literal["pause", "resume", "promote", "abort", "retry", "rollback"]
VERBS: tuple[str, ...] = ("pause", "resume", "promote", "abort", "retry", "rollback")
_ACTION = re.compile(r"^(?P<verb>[a-z]+)(?:=(?P<revision>[a-z0-9]{1,64}))?@(?P<id>[A-Za-z0-9._:-]{1,64})$")


@dataclass(frozen=True)
class ManualAction:
    """A request from a person, read from the annotation."""

    verb: Verb
    """What to do."""
    request_id: str
    """Unique per request; an action whose id was already applied is ignored."""
    revision: str | None = None
    """Target of `rollback`."""


@dataclass(frozen=True)
class InvalidAction:
    """An annotation the engine cannot apply; reported once per request id as a Warning Event."""

    raw: str
    """The annotation value."""
    reason: str
    """Why it was refused."""
    request_id: str | None = None
    """Its id, when one could be read (so the warning is not repeated)."""


def format_action(verb: str, request_id: str, revision: str | None = None) -> str:
    """The annotation value for a request (the inverse of `parse_action`)."""
    target = f"={revision}" if revision else ""
    return f"{verb}{target}@{request_id}"


def parse_action(annotations: Mapping[str, str] | None) -> ManualAction | InvalidAction | None:
    raw = (annotations or {}).get(ACTION_ANNOTATION)
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    match = _ACTION.match(raw)
    if match is None:
        request_id = raw.rpartition("@")[2] if "@" in raw else None
        return InvalidAction(raw, "expected <verb>[=<revision>]@<request-id>", request_id)
    verb, revision, request_id = match.group("verb"), match.group("revision"), match.group("id")
    if verb not in VERBS:
        return InvalidAction(raw, f"unknown action {verb!r}; one of {', '.join(VERBS)}", request_id)
    if (verb == "rollback") != (revision is not None):
        why = "rollback needs =<revision>" if verb == "rollback" else f"{verb} takes no revision"
        return InvalidAction(raw, why, request_id)
    return ManualAction(verb, request_id, revision)  # type: ignore[arg-type]
