"""The endpoints of the ingest service and the adapter behind each.

Each format endpoint takes one native payload and gives one unit outcome per statement, event,
log row or envelope item (``agents.adapters``). The product's own schema
(``/events/{source}``) is one unit per event, checked as the publisher checks it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.adapters import caliper, canvas, moodle, xapi
from agents.adapters.units import AdaptContext, Unit
from schemas.common import Reason
from schemas.sources import SOURCES

Adapter = Callable[[Any, AdaptContext], list[Unit]]

# Statement ids an LRS gives statements that come without one: a UUID made from the
# statement's content, so a resend of the same statement gets the same id (counted once).
_XAPI_NAMESPACE = uuid.UUID("6f1c7b0e-5c2a-4d0e-9b57-3f0b7a1d2e41")


@dataclass(frozen=True)
class Format:
    """One wire format the service takes."""

    name: str
    adapt: Adapter

    def units_in(self, payload: Any) -> int:
        """How many units a payload holds, before adapting it (for the per-request limit)."""
        if isinstance(payload, list):
            return len(payload)
        if isinstance(payload, dict) and isinstance(payload.get("data"), list):
            return len(payload["data"])  # a Caliper envelope
        return 1


def _canvas(payload: Any, ctx: AdaptContext) -> list[Unit]:
    """Canvas Live Events in Canvas's own format or in its Caliper form."""
    if canvas.is_caliper(payload):
        return caliper.adapt(payload, ctx)
    return canvas.adapt(payload, ctx)


def _native(source: str) -> Adapter:
    def adapt(payload: Any, ctx: AdaptContext) -> list[Unit]:
        events = payload if isinstance(payload, list) else [payload]
        # Checked with the product's schema after this, like every adapter's output.
        return [
            Unit.accepted(i, source, e, None)
            if isinstance(e, dict)
            else Unit.refused(i, Reason.NOT_AN_OBJECT, "expected a JSON object for each event")
            for i, e in enumerate(events)
        ]

    return adapt


FORMATS: dict[str, Format] = {
    "xapi": Format("xapi", xapi.adapt),
    "caliper": Format("caliper", caliper.adapt),
    "canvas": Format("canvas", _canvas),
    "moodle-log": Format("moodle-log", moodle.adapt),
    **{f"events-{name}": Format(f"events-{name}", _native(name)) for name in SOURCES},
}


def with_statement_ids(payload: Any) -> Any:
    """Give each xAPI statement without an id the one an LRS would store it under."""
    statements = payload if isinstance(payload, list) else [payload]
    for statement in statements:
        if isinstance(statement, dict) and "id" not in statement:
            try:
                canonical = json.dumps(statement, sort_keys=True, separators=(",", ":"))
            except (RecursionError, ValueError, TypeError):
                continue  # the adapter refuses it, with its reason
            statement["id"] = str(uuid.uuid5(_XAPI_NAMESPACE, canonical))
    return payload


def statement_ids(payload: Any) -> list[tuple[int, str]]:
    """(position, id) of each statement of a payload that has an id, in order (what an LRS
    answers a POST with)."""
    statements = payload if isinstance(payload, list) else [payload]
    return [
        (n, s["id"])
        for n, s in enumerate(statements)
        if isinstance(s, dict) and isinstance(s.get("id"), str)
    ]
