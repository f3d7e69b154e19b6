"""Check one raw event as the worker will (JSON form, size, forbidden fields, schema), purely.

A refused event becomes a (reason, sentence) pair, never an exception, so a publish can count
every refusal and go on; no broker is needed, so the checks are unit-tested directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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


class Unreadable(dict[str, object]):
    """Stands in for an input line that is not a JSON object, so it is counted as refused."""

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
    """Validate one event as the worker will: JSON form, size, forbidden fields, then schema."""
    if isinstance(event, Unreadable):
        return event.reason, event.detail
    if type(event) is not dict and not isinstance(event, Mapping):
        return Reason.NOT_AN_OBJECT, f"expected a JSON object, got {type(event).__name__}"
    try:
        text = _encode(event)
    except TypeError as exc:
        return Reason.WRONG_TYPE, f"cannot be written as JSON: {exc}"
    except ValueError as exc:  # NaN or infinity, or a circular reference
        return Reason.INVALID_VALUE, f"cannot be written as JSON: {exc}"
    size = len(text) if text.isascii() else len(text.encode())
    if size > max_event_bytes:
        return Reason.OVERSIZED, f"{size} bytes, over the {max_event_bytes}-byte limit per event"
    try:
        model = MODEL_BY_SOURCE[source].model_validate_json(text)
    except ValidationError as exc:
        return _policy_refusal(source, event) or classify_validation_error(exc)
    # A valid event holding only schema fields has only scalar values, none of them forbidden,
    # so the (comparatively slow) forbidden-field walk is needed only for extra fields.
    if not event.keys() <= _KNOWN_FIELDS[source]:
        refusal = _policy_refusal(source, event)
        if refusal is not None:
            return refusal
    return Checked(text, size, model.student_id)
