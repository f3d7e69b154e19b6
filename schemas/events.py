"""Messages on the raw topics: one event of a registered feed, or an envelope of events (v1).

The per-feed event models live in :mod:`schemas.feeds` and the source kinds in
:mod:`schemas.sources`; they are named here too, where readers of the raw topics look for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import Field

from schemas.common import SCHEMA_VERSION, WireModel
from schemas.feeds import AttendanceMark, CardSwipe, RawEvent, VleActivity
from schemas.fields import EventId, EventTime, ShortText, StudentId
from schemas.sources import SOURCES, RegisteredSource

__all__ = [
    "MODEL_BY_SOURCE",
    "AnyRawEvent",
    "AttendanceMark",
    "CardSwipe",
    "Envelope",
    "EventId",
    "EventTime",
    "RawEvent",
    "ShortText",
    "StudentId",
    "VleActivity",
]

AnyRawEvent = RawEvent
"""An event of any registered feed."""

MODEL_BY_SOURCE: Mapping[str, type[RawEvent]] = SOURCES.models
"""The event model of every registered source, by name (a view of the registry)."""


class Envelope(WireModel):
    """Many events in one Kafka message, as Caliper and xAPI batches already are.

    A message is an envelope when its top-level object has an ``events`` list; each item is
    validated on its own, so one bad event is dead-lettered without losing its neighbours.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    source: RegisteredSource | None = None
    sent_at: datetime | None = None
    events: list[dict[str, object]] = Field(min_length=1)
