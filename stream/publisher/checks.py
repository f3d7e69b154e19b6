"""Check one raw event as the worker will (JSON form, size, forbidden fields, schema), purely.

A refused event becomes a (reason, sentence) pair, never an exception, so a publish can count
every refusal and go on; no broker is needed, so the checks are unit-tested directly. Whatever
the input (nesting thousands deep, a lone surrogate, NaN, a circular reference, a mapping that
fails when read), :func:`check_event` returns an outcome and never raises.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from enum import Enum
from typing import Final
from uuid import UUID

from pydantic import ValidationError

from schemas.common import (
    ASSESSMENT_ACTIONS,
    Reason,
    Source,
    classify_validation_error,
    find_forbidden,
)
from schemas.common import normalise_name as _normalise_name
from schemas.events import MODEL_BY_SOURCE
from schemas.sources import SOURCES

MAX_EVENT_BYTES: Final = 16_384  # same default as Settings.max_event_bytes (the worker's limit)
MAX_DEPTH: Final = 32  # the worker's nesting limit (agents.rawjson.MAX_DEPTH); events are flat
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


class Unreadable(dict[str, object]):
    """Stands in for an input line that cannot be read as an event (not UTF-8, not JSON, not a
    JSON object, not one CSV record, too long), so it is counted as refused with its reason."""

    def __init__(self, line: int, reason: Reason, detail: str) -> None:
        super().__init__()
        self.line = line
        self.reason = reason
        self.detail = detail


def _json_default(value: object) -> object:
    """Write datetimes as ISO-8601 and enums, UUIDs and mappings in their JSON form."""
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    msg = f"{type(value).__name__} cannot be written as JSON"
    raise TypeError(msg)


_encode = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
).encode


@dataclass(frozen=True)
class Checked:
    """An event that passed every check: its JSON text and the key that keeps it in order."""

    text: str
    size: int
    student_id: str


def registered_source(source: str) -> str:
    """The name of a registered source kind (a shipped feed's ``Source`` member); an unknown
    name is refused with a ValueError before anything is checked or sent."""
    try:
        return SOURCES[source].name
    except (KeyError, TypeError):
        msg = f"unknown source {source!r}; expected one of {', '.join(SOURCES)}"
        raise ValueError(msg) from None


_KNOWN_FIELDS: Final = {
    source: frozenset(model.model_fields) for source, model in MODEL_BY_SOURCE.items()
}


def _policy_refusal(source: str, event: Mapping[str, object]) -> tuple[Reason, str] | None:
    """Refuse assessment results and special-category data, wherever they appear."""
    forbidden = find_forbidden(event)
    if forbidden is not None:
        reason, where = forbidden
        what = "an assessment result" if reason is Reason.ASSESSMENT_DATA else "special-category"
        return reason, f"field '{where}' carries {what} data, which is never taken in; remove it"
    action = event.get("action")
    if (
        source is Source.VLE
        and isinstance(action, str)
        and _normalise_name(action) in ASSESSMENT_ACTIONS
    ):
        return Reason.ASSESSMENT_DATA, f"action {action!r} reports an assessment result"
    return None


def check_event(
    source: str, event: object, *, max_event_bytes: int = MAX_EVENT_BYTES
) -> Checked | tuple[Reason, str]:
    """Validate one event as the worker will: shape, JSON form, size, forbidden fields, schema."""
    try:
        return _check(source, event, max_event_bytes)
    except Exception as exc:  # a bug or a hostile mapping: this event is refused, not the file
        return Reason.PROCESSING_ERROR, (
            f"the event could not be checked ({type(exc).__name__}); it was not sent"
        )


def _check(source: str, event: object, max_event_bytes: int) -> Checked | tuple[Reason, str]:
    if isinstance(event, Unreadable):
        return event.reason, event.detail
    if type(event) is not dict and not isinstance(event, Mapping):
        return Reason.NOT_AN_OBJECT, f"expected a JSON object, got {type(event).__name__}"
    # Most events are flat and valid, and pay for no walk of their own: the encoder (which stops
    # cleanly at Python's recursion limit) and pydantic find every problem, and the iterative
    # walk in _shape runs only to name it, or where a recursive step would come next.
    fields = _KNOWN_FIELDS[source]
    try:
        text = _encode(event)
        size = len(text) if text.isascii() else len(text.encode())
    except TypeError as exc:
        return _shape(event, fields, max_event_bytes) or (
            Reason.WRONG_TYPE,
            f"cannot be written as JSON: {exc}",
        )
    except (ValueError, RecursionError) as exc:  # NaN, a lone surrogate, a cycle, too deep
        return _shape(event, fields, max_event_bytes) or (
            Reason.INVALID_VALUE,
            f"cannot be written as JSON: {exc}",
        )
    if size > max_event_bytes:
        return Reason.OVERSIZED, f"{size} bytes, over the {max_event_bytes}-byte limit per event"
    # A valid event holding only schema fields has only scalar values, none of them forbidden,
    # so the (comparatively slow) walks are needed only for extra fields or an invalid event.
    extra = not event.keys() <= fields
    problem = _shape(event, fields, max_event_bytes) if extra else None
    if problem is not None:
        return problem
    try:
        model = MODEL_BY_SOURCE[source].model_validate_json(text)
    except ValidationError as exc:
        problem = None if extra else _shape(event, fields, max_event_bytes)
        return problem or _policy_refusal(source, event) or classify_validation_error(exc)
    if extra:
        refusal = _policy_refusal(source, event)
        if refusal is not None:
            return refusal
    return Checked(text, size, model.student_id)


def _shape(
    event: Mapping[object, object], fields: frozenset[str], max_bytes: int
) -> tuple[Reason, str] | None:
    """The first problem JSON text cannot carry or the worker refuses, found without recursion.

    Nesting past ``MAX_DEPTH`` (a circular reference is infinitely deep), a lone surrogate in
    a key or a string, NaN or Infinity; and, by a lower bound of the encoded size, an event
    over ``max_bytes`` (so the walk stops early on a huge one the encoder could not write). A
    sentence names a field only if the schema has it: other keys can hold anything, a student
    number included.
    """
    least = 0  # a lower bound of the compact JSON size
    stack: list[tuple[object, int, str | None]] = [(event, 1, None)]
    while stack:
        value, depth, field = stack.pop()
        if isinstance(value, str):
            least += len(value) + 2
            if not value.isascii() and _SURROGATE.search(value):
                return Reason.INVALID_VALUE, _not_unicode(field if field in fields else None)
        elif isinstance(value, Mapping | list | tuple | set | frozenset):
            if depth > MAX_DEPTH:
                return Reason.OVERSIZED, too_deep()
            keys = _push(value, depth, field, stack)
            if keys is None:
                return Reason.INVALID_VALUE, _not_unicode(None, key=True)
            least += 2 + keys
        elif isinstance(value, float) and not math.isfinite(value):
            what = "NaN" if math.isnan(value) else "Infinity"
            where = f"field '{field}'" if field in fields else "a field the schema does not know"
            return Reason.INVALID_VALUE, (
                f"cannot be written as JSON: {where} holds {what}, which is not a JSON number; "
                "send null or leave the field out"
            )
        else:
            least += 1
        if least > max_bytes:
            detail = f"at least {least} bytes, over the {max_bytes}-byte limit per event"
            return Reason.OVERSIZED, detail
    return None


def _push(
    container: Mapping[object, object] | Iterable[object],
    depth: int,
    field: str | None,
    stack: list[tuple[object, int, str | None]],
) -> int | None:
    """Put a container's items on ``stack``; return the bytes its keys take at least, or None
    for a key that is not Unicode text. Items of the event itself are named by their key."""
    if not isinstance(container, Mapping):
        stack.extend((item, depth + 1, field) for item in container)
        return 0
    keys = 0
    for key, item in container.items():
        if isinstance(key, str):
            keys += len(key) + 3
            if not key.isascii() and _SURROGATE.search(key):
                return None
        stack.append((item, depth + 1, field if depth > 1 else str(key)))
    return keys


def too_deep() -> str:
    """The sentence for an event nested past ``MAX_DEPTH`` (the worker's own words)."""
    return (
        f"the event is nested more than {MAX_DEPTH} levels deep, over the {MAX_DEPTH}-level "
        "limit: events are flat objects; send the fields the schema names"
    )


def _not_unicode(field: str | None, *, key: bool = False) -> str:
    where = (
        "a field name"
        if key
        else (f"field '{field}'" if field is not None else "a field the schema does not know")
    )
    return (
        f"{where} is not valid Unicode text: it holds a lone surrogate (half of a UTF-16 "
        "pair, written \\ud800 to \\udfff in JSON); send the text as UTF-8"
    )
