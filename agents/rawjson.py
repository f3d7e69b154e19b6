"""JSON the standard parser cannot take whole, and the shape of what it did take.

``scan`` reads a message that ``json.loads`` refused (nested past Python's recursion limit, or
bytes that are not UTF-8 somewhere) well enough to find an envelope's events one by one, so
that one bad event costs one event and not the envelope. ``shape`` measures a parsed event
without recursion: how deep it nests, roughly how many bytes it holds, and whether it carries
NaN or Infinity (which Python's parser accepts and JSON does not).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from schemas.common import ASSESSMENT_FIELDS, SPECIAL_CATEGORY_FIELDS, Reason, normalise_name

MAX_DEPTH = 32
"""Events are flat objects; an xAPI statement nests about 6 deep. Deeper is refused."""

# A string (escapes included), a lone quote (an unterminated string), or a structural byte.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{},:]', re.DOTALL)
_OPENS = {ord("{"): ord("}"), ord("["): ord("]")}
_EVENTS_KEY = b'"events"'


@dataclass(frozen=True)
class Item:
    """One element of an envelope's ``events`` array, as bytes, and how deep it nests."""

    text: bytes
    depth: int


@dataclass(frozen=True)
class Scan:
    """What a structural scan of a message found."""

    balanced: bool
    """Every bracket closes the one it should and every string ends: JSON-shaped."""
    depth: int
    """The deepest nesting in the message (its top-level object counts 1)."""
    skeleton: bytes | None = None
    """The envelope with its events replaced by ``[]``, when the message is an envelope."""
    items: tuple[Item, ...] = ()


def scan(raw: bytes) -> Scan:
    """Find the structure of a message without building it (no recursion, no decoding)."""
    if not raw.lstrip().startswith(b"{"):
        return Scan(balanced=False, depth=0)
    return _Scanner(raw).run()


class _Scanner:
    """One pass over the tokens of a message, tracking the envelope's ``events`` array."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.stack: list[int] = []  # the closing bracket each open one expects
        self.deepest = 0
        self.key: bytes | None = None  # the last key read at the top level
        self.pending: bytes | None = None  # a top-level string that may be a key
        self.events: list[int] = []  # start and end of the events array
        self.inside = False  # reading the events array
        self.items: list[Item] = []
        self.start = 0  # where the current item starts
        self.item_depth = 0

    def run(self) -> Scan:
        for match in _TOKEN.finditer(self.raw):
            token = match.group()
            if token[0] == ord('"'):
                if len(token) == 1:  # a quote that never closes
                    return self.broken()
                if len(self.stack) == 1:
                    self.pending = token
            elif token == b":":
                if len(self.stack) == 1:
                    self.key, self.pending = self.pending, None
            elif token == b",":
                self.comma(match)
            elif token[0] in _OPENS:
                self.open(token[0], match)
            elif not self.close(token[0], match):
                return self.broken()
            elif not self.stack:
                if self.raw[match.end() :].strip():
                    return self.broken()
                return self.done()
        return self.broken()  # the top-level object never closed

    def broken(self) -> Scan:
        return Scan(balanced=False, depth=self.deepest)

    def comma(self, match: re.Match[bytes]) -> None:
        if self.inside and len(self.stack) == 2:
            self.items.append(Item(self.raw[self.start : match.start()], self.item_depth))
            self.start, self.item_depth = match.end(), 0
        elif len(self.stack) == 1:
            self.key = None

    def open(self, bracket: int, match: re.Match[bytes]) -> None:
        self.stack.append(_OPENS[bracket])
        self.deepest = max(self.deepest, len(self.stack))
        first = not self.events and self.key == _EVENTS_KEY
        if len(self.stack) == 2 and bracket == ord("[") and first:
            self.inside, self.start, self.item_depth = True, match.end(), 0
            self.events = [match.start()]
        elif self.inside:
            self.item_depth = max(self.item_depth, len(self.stack) - 2)

    def close(self, bracket: int, match: re.Match[bytes]) -> bool:
        if not self.stack or self.stack.pop() != bracket:
            return False
        if self.inside and len(self.stack) == 1:  # the events array ended
            self.items.append(Item(self.raw[self.start : match.start()], self.item_depth))
            self.inside = False
            self.events.append(match.end())
        return True

    def done(self) -> Scan:
        if len(self.events) != 2:
            return Scan(balanced=True, depth=self.deepest)
        items = self.items
        if len(items) == 1 and not items[0].text.strip():
            items = []  # "events": []
        start, end = self.events
        skeleton = self.raw[:start] + b"[]" + self.raw[end:]
        return Scan(balanced=True, depth=self.deepest, skeleton=skeleton, items=tuple(items))


def too_deep(depth: int | None = None) -> str:
    """The sentence for an event nested past ``MAX_DEPTH``."""
    found = f"{depth} levels" if depth is not None else f"more than {MAX_DEPTH} levels"
    return (
        f"the event is nested {found} deep, over the {MAX_DEPTH}-level limit: events are flat "
        "objects; send the fields the schema names"
    )


def shape(
    event: Any, max_bytes: int | None, fields: frozenset[str] = frozenset()
) -> tuple[int, tuple[Reason, str] | None]:
    """Approximate size in bytes of a parsed event, and the first problem with its shape.

    Walks without recursion and stops at the first problem: nesting past ``MAX_DEPTH``, NaN or
    Infinity anywhere, or (when ``max_bytes`` is given) more than ``max_bytes``. A sentence
    names a field only if it is one of the schema's ``fields`` (other keys can be anything,
    a student number included). A flat event (the usual kind) takes one loop.
    """
    if not isinstance(event, dict):
        return _walk([(event, 1, None)], 0, max_bytes, fields)
    size = 2
    deeper: list[tuple[Any, int, str | None]] = []
    for key, value in event.items():
        size += len(key) + 4
        kind = type(value)
        if kind is str:
            size += (len(value) if value.isascii() else len(value.encode("utf-8", "replace"))) + 3
        elif kind is dict or kind is list:
            deeper.append((value, 2, str(key)))
        elif kind is float and not math.isfinite(value):
            named = key if key in fields else None
            return size, (Reason.MALFORMED_JSON, _not_a_number(value, named))
        else:
            size += 8
    if max_bytes is not None and size > max_bytes:
        return size, (Reason.OVERSIZED, f"the event is over the {max_bytes}-byte limit")
    if not deeper:
        return size, None
    return _walk(deeper, size, max_bytes, fields)


def _walk(
    stack: list[tuple[Any, int, str | None]],
    size: int,
    max_bytes: int | None,
    fields: frozenset[str],
) -> tuple[int, tuple[Reason, str] | None]:
    while stack:
        value, depth, field = stack.pop()
        if isinstance(value, str):
            size += (len(value) if value.isascii() else len(value.encode("utf-8", "replace"))) + 3
        elif isinstance(value, dict):
            if depth > MAX_DEPTH:
                return size, (Reason.OVERSIZED, too_deep())
            size += 2
            for key, item in value.items():
                size += len(key) + 4
                stack.append((item, depth + 1, field if depth > 1 else str(key)))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                return size, (Reason.OVERSIZED, too_deep())
            size += 2
            stack.extend((item, depth + 1, field) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            named = field if field in fields else None
            return size, (Reason.MALFORMED_JSON, _not_a_number(value, named))
        else:
            size += 8
        if max_bytes is not None and size > max_bytes:
            return size, (Reason.OVERSIZED, f"the event is over the {max_bytes}-byte limit")
    return size, None


def _not_a_number(value: float, field: str | None) -> str:
    what = "NaN" if math.isnan(value) else "Infinity"
    where = f"field '{field}'" if field is not None else "a field the schema does not know"
    return (
        f"{where} holds {what}, which is not a JSON number; send null or leave the field out "
        "(JSON has no NaN or Infinity)"
    )


Forbidden = tuple[Reason, tuple[str | int, ...]]


def forbidden_keys(event: Any) -> Forbidden | None:
    """The first assessment or special-category field anywhere in ``event``, with its path.

    The policy and the order of :func:`schemas.common.find_forbidden`, without recursion, and
    with the path as keys (a key can hold dots, and may have to be hidden from a sentence).
    """
    if isinstance(event, dict):
        done, found = _flat_forbidden(event)
        if done:
            return found
    stack: list[tuple[Any, tuple[str | int, ...], str | None]] = [(event, (), None)]
    while stack:
        value, path, key = stack.pop()
        if key is not None:  # a key of a dict: its name first, then what it holds
            found = _forbidden_name(key, path)
            if found is not None:
                return found
            if isinstance(value, dict | list):
                stack.append((value, path, None))
        elif isinstance(value, dict):
            for name, item in reversed(value.items()):
                stack.append((item, (*path, str(name)), str(name)))
        elif isinstance(value, list):
            for index in range(len(value) - 1, -1, -1):
                if isinstance(value[index], dict | list):
                    stack.append((value[index], (*path, index), None))
    return None


def _flat_forbidden(event: dict[Any, Any]) -> tuple[bool, Forbidden | None]:
    """Read an event's own keys until one is forbidden (done) or one's value nests (not done:
    the whole event is walked, so that the first one in document order is found)."""
    for key, value in event.items():
        found = _forbidden_name(str(key), (str(key),))
        if found is not None:
            return True, found
        if isinstance(value, dict | list):
            return False, None
    return True, None


def _forbidden_name(key: str, path: tuple[str | int, ...]) -> Forbidden | None:
    name = normalise_name(key)
    if name in ASSESSMENT_FIELDS:
        return Reason.ASSESSMENT_DATA, path
    if name in SPECIAL_CATEGORY_FIELDS:
        return Reason.FORBIDDEN_FIELD, path
    return None


def approximate_size(event: Any) -> int:
    """Cheap size in bytes of an event inside an envelope (UTF-8 strings; JSON for nesting).

    Kept for callers that size events as JSON; the decoder measures with :func:`shape`,
    which needs no recursion.
    """
    if not isinstance(event, dict):
        return len(json.dumps(event, default=str))
    size = 0
    for key, value in event.items():
        if isinstance(value, str):
            size += len(key) + (len(value) if value.isascii() else len(value.encode())) + 6
        elif isinstance(value, dict | list):
            size += len(key) + len(json.dumps(value, default=str)) + 4
        else:
            size += len(key) + 24
    return size
