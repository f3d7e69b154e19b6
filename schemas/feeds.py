"""Wire models of the raw feeds: card swipes, attendance marks and VLE activity (schema v1).

Every event has an ``event_id`` (the publisher's idempotency key: a scanner retry or a replay
reuses it) and a timezone-aware ``occurred_at``. Fields the analytics do not need are dropped
on validation; assessment results and special-category data are refused before it. A new feed
derives its model from ``RawEvent`` and registers it in :mod:`schemas.sources`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints, field_validator, model_validator

from schemas.common import ASSESSMENT_ACTIONS, SCHEMA_VERSION, Source, WireModel, normalise_name
from schemas.fields import EventId, EventTime, ShortText, StudentId


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
    # A later mark for the same student and session replaces this one (a register correction);
    # "withdrawn" takes the session off the student's record altogether.
    status: Literal["present", "late", "absent", "excused", "withdrawn"]
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


class LibraryActivity(RawEvent):
    """Use of the library and learning resources: a loan, renewal or return, an e-resource
    opened, a study room or equipment booked (Jisc's library recipes; SISO loans and bookings)."""

    source: Literal[Source.LIBRARY] = Source.LIBRARY
    activity: Literal[
        "loan", "renewal", "return", "e_resource", "room_booking", "equipment_loan", "visit"
    ]
    service: ShortText = "library"
    """Where: the library site, the e-resource platform, the room or equipment service."""
    item_type: Annotated[str, StringConstraints(max_length=64)] = ""
    """What kind of item (BOOK, JOURNAL, LAPTOP, ROOM): never the title or the item id."""
