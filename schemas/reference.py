"""Reference data from student records, timetabling and access control, on compacted topics
(schema v1).

Each topic is keyed by the record's id; a message with an empty value (a tombstone) deletes
the record. Student ids are pseudonymised when the records are loaded, like events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from schemas.common import SCHEMA_VERSION, WireModel
from schemas.fields import EventTime, ShortText, StudentId


class RosterEntry(WireModel):
    """A student on the roster: personal tutor, course, module enrolments, visa sponsorship,
    and the day their current term started for them."""

    schema_version: Literal[1] = SCHEMA_VERSION
    student_id: StudentId
    personal_tutor: ShortText | None = None
    course: ShortText | None = None
    modules: tuple[ShortText, ...] = ()
    sponsored_visa: bool = False
    term_starts_on: date | None = Field(
        default=None,
        description="First day of the student's current term (their enrolment day if they "
        "joined later). Rules count their windows from it; absent: from the first record.",
    )


class TimetableSession(WireModel):
    """One timetabled session: where and when students of a module are expected."""

    schema_version: Literal[1] = SCHEMA_VERSION
    session_id: ShortText
    module: ShortText
    building: ShortText
    starts_at: EventTime
    ends_at: EventTime

    @model_validator(mode="after")
    def _order(self) -> TimetableSession:
        if self.ends_at <= self.starts_at:
            msg = "ends_at must be after starts_at"
            raise ValueError(msg)
        return self


class ExemptionKind(StrEnum):
    """Why a student is not expected to engage for a while."""

    AUTHORISED_ABSENCE = "authorised_absence"
    PLACEMENT = "placement"
    BREAK_IN_LEARNING = "break_in_learning"
    DISSERTATION = "dissertation"
    WITHDRAWN = "withdrawn"


class Exemption(WireModel):
    """A period (whole days, inclusive) in which nudges about the student are suppressed."""

    schema_version: Literal[1] = SCHEMA_VERSION
    exemption_id: ShortText
    student_id: StudentId
    kind: ExemptionKind
    starts_on: date
    ends_on: date | None = Field(default=None, description="None: open-ended (e.g. withdrawn).")

    @model_validator(mode="after")
    def _order(self) -> Exemption:
        if self.ends_on is not None and self.ends_on < self.starts_on:
            msg = "ends_on is before starts_on"
            raise ValueError(msg)
        return self


class IdentityLink(WireModel):
    """One entry of the identity map: who an LMS or learning-record-store actor is.

    ``actor`` is spelled as the adapters spell their identity keys (docs/formats.md,
    "Identity"): an IRI, an xAPI account as ``<homePage>|<name>``, or a platform-scoped id
    such as ``canvas:<user_id>`` or ``moodle:<userid>``.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    actor: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    student_id: StudentId


class ReaderLocation(WireModel):
    """One entry of the reader map: where a door or gate reader is.

    ``reader_id`` is spelled as the access-control export names the reader (Paxton Net2: the
    door name and side, "Library Turnstile In"); imports look it up to give a swipe the
    building the timetable uses (docs/sources/paxton.md, "The reader map").
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    reader_id: ShortText
    building: ShortText
    campus: ShortText | None = None


REFERENCE_MODELS: dict[
    str,
    type[RosterEntry]
    | type[TimetableSession]
    | type[Exemption]
    | type[IdentityLink]
    | type[ReaderLocation],
] = {
    "roster": RosterEntry,
    "timetable": TimetableSession,
    "exemptions": Exemption,
    "identity": IdentityLink,
    "readers": ReaderLocation,
}


@dataclass(frozen=True)
class LookupTable:
    """Reference data a mapping field may be looked up in at import time (``reference =``)."""

    key_field: str  # the record field the cell is compared with
    default_take: str  # the record field the cell becomes, unless the rule says ``take``
    noun: str  # how sentences name the table
    missing_reason: str  # the note an accepted row carries when its cell is not in the table


LOOKUP_TABLES: dict[str, LookupTable] = {
    "readers": LookupTable("reader_id", "building", "reader map", "unmapped_reader"),
}
