"""URL → route: a pure function over the V2, V1 and operational paths the server answers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """What a request path asks for."""

    action: str
    """One of: live, ready, server_metadata, metrics, v2_metadata, v2_model_ready, v2_infer,
    v1_status, v1_metadata, v1_predict, feedback."""
    method: str
    """The HTTP method the action needs."""
    protocol: str
    """Metric label: v2, v1, feedback or other."""
    model: str = ""
    """Model name from the path (empty for server-level routes)."""
    version: str | None = None
    """Version from a `/versions/{v}` path, None when absent."""


_STATIC = {
    "/v2/health/live": Route("live", "GET", "other"),
    "/v2/health/ready": Route("ready", "GET", "other"),
    "/v2": Route("server_metadata", "GET", "other"),
    "/v2/": Route("server_metadata", "GET", "other"),
    "/metrics": Route("metrics", "GET", "other"),
}
_V2_ACTIONS = {
    "": ("v2_metadata", "GET", "v2"),
    "ready": ("v2_model_ready", "GET", "v2"),
    "infer": ("v2_infer", "POST", "v2"),
    "feedback": ("feedback", "POST", "feedback"),
}
_V1_VERBS = {
    "": ("v1_status", "GET", "v1"),
    "predict": ("v1_predict", "POST", "v1"),
    "feedback": ("feedback", "POST", "feedback"),
}


def route(path: str) -> Route | None:
    """Parse a request path; None when nothing is served there."""
    static = _STATIC.get(path)
    if static is not None:
        return static
    parts = path.split("/")
    # ['', 'v2', 'models', name, ...]
    if len(parts) < 4 or parts[0] != "" or parts[2] != "models" or parts[1] not in ("v1", "v2"):
        return None
    rest = parts[4:]
    if parts[1] == "v2":
        name = parts[3]
        version = None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        if len(rest) > 1 or not name or version == "":
            return None
        found = _V2_ACTIONS.get(rest[0] if rest else "")
        if found is None:
            return None
        return Route(found[0], found[1], found[2], name, version)
    # V1: /v1/models/{name}[/versions/{v}][/metadata] or ...{name-or-version}:{verb}
    last = (rest[-1] if rest else parts[3]).split(":")
    if len(last) > 2:
        return None
    verb = last[1] if len(last) == 2 else ""
    if rest:
        rest = [*rest[:-1], last[0]]
        name = parts[3]
    else:
        name = last[0]
    version = None
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = rest[1], rest[2:]
    if not name or version == "":
        return None
    if rest == ["metadata"] and not verb:
        return Route("v1_metadata", "GET", "v1", name, version)
    if rest:
        return None
    found = _V1_VERBS.get(verb)
    if found is None:
        return None
    return Route(found[0], found[1], found[2], name, version)
