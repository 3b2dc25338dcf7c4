"""Pure routing decisions: route table + request headers → primary variant and shadow variants.

No I/O here. ``Decider`` keeps the small mutable state that makes the split exact (smooth
weighted round-robin counters and shadow accumulators); it is used from one event loop only.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mdserve.router.table import Match, RouteTable

_SHADOW_SCALE = 1_000_000
"""Shadow percentages are kept as integers in units of 1/10,000 of a percent (no float drift)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes."""

    variant: str
    """Variant whose response is returned to the caller."""
    reason: str
    """``rule:<name>``, ``sticky`` or ``split``: why that variant was chosen."""
    shadows: tuple[str, ...] = ()
    """Variants that receive a fire-and-forget copy of the request."""


def parse_cookies(header: str | None) -> dict[str, str]:
    """Cookies of a ``Cookie`` header; lenient (skips malformed pairs, first occurrence wins)."""
    cookies: dict[str, str] = {}
    if not header:
        return cookies
    for pair in header.split(";"):
        name, sep, value = pair.strip().partition("=")
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name.strip(), value)
    return cookies


def _predicate(match: Match) -> Callable[[str | None], bool]:
    expected = match.value
    if match.type == "present":
        return lambda got: got is not None
    if match.type == "prefix":
        return lambda got: got is not None and got.startswith(expected)
    if match.type == "regex":
        pattern = re.compile(expected)
        return lambda got: got is not None and pattern.fullmatch(got) is not None
    return lambda got: got == expected


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    name: str
    variant: str
    headers: tuple[tuple[str, Callable[[str | None], bool]], ...]
    cookies: tuple[tuple[str, Callable[[str | None], bool]], ...]

    def matches(self, headers: Mapping[str, str], cookies: Callable[[], dict[str, str]]) -> bool:
        for name, pred in self.headers:
            if not pred(headers.get(name)):
                return False
        if self.cookies:
            jar = cookies()
            for name, pred in self.cookies:
                if not pred(jar.get(name)):
                    return False
        return True


class SmoothWeightedRoundRobin:
    """nginx's smooth weighted round-robin: exact shares over every window of ``sum(weights)``.

    Each pick adds every weight to its counter, takes the largest counter and subtracts the total
    from it; the sequence interleaves arms (90/10 gives one canary request every ten), so any
    window of requests is within one request of the weights, unlike random sampling.
    """

    __slots__ = ("_current", "_indices", "_total", "_weights")

    def __init__(self, weights: list[int]) -> None:
        self._indices = [i for i, w in enumerate(weights) if w > 0]
        self._weights = [weights[i] for i in self._indices]
        self._total = sum(self._weights)
        if self._total <= 0:
            raise ValueError("at least one weight must be positive")
        self._current = [0] * len(self._weights)

    def pick(self) -> int:
        """Index (into the original weight list) of the next arm."""
        current, weights = self._current, self._weights
        best = 0
        for i, w in enumerate(weights):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return self._indices[best]


def sticky_point(key: str, salt: str, total: int) -> int:
    """A stable point in ``[0, total)`` for ``key``: the same key always lands on the same point."""
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    # Scaling a 64-bit hash (rather than "mod total") keeps users in place when only some weights
    # move: with cumulative ranges, 90/10 → 80/20 moves only users in [80, 90) to the second arm.
    return (int.from_bytes(digest, "big") * total) >> 64


class Decider:
    """The compiled form of one route table; ``decide`` is called once per request."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table
        self._names = [v.name for v in table.variants]
        weights = [v.weight for v in table.variants]
        self._split = SmoothWeightedRoundRobin(weights)
        self._total = sum(weights)
        self._cumulative: list[int] = []
        running = 0
        for w in weights:
            running += w
            self._cumulative.append(running)
        self._rules = tuple(
            _CompiledRule(
                name=r.name,
                variant=r.variant,
                headers=tuple((m.name.lower(), _predicate(m)) for m in r.headers),
                cookies=tuple((m.name, _predicate(m)) for m in r.cookies),
            )
            for r in table.rules
        )
        sticky = table.sticky
        self._sticky_header = sticky.header.lower() if sticky and sticky.header else None
        self._sticky_cookie = sticky.cookie if sticky else None
        self._sticky_salt = sticky.salt if sticky else ""
        self._shadows = [(s.variant, round(s.percent * _SHADOW_SCALE / 100)) for s in table.shadows]
        needed = {name for rule in self._rules for name, _ in rule.headers}
        if any(rule.cookies for rule in self._rules) or self._sticky_cookie is not None:
            needed.add("cookie")
        if self._sticky_header is not None:
            needed.add(self._sticky_header)
        self.header_names = frozenset(n.encode("latin-1") for n in needed)
        """Lower-case names of the only request headers ``decide`` looks at (the rest need no decoding)."""
        self._shadow_acc = [0] * len(self._shadows)

    def sticky_variant(self, key: str) -> str:
        """The variant a sticky key maps to under the current weights."""
        point = sticky_point(key, self._sticky_salt, self._total)
        return self._names[bisect.bisect_right(self._cumulative, point)]

    def _rule(
        self, headers: Mapping[str, str], cookies: Callable[[], dict[str, str]]
    ) -> _CompiledRule | None:
        for rule in self._rules:
            if rule.matches(headers, cookies):
                return rule
        return None

    def rule_variant(self, headers: Mapping[str, str]) -> str | None:
        """The variant the first matching rule pins, without touching the split's state."""
        rule = self._rule(headers, lambda: parse_cookies(headers.get("cookie")))
        return rule.variant if rule is not None else None

    def decide(self, headers: Mapping[str, str]) -> Decision:
        """Route one request given its headers (lower-case keys or a case-insensitive mapping)."""
        jar: dict[str, str] | None = None

        def cookies() -> dict[str, str]:
            nonlocal jar
            if jar is None:
                jar = parse_cookies(headers.get("cookie"))
            return jar

        variant: str | None = None
        reason = "split"
        rule = self._rule(headers, cookies)
        if rule is not None:
            variant, reason = rule.variant, f"rule:{rule.name}"
        if variant is None:
            key = None
            if self._sticky_header is not None:
                key = headers.get(self._sticky_header)
            elif self._sticky_cookie is not None:
                key = cookies().get(self._sticky_cookie)
            if key:
                variant, reason = self.sticky_variant(key), "sticky"
            else:
                variant = self._names[self._split.pick()]
        return Decision(variant, reason, self._pick_shadows(variant))

    def _pick_shadows(self, primary: str) -> tuple[str, ...]:
        if not self._shadows:
            return ()
        chosen: list[str] = []
        for i, (name, share) in enumerate(self._shadows):
            if name == primary:
                continue  # the variant already serves this request; a copy would double-count it
            acc = self._shadow_acc[i] + share
            if acc >= _SHADOW_SCALE:
                acc -= _SHADOW_SCALE
                chosen.append(name)
            self._shadow_acc[i] = acc
        return tuple(chosen)
