"""Wire models for the raw feeds: card swipes, attendance marks and VLE activity (schema v1).

Every event has an ``event_id`` (the publisher's idempotency key: a scanner retry or a replay
reuses it) and a timezone-aware ``occurred_at``. Fields the analytics do not need are dropped
on validation; assessment results and special-category data are refused before it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.common import ASSESSMENT_ACTIONS, SCHEMA_VERSION, Source, WireModel, normalise_name


def _text_or_datetime(value: object) -> object:
    """Refuse numbers and other JSON types where a timestamp string is expected.

    Pydantic would read ``12`` as 12 seconds after the epoch; a feed that sends a number here
    is broken, and silently dating its events to 1970 would hide that.
    """
    if isinstance(value, str | datetime):
        return value
    kind, message = "wrong_type", "expected an ISO-8601 timestamp string with a UTC offset"
    raise PydanticCustomError(kind, message)


EventTime = Annotated[AwareDatetime, BeforeValidator(_text_or_datetime)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]
StudentId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^\S+$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class RawEvent(WireModel):
    """Fields every raw event carries."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: EventId
    student_id: StudentId
    occurred_at: EventTime


class CardSwipe(RawEvent):
    """A card presented at a door or gate reader."""

    source: Literal[Source.SWIPE] = Source.SWIPE
    reader_id: ShortText
    building: ShortText
    direction: Literal["in", "out", "unknown"] = "unknown"


class AttendanceMark(RawEvent):
    """A mark against a timetabled session, from a register, card reader, QR code or app."""

    source: Literal[Source.ATTENDANCE] = Source.ATTENDANCE
    session_id: ShortText
    module: ShortText
    expected_start: EventTime
    expected_end: EventTime
    status: Literal["present", "late", "absent", "excused"]
    capture_method: Literal["card", "register", "qr", "app", "bluetooth", "manual", "other"] = (
        "other"
    )

    @model_validator(mode="after")
    def _session_order(self) -> AttendanceMark:
        if self.expected_end < self.expected_start:
            msg = "expected_end is before expected_start"
            raise ValueError(msg)
        return self


class VleActivity(RawEvent):
    """An action in the virtual learning environment (Moodle, Blackboard, Canvas, ...)."""

    source: Literal[Source.VLE] = Source.VLE
    platform: ShortText
    course: ShortText
    action: ShortText
    resource: Annotated[str, StringConstraints(max_length=256)] = ""

    @field_validator("action")
    @classmethod
    def _not_assessment(cls, action: str) -> str:
        if normalise_name(action) in ASSESSMENT_ACTIONS:
            msg = f"action {action!r} reports an assessment result, which is out of scope"
            raise ValueError(msg)
        return action


AnyRawEvent = CardSwipe | AttendanceMark | VleActivity

MODEL_BY_SOURCE: dict[Source, type[CardSwipe] | type[AttendanceMark] | type[VleActivity]] = {
    Source.SWIPE: CardSwipe,
    Source.ATTENDANCE: AttendanceMark,
    Source.VLE: VleActivity,
}


class Envelope(WireModel):
    """Many events in one Kafka message, as Caliper and xAPI batches already are.

    A message is an envelope when its top-level object has an ``events`` list; each item is
    validated on its own, so one bad event is dead-lettered without losing its neighbours.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    source: Source | None = None
    sent_at: datetime | None = None
    events: list[dict[str, object]] = Field(min_length=1)
