"""The CELCAT presets against exports written from CELCAT's documentation: register marks become
attendance marks (a re-exported register corrects earlier marks), timetable events become
timetable reference records; one outcome per row, every accepted record valid for the product,
and the two clock-change hours of 2026 read as the presets say."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.adapters.mapping import Compiled, adapt_row, missing_columns
from agents.adapters.mapping_read import open_export, read_rows
from agents.adapters.units import Actor
from schemas.mappings import Mapping, load_mapping
from schemas.reference import REFERENCE_MODELS
from schemas.sources import SOURCES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sources" / "celcat"
REGISTER = FIXTURES / "register-marks.csv"
TIMETABLE = FIXTURES / "timetable-events.csv"


@dataclass(frozen=True)
class Seen:
    """One row of an export as the preset reads it."""

    line: int
    outcome: str  # accepted | ignored | refused | unreadable (the reader's own refusal)
    reason: str | None
    detail: str
    event: dict[str, Any] | None
    actor: Actor | None
    cells: dict[str, str | None] | None


@dataclass(frozen=True)
class Export:
    mapping: Mapping
    encoding: str
    header: list[str]
    rows: list[Seen]

    def accepted(self) -> list[Seen]:
        return [r for r in self.rows if r.outcome == "accepted"]

    def at(self, line: int) -> Seen:
        (row,) = [r for r in self.rows if r.line == line]
        return row


def read(path: Path, preset: str) -> Export:
    """Every row of ``path`` through the preset, as the import reads a file: binary, encoding
    from its first bytes, undecodable bytes kept as surrogates, quoted line breaks kept."""
    mapping = load_mapping(preset)
    compiled = Compiled.of(mapping)
    rows: list[Seen] = []
    with path.open("rb") as raw:
        encoding, header, found = open_export(raw, mapping)
        for n, row in enumerate(found):
            if row.cells is None:
                rows.append(Seen(row.line, "unreadable", None, row.problem or "", None, None, None))
                continue
            unit = adapt_row(n, row.cells, compiled)
            event = dict(unit.event) if unit.event is not None else None
            rows.append(
                Seen(row.line, str(unit.outcome), unit.reason, unit.detail, event, unit.actor,
                     row.cells)
            )  # fmt: skip
    return Export(mapping, encoding, header, rows)


# -- register marks ---------------------------------------------------------------------------
REGISTER_OUTCOMES = [
    (2, "accepted", None, "present"),
    (3, "accepted", None, "present"),
    (4, "accepted", None, "late"),
    (5, "accepted", None, "absent"),
    (6, "accepted", None, "excused"),  # the comment's quoted line break: the next row is line 8
    (8, "refused", "invalid_value", "status: the code in column 'Mark' is none of the 5 codes"),
    (9, "refused", "missing_field", "the identity column 'Student ID' is empty"),
    (10, "ignored", "not_engagement", "the 'Mark' column matches an ignore rule"),
    (11, "unreadable", None, "the row has 8 cells where the header has 11"),
    (12, "accepted", None, "excused"),  # the register re-exported the next day
    (13, "accepted", None, "present"),  # marked in the hour that repeats
    (14, "refused", "invalid_value", "occurred_at: a local time in the hour the clocks skip"),
]  # fmt: skip


def test_every_register_row_has_its_one_outcome_in_order_with_its_reason() -> None:
    export = read(REGISTER, "celcat-register")
    assert export.encoding == "cp1252"
    assert missing_columns(export.mapping, export.header) == []
    assert len(export.rows) == len(REGISTER_OUTCOMES)
    for row, (line, outcome, reason, said) in zip(export.rows, REGISTER_OUTCOMES, strict=True):
        assert (row.line, row.outcome, row.reason) == (line, outcome, reason), row
        if outcome == "accepted":
            assert row.event is not None and row.event["status"] == said
        else:
            assert said in row.detail, row.detail


def test_every_accepted_mark_is_a_valid_attendance_event_for_its_student() -> None:
    export = read(REGISTER, "celcat-register")
    model = SOURCES["attendance"].model
    for row in export.accepted():
        assert row.actor is not None and row.actor.keys == () and row.event is not None
        assert row.cells is not None and row.actor.as_is == row.cells["Student ID"]
        model.model_validate({**row.event, "student_id": row.actor.as_is})


def test_a_mark_reads_as_the_register_says_in_utc() -> None:
    export = read(REGISTER, "celcat-register")
    first = export.at(2)
    assert first.event == {
        "event_id": "celcat-104233-5-20261001",
        "occurred_at": "2026-10-05T08:05:00+00:00",  # 09:05 BST, when the mark was made
        "session_id": "104233-5",
        "module": "CS101",
        "expected_start": "2026-10-05T08:00:00+00:00",
        "expected_end": "2026-10-05T09:00:00+00:00",
        "status": "present",
        "capture_method": "register",
    }
    assert first.actor == Actor(keys=(), as_is="20261001")
    zoe = export.at(3)  # Windows-1252 bytes decoded, not mangled
    assert zoe.cells is not None and zoe.cells["Student Name"] == "Zoë Brontë"
    quoted = export.at(6)
    assert quoted.cells is not None and quoted.cells["Comments"] == (
        "Hospital appointment\r\nletter seen by the programme office"
    )


def test_a_re_exported_register_corrects_the_earlier_mark() -> None:
    export = read(REGISTER, "celcat-register")
    before, after = export.at(5).event, export.at(12).event
    assert before is not None and after is not None
    # Same student, same register: the product's correction rule replaces the earlier mark
    # (same session_id, another status), dated by when the change was made.
    assert after["event_id"] == before["event_id"] == "celcat-104233-5-20261004"
    assert after["session_id"] == before["session_id"] == "104233-5"
    assert (before["status"], after["status"]) == ("absent", "excused")
    assert after["occurred_at"] == "2026-10-06T10:30:00+00:00" > before["occurred_at"]


def test_the_hour_that_repeats_is_the_earlier_instant_and_the_skipped_hour_is_refused() -> None:
    export = read(REGISTER, "celcat-register")
    repeated = export.at(13).event  # 25/10/2026 01:30: clocks go back at 02:00 BST
    assert repeated is not None and repeated["occurred_at"] == "2026-10-25T00:30:00+00:00"
    skipped = export.at(14)  # 29/03/2026 01:30: clocks go forward at 01:00 GMT
    assert (skipped.outcome, skipped.reason) == ("refused", "invalid_value")
    assert "(Europe/London)" in skipped.detail and "01:30" not in skipped.detail


def test_the_register_preset_maps_codes_onto_the_four_statuses_and_names_missing_columns() -> None:
    mapping = load_mapping("celcat-register")
    assert (mapping.produces, mapping.time.zone) == ("attendance", "Europe/London")
    assert (mapping.time.ambiguous, mapping.time.nonexistent) == ("earlier", "refuse")
    assert mapping.identity is not None and mapping.identity.policy == "as-is"
    assert set(mapping.maps["marks"].values()) == {"present", "late", "absent", "excused"}
    header, _ = read_rows(
        io.StringIO("Event ID,Module Code,Start,End,Student ID,Mark,Date Changed\r\n", newline=""),
        mapping,
    )
    assert missing_columns(mapping, header) == ["Week"]


# -- timetable events -------------------------------------------------------------------------
TIMETABLE_OUTCOMES = [
    (2, "accepted", None, "104233-5"),
    (3, "accepted", None, "104250-5"),  # notes with a quoted line break: the next row is line 5
    (5, "accepted", None, "104260-7"),
    (6, "accepted", None, "104777-7"),  # ends in the hour that repeats
    (7, "refused", "invalid_value", "ends_at: a local time in the hour the clocks skip"),
    (8, "accepted", None, "98310-29"),
    (9, "ignored", "not_engagement", "the 'Event Category' column matches an ignore rule"),
    (10, "refused", "missing_field", "module (column 'Module Code') is empty"),
    (11, "unreadable", None, "the row has 6 cells where the header has 11"),
]  # fmt: skip


def test_every_timetable_row_has_its_one_outcome_in_order_with_its_reason() -> None:
    export = read(TIMETABLE, "celcat-timetable")
    assert export.encoding == "utf-8-sig" and export.header[0] == "Event ID"  # BOM dropped
    assert missing_columns(export.mapping, export.header) == []
    assert len(export.rows) == len(TIMETABLE_OUTCOMES)
    for row, (line, outcome, reason, said) in zip(export.rows, TIMETABLE_OUTCOMES, strict=True):
        assert (row.line, row.outcome, row.reason) == (line, outcome, reason), row
        if outcome == "accepted":
            assert row.event is not None and row.event["session_id"] == said
            assert row.actor is None  # reference records name nobody
        else:
            assert said in row.detail, row.detail


def test_every_accepted_event_is_a_valid_timetable_session() -> None:
    export = read(TIMETABLE, "celcat-timetable")
    model = REFERENCE_MODELS["timetable"]
    for row in export.accepted():
        model.model_validate(row.event)
    assert export.at(2).event == {
        "session_id": "104233-5",
        "module": "CS101",
        "building": "Turing Building",
        "starts_at": "2026-10-05T08:00:00+00:00",
        "ends_at": "2026-10-05T09:00:00+00:00",
    }
    zoe = export.at(2)
    assert zoe.cells is not None and zoe.cells["Staff"] == "Dr Zoë Ng"  # UTF-8 read as UTF-8


def test_a_session_ending_in_the_repeated_hour_ends_at_the_earlier_instant() -> None:
    export = read(TIMETABLE, "celcat-timetable")
    night = export.at(6).event
    assert night is not None
    assert (night["starts_at"], night["ends_at"]) == (
        "2026-10-24T21:00:00+00:00",  # 22:00 BST
        "2026-10-25T00:30:00+00:00",  # the first 01:30, still BST
    )
    skipped = export.at(7)
    assert (skipped.outcome, skipped.reason) == ("refused", "invalid_value")


def test_register_marks_meet_their_timetabled_sessions() -> None:
    sessions = {
        r.event["session_id"]: r.event
        for r in read(TIMETABLE, "celcat-timetable").accepted()
        if r.event is not None
    }
    marks = [r.event for r in read(REGISTER, "celcat-register").accepted() if r.event is not None]
    assert marks
    for mark in marks:
        session = sessions[mark["session_id"]]
        assert (mark["module"], mark["expected_start"], mark["expected_end"]) == (
            session["module"],
            session["starts_at"],
            session["ends_at"],
        )


# -- an empty cell of an id, a header without an ignore rule's column ---------------------------
MARK = {
    "Event ID": "104233", "Week": "5", "Module Code": "CS101", "Start": "05/10/2026 09:00",
    "End": "05/10/2026 10:00", "Student ID": "20261001", "Student Name": "Amir Khan",
    "Mark": "/", "Minutes Late": "", "Comments": "", "Date Changed": "05/10/2026 09:05",
}  # fmt: skip


def test_an_empty_event_or_week_refuses_the_mark_rather_than_making_a_shared_id() -> None:
    """``celcat-{Event ID}-{Week}-{Student ID}`` with an empty cell would be one id for many
    registers: the row is refused, naming the field and the first empty column."""
    compiled = Compiled.of(load_mapping("celcat-register"))
    assert str(adapt_row(0, MARK, compiled).outcome) == "accepted"
    for column in ("Event ID", "Week"):
        unit = adapt_row(0, {**MARK, column: ""}, compiled)
        assert (str(unit.outcome), unit.reason) == ("refused", "missing_field")
        assert unit.detail == f"event_id (column {column!r}) is empty"
    nobody = adapt_row(0, {**MARK, "Student ID": "", "Week": ""}, compiled)
    assert nobody.detail == "the identity column 'Student ID' is empty"  # identity first


def test_a_timetable_without_the_event_category_column_is_refused_whole() -> None:
    mapping = load_mapping("celcat-timetable")
    header = ["Event ID", "Week", "Start", "End", "Module Code", "Site"]
    assert missing_columns(mapping, header) == ["Event Category"]  # read by the ignore rule
    assert missing_columns(mapping, [*header, "Event Category"]) == []
