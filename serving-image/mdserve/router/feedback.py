"""Feedback affinity, the pure parts: which variant served a request id, and how a feedback request
is split by variant and its answers merged back.

The model server scores feedback only for request ids it predicted itself, and the canary analysis
reads each revision's accuracy from those scores: feedback sent to the router must reach the
variant that made the prediction, not whichever one the split picks next. No I/O here;
``feedback_proxy.py`` sends the parts.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

VARIANT_HEADER = b"x-mdroute-variant"
"""Request header that pins a feedback request to a variant: the value of the prediction's
``x-mdroute-variant`` response header (works across router replicas, unlike the memory)."""
HOWS = ("explicit", "remembered", "fallback")
"""Values of the ``how`` label of ``mdroute_feedback_routed_total``."""


class FeedbackMemory:
    """The variant that answered each of the last ``capacity`` distinct request ids.

    First-in-first-out: remembering a known id again updates its variant in place, so the bound is
    on distinct ids and every operation is O(1). Capacity 0 remembers nothing.
    """

    __slots__ = ("_entries", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("feedback memory capacity must be >= 0")
        self.capacity = capacity
        self._entries: OrderedDict[str, str] = OrderedDict()

    def remember(self, request_id: str, variant: str) -> None:
        entries = self._entries
        if request_id in entries:
            entries[request_id] = variant  # an existing key keeps its place: FIFO, like Go's ring
            return
        if self.capacity == 0:
            return
        entries[request_id] = variant
        if len(entries) > self.capacity:
            entries.popitem(last=False)

    def variant_of(self, request_id: str) -> str | None:
        return self._entries.get(request_id)

    def __len__(self) -> int:
        return len(self._entries)


def _path(target: bytes) -> bytes:
    return target.split(b"?", 1)[0]


def is_inference(method: bytes, target: bytes) -> bool:
    """A prediction whose request id the model server keeps for feedback (V2 ``infer``, V1 ``predict``)."""
    if method != b"POST":
        return False
    path = _path(target)
    return path.endswith(b"/infer") or path.endswith(b":predict")


def is_feedback(method: bytes, target: bytes) -> bool:
    """``POST /v1/models/{name}[/versions/{v}]:feedback`` or ``POST /v2/models/{name}[...]/feedback``."""
    if method != b"POST":
        return False
    path = _path(target)
    if path.startswith(b"/v1/models/"):
        return path.endswith(b":feedback")
    return path.startswith(b"/v2/models/") and path.endswith(b"/feedback")


@dataclass(frozen=True, slots=True)
class FeedbackBody:
    """A well-formed feedback request: its items and their request ids, in order."""

    items: tuple[dict[str, Any], ...]
    ids: tuple[str, ...]
    is_list: bool


def parse_feedback(body: bytes) -> FeedbackBody | None:
    """The items of a feedback body, or None when it is not one the model server would accept
    structurally (then it is forwarded whole, and the server's 400 says what is wrong).

    Checks what the server's ``parse_feedback`` checks, so a split never sends one valid and one
    invalid part: an invalid request must count nothing, on every variant.
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    raw = payload if isinstance(payload, list) else [payload]
    if not raw:
        return None
    ids = []
    for item in raw:
        if not isinstance(item, dict):
            return None
        request_id = item.get("request_id")
        if not isinstance(request_id, str) or not request_id or item.get("truth") is None:
            return None
        ids.append(request_id)
    return FeedbackBody(tuple(raw), tuple(ids), isinstance(payload, list))


@dataclass(frozen=True, slots=True)
class Part:
    """The items of a feedback request that go to one variant."""

    variant: str
    indices: tuple[int, ...]
    """Positions of the items in the original request, ascending."""
    remembered: int
    """How many of them were routed by the memory (the rest by the fallback decision)."""


def plan(ids: Sequence[str], known: Callable[[str], str | None], fallback: Callable[[], str]) -> list[Part]:
    """Group items by variant: ids the memory ``known`` maps go to their variant; the others to the
    variant of one ``fallback`` decision, taken only if some id is unknown (it advances the split).
    Parts are ordered by their first item."""
    remembered = [known(request_id) for request_id in ids]
    fallback_variant = fallback() if any(v is None for v in remembered) else ""
    groups: dict[str, tuple[list[int], list[int]]] = {}
    for index, variant in enumerate(remembered):
        indices, count = groups.setdefault(variant or fallback_variant, ([], [0]))
        indices.append(index)
        if variant is not None:
            count[0] += 1
    return [Part(v, tuple(indices), count[0]) for v, (indices, count) in groups.items()]


def part_body(body: FeedbackBody, part: Part) -> bytes:
    """The request body for one part: always a list, so an unknown id comes back as
    ``"status": "unknown"`` in the results rather than as a 404 for the whole part."""
    return json.dumps([body.items[i] for i in part.indices], separators=(",", ":")).encode()


def merge(count: int, answers: Sequence[tuple[Part, bytes]]) -> bytes:
    """One ``{"results": [...]}`` in the original item order from the parts' 200 answers.

    Raises ``ValueError`` naming the variant whose answer is not the model server's shape.
    """
    results: list[Any] = [None] * count
    for part, raw in answers:
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            doc = None
        got = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(got, list) or len(got) != len(part.indices):
            raise ValueError(
                f"variant {part.variant} answered feedback without a 'results' list of "
                f"{len(part.indices)} items"
            )
        for index, result in zip(part.indices, got, strict=True):
            results[index] = result
    return json.dumps({"results": results}, separators=(",", ":")).encode()
