"""Message path patterns and a matcher that prefers the most specific one.

Grammar, one rule per ``/``-separated segment:

* ``users``  a static segment, compared exactly;
* ``:id``    a parameter: any one non-empty segment, captured as ``params["id"]``;
* ``*``      any one segment, not captured;
* ``**``     zero or more segments (the rest), captured as ``params["**"]``.

Empty segments are ignored, so ``/a/b/`` and ``/a//b`` are ``/a/b``.

Precedence is decided segment by segment from the left: static beats
parameter beats ``*`` beats ``**``. It does not depend on registration order
or on which service announced the pattern, so every gateway resolves the same
path to the same pattern. (Eurus walks a Go map and takes the first hit,
which is random when patterns overlap.) Matching is a walk of a trie in that
order, so the first terminal reached is the best one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Match", "Matcher", "Pattern", "PatternError", "compile_pattern", "split_path"]

V = TypeVar("V")

_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class Kind(enum.IntEnum):
    """Segment kinds in precedence order (lower wins)."""

    STATIC = 0
    PARAM = 1
    STAR = 2
    REST = 3


class PatternError(ValueError):
    """A pattern that cannot be compiled; the message names the pattern and why."""


@dataclass(frozen=True, slots=True)
class Segment:
    kind: Kind
    value: str = ""  # the static text or the parameter name


def split_path(path: str) -> list[str]:
    """The non-empty segments of a message path."""
    return [part for part in path.split("/") if part]


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled pattern; ``text`` is what the service announced."""

    text: str
    segments: tuple[Segment, ...]

    def match(self, path: str | list[str]) -> dict[str, str] | None:
        """Parameters if this pattern alone matches ``path``, else ``None``."""
        parts = split_path(path) if isinstance(path, str) else path
        params: dict[str, str] = {}
        return params if _bind(self.segments, 0, parts, 0, params) else None


def _bind(segs: tuple[Segment, ...], si: int, parts: list[str], pi: int,
          params: dict[str, str]) -> bool:
    while si < len(segs):
        seg = segs[si]
        if seg.kind is Kind.REST:
            for end in range(len(parts), pi - 1, -1):
                if _bind(segs, si + 1, parts, end, params):
                    params["**"] = "/".join(parts[pi:end])
                    return True
            return False
        if pi >= len(parts):
            return False
        if seg.kind is Kind.STATIC:
            if parts[pi] != seg.value:
                return False
        elif seg.kind is Kind.PARAM:
            params[seg.value] = parts[pi]
        si += 1
        pi += 1
    return pi == len(parts)


def compile_pattern(text: str) -> Pattern:
    """Compile ``/users/:id``-style text; raise ``PatternError`` on bad syntax."""
    if not text.startswith("/"):
        raise PatternError(f"pattern {text!r} must start with '/'")
    segments: list[Segment] = []
    for part in split_path(text):
        if part == "**":
            segments.append(Segment(Kind.REST))
        elif part == "*":
            segments.append(Segment(Kind.STAR))
        elif part.startswith(":"):
            name = part[1:]
            if not _PARAM_NAME.match(name):
                raise PatternError(f"pattern {text!r}: bad parameter name {part!r}")
            segments.append(Segment(Kind.PARAM, name))
        elif "*" in part or ":" in part:
            raise PatternError(
                f"pattern {text!r}: segment {part!r} mixes text with '*' or ':'; "
                "wildcards and parameters take a whole segment")
        else:
            segments.append(Segment(Kind.STATIC, part))
    return Pattern(text, tuple(segments))


@dataclass(frozen=True, slots=True)
class Match(Generic[V]):
    """The best pattern for a path, its value and the captured parameters."""

    pattern: Pattern
    value: V
    params: dict[str, str]


@dataclass(slots=True)
class _Node(Generic[V]):
    static: dict[str, _Node[V]] = field(default_factory=dict)
    param: _Node[V] | None = None
    star: _Node[V] | None = None
    rest: _Node[V] | None = None
    entry: tuple[Pattern, V] | None = None


class Matcher(Generic[V]):
    """An immutable table from patterns to values; build a new one to change it."""

    __slots__ = ("_root", "_size")

    def __init__(self, entries: Mapping[str, V] | Iterable[tuple[str | Pattern, V]] = ()) -> None:
        self._root: _Node[V] = _Node()
        self._size = 0
        items = entries.items() if isinstance(entries, Mapping) else entries
        compiled = [(p if isinstance(p, Pattern) else compile_pattern(p), v) for p, v in items]
        # Sorting makes the winner among same-shape patterns (/a/:x vs /a/:y) stable.
        for pattern, value in sorted(compiled, key=lambda item: item[0].text):
            self._insert(pattern, value)

    def __len__(self) -> int:
        return self._size

    def _insert(self, pattern: Pattern, value: V) -> None:
        node = self._root
        for seg in pattern.segments:
            if seg.kind is Kind.STATIC:
                node = node.static.setdefault(seg.value, _Node())
            elif seg.kind is Kind.PARAM:
                node.param = node.param or _Node()
                node = node.param
            elif seg.kind is Kind.STAR:
                node.star = node.star or _Node()
                node = node.star
            else:
                node.rest = node.rest or _Node()
                node = node.rest
        if node.entry is None:
            node.entry = (pattern, value)
            self._size += 1

    def match(self, path: str) -> Match[V] | None:
        """The most specific matching pattern, or ``None``."""
        parts = split_path(path)
        entry = _walk(self._root, parts, 0)
        if entry is None:
            return None
        pattern, value = entry
        params = pattern.match(parts) or {}
        return Match(pattern, value, params)


def _walk(node: _Node[V], parts: list[str], pi: int) -> tuple[Pattern, V] | None:
    if pi == len(parts):
        if node.entry is not None:
            return node.entry
        # Only a trailing ** can still match the empty rest.
        if node.rest is not None:
            return _walk(node.rest, parts, pi)
        return None
    part = parts[pi]
    child = node.static.get(part)
    if child is not None:
        found = _walk(child, parts, pi + 1)
        if found is not None:
            return found
    for child in (node.param, node.star):
        if child is not None:
            found = _walk(child, parts, pi + 1)
            if found is not None:
                return found
    if node.rest is not None:
        for end in range(len(parts), pi - 1, -1):
            found = _walk(node.rest, parts, end)
            if found is not None:
                return found
    return None
