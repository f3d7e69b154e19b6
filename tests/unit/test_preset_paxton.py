"""The Paxton Net2 preset against an event log export written from Paxton's documentation: access
permitted becomes a card swipe; denied access, door alarms, system events, staff, visitor and
contractor cards and cards without a student id are ignored with their reasons; one outcome per
row, every swipe valid for the product, and the two clock-change hours of 2026 read as the
preset says. The export has no event id: each swipe's id is a content id of its time, reader,
card and event text, the same whenever the same row is read; the direction is the reader
name's last word (In, Out)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents.adapters.mapping import Compiled, adapt_row, missing_columns
from agents.adapters.mapping_read import open_export, read_rows
from agents.adapters.units import Actor, Unit, content_id
from schemas.mappings import Mapping, load_mapping
from schemas.sources import SOURCES

EVENTS = Path(__file__).parent.parent / "fixtures" / "sources" / "paxton" / "net2-events.csv"
PRESET = "paxton-net2-events"


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

    def at(self, line: int) -> Seen:
        (row,) = [r for r in self.rows if r.line == line]
        return row


def read(path: Path) -> Export:
    """Every row of ``path`` through the preset, as the import reads a file: binary, encoding
    from its first bytes, undecodable bytes kept as surrogates, quoted line breaks kept."""
    mapping = load_mapping(PRESET)
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


SWIPE = {
    "Date/Time": "05/10/2026 08:52:13", "User Code": "20261001", "User Name": "Khan,Amir",
    "Department": "Students", "Token Number": "40012345", "Where": "Library Turnstile In",
    "Event": "Access permitted (card only)", "Details": "",
}  # fmt: skip


def unit_of(cells: dict[str, str]) -> Unit:
    """One row given as cells (the others as an ordinary swipe) through the preset."""
    return adapt_row(0, {**SWIPE, **cells}, Compiled.of(load_mapping(PRESET)))


def one(cells: dict[str, str]) -> tuple[str, str | None]:
    """The outcome and reason of one row given as cells (the others as an ordinary swipe)."""
    unit = unit_of(cells)
    return str(unit.outcome), unit.reason


OUTCOMES = [
    (2, "accepted", None, "Turing Building Main Entrance In"),
    (3, "accepted", None, "Turing Building Main Entrance In"),
    (4, "ignored", "staff_action", "the 'Department' column matches an ignore rule"),
    (5, "ignored", "staff_action", "the 'Department' column"),
    (6, "ignored", "staff_action", "the 'Department' column"),
    (7, "ignored", "not_engagement", "the 'Event' column matches an ignore rule"),  # denied
    (8, "ignored", "not_engagement", "the 'Event' column"),  # door held open
    (9, "ignored", "not_engagement", "the 'Event' column"),  # door forced
    (10, "ignored", "system_action", "the 'Event' column"),  # alarm; quoted line break
    (12, "ignored", "system_action", "the 'Event' column"),  # operator logon
    (13, "ignored", "unknown_actor", "the 'User Code' column matches an ignore rule"),
    (14, "accepted", None, "Library Turnstile Out"),
    (15, "unreadable", None, "the row has 3 cells where the header has 8"),
    (16, "accepted", None, "Rosalind Hall Main Door In"),  # in the hour that repeats
    (17, "refused", "invalid_value", "occurred_at: a local time in the hour the clocks skip"),
]  # fmt: skip


def test_every_row_has_its_one_outcome_in_order_with_its_reason() -> None:
    export = read(EVENTS)
    assert export.encoding == "utf-8-sig" and export.header[0] == "Date/Time"  # BOM dropped
    assert missing_columns(export.mapping, export.header) == []
    assert len(export.rows) == len(OUTCOMES)
    for row, (line, outcome, reason, said) in zip(export.rows, OUTCOMES, strict=True):
        assert (row.line, row.outcome, row.reason) == (line, outcome, reason), row
        if outcome == "accepted":
            assert row.event is not None and row.event["reader_id"] == said
        else:
            assert said in row.detail, row.detail


def test_every_accepted_swipe_is_a_valid_card_swipe_for_its_student() -> None:
    export = read(EVENTS)
    model = SOURCES["swipe"].model
    accepted = [r for r in export.rows if r.outcome == "accepted"]
    assert [r.line for r in accepted] == [2, 3, 14, 16]
    for row in accepted:
        assert row.actor is not None and row.actor.keys == () and row.event is not None
        assert row.cells is not None and row.actor.as_is == row.cells["User Code"]
        model.model_validate({**row.event, "student_id": row.actor.as_is})


def test_a_swipe_reads_as_the_event_log_says_in_utc() -> None:
    export = read(EVENTS)
    first = export.at(2)
    assert first.event == {
        # content_id("paxton-net2-events", "<Date/Time>|<Where>|<Token Number>|<Event>")
        "event_id": "paxton-net2-events-38044692a802e8e15992752be509e909",
        "occurred_at": "2026-10-05T07:52:13+00:00",  # 08:52:13 BST
        "reader_id": "Turing Building Main Entrance In",
        "building": "Turing Building Main Entrance In",  # the reader map is read per batch
        "direction": "in",  # the reader's side
    }
    out = export.at(14).event
    assert out is not None and (out["reader_id"], out["direction"]) == (
        "Library Turnstile Out", "out",
    )  # fmt: skip
    assert first.actor == Actor(keys=(), as_is="20261001")
    zoe = export.at(3)
    assert zoe.cells is not None and zoe.cells["User Name"] == "Brontë,Zoë"
    alarm = export.at(10)
    assert alarm.cells is not None and alarm.cells["Details"] == (
        "Mains failed\r\nActioned by System engineer"
    )


def test_the_hour_that_repeats_is_the_earlier_instant_and_the_skipped_hour_is_refused() -> None:
    export = read(EVENTS)
    repeated = export.at(16).event  # 25/10/2026 01:30:12: clocks go back at 02:00 BST
    assert repeated is not None and repeated["occurred_at"] == "2026-10-25T00:30:12+00:00"
    skipped = export.at(17)  # 29/03/2026 01:30:40: clocks go forward at 01:00 GMT
    assert (skipped.outcome, skipped.reason) == ("refused", "invalid_value")
    assert "(Europe/London)" in skipped.detail and "01:30" not in skipped.detail


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ({"Event": "Access permitted (card + PIN)"}, ("accepted", None)),
        ({"Event": "Access denied (barred user)"}, ("ignored", "not_engagement")),
        ({"Event": "Door open too long"}, ("ignored", "not_engagement")),
        ({"Event": "Fire alarm"}, ("ignored", "system_action")),
        ({"Event": ""}, ("ignored", "system_action")),
        # The first rule that matches decides: a staff card refused at a door is not access.
        ({"Department": "Staff", "Event": "Access denied (invalid card)"},
         ("ignored", "not_engagement")),
        ({"Department": "Staff", "User Code": ""}, ("ignored", "staff_action")),
        ({"Department": "Students and staff"}, ("accepted", None)),  # exact names only
        ({"Date/Time": "2026-10-05 08:52:13.000"}, ("accepted", None)),  # SQL's own text
        ({"Date/Time": "10/05/2026 08:52 PM"}, ("refused", "invalid_value")),
    ],
)  # fmt: skip
def test_the_rules_in_order(cells: dict[str, str], expected: tuple[str, str | None]) -> None:
    assert one(cells) == expected


def test_the_preset_is_found_by_name_and_names_a_missing_column() -> None:
    mapping = load_mapping(PRESET)
    assert (mapping.produces, mapping.time.zone) == ("swipe", "Europe/London")
    assert (mapping.time.ambiguous, mapping.time.nonexistent) == ("earlier", "refuse")
    assert mapping.identity is not None and mapping.identity.column == "User Code"
    assert "Event ID" not in mapping.required_columns  # Net2's query has none [Report]
    header, _ = read_rows(io.StringIO("Date/Time,User Code,Where,Event\r\n", newline=""), mapping)
    # Token Number is part of the event id; Department is read by the staff rule: without it,
    # staff cards would be taken for students', so the file is refused whole.
    assert missing_columns(mapping, header) == ["Token Number", "Department"]


# -- the event id: a content id of the row --------------------------------------------------
def test_the_event_id_is_a_content_id_of_time_reader_card_and_event() -> None:
    unit = unit_of({})
    assert unit.event is not None
    text = "05/10/2026 08:52:13|Library Turnstile In|40012345|Access permitted (card only)"
    assert unit.event["event_id"] == content_id(PRESET, text)
    assert unit.event["event_id"] == "paxton-net2-events-1c9d38e022c310a788c170c20f06941c"


def test_the_same_row_gets_the_same_id_whenever_it_is_read() -> None:
    first, again = read(EVENTS), read(EVENTS)
    ids = [r.event["event_id"] for r in first.rows if r.event is not None]
    assert ids == [r.event["event_id"] for r in again.rows if r.event is not None]
    assert len(set(ids)) == len(ids) == 4  # four swipes, four ids
    # Cells that are not part of the id (the user's name, details) do not change it.
    assert unit_of({"User Name": "Khan,A", "Details": "x"}).event == unit_of({}).event


@pytest.mark.parametrize(
    "cells",
    [
        {"Date/Time": "05/10/2026 08:52:14"},
        {"Where": "Library Turnstile Out"},
        {"Token Number": "40012346"},
        {"Event": "Access permitted (card + PIN)"},
    ],
)
def test_another_time_reader_card_or_event_is_another_id(cells: dict[str, str]) -> None:
    ours, theirs = unit_of({}).event, unit_of(cells).event
    assert ours is not None and theirs is not None
    assert ours["event_id"] != theirs["event_id"]


def test_the_id_is_of_the_time_as_written_so_a_resaved_export_gives_new_ids() -> None:
    """The same instant written another way (a spreadsheet re-save drops the seconds, SQL's text)
    is another id: import the export as Net2 wrote it (docs/sources/paxton.md)."""
    ours = unit_of({"Date/Time": "05/10/2026 08:52:00"}).event
    resaved = unit_of({"Date/Time": "05/10/2026 08:52"}).event
    assert ours is not None and resaved is not None
    assert ours["occurred_at"] == resaved["occurred_at"]
    assert ours["event_id"] != resaved["event_id"]


@pytest.mark.parametrize("column", ["Date/Time", "Where", "Token Number", "Event"])
def test_an_empty_cell_of_the_id_refuses_the_swipe(column: str) -> None:
    unit = unit_of({column: ""})
    if column == "Event":  # the ignore rules come first: an empty event is no access
        assert (str(unit.outcome), unit.reason) == ("ignored", "system_action")
        return
    assert (str(unit.outcome), unit.reason) == ("refused", "missing_field")
    assert unit.detail == f"event_id (column {column!r}) is empty"


# -- the direction: the reader name's last word ---------------------------------------------
@pytest.mark.parametrize(
    ("where", "direction"),
    [
        ("Library Turnstile In", "in"),
        ("Library Turnstile Out", "out"),
        ("Rosalind Hall Main Door In ", "in"),  # cells are stripped
        ("Turing Building Plant Room", None),  # no side: left out, read as unknown
        ("Inner Door", None),  # "In" only as the last word
        ("Library Turnstile IN", None),  # Net2 writes "In"; other spellings are unknown
        ("Library Turnstile Outside", None),
    ],
)
def test_the_direction_is_the_side_at_the_end_of_the_reader_name(
    where: str, direction: str | None
) -> None:
    unit = unit_of({"Where": where})
    assert unit.event is not None and unit.actor is not None
    assert unit.event.get("direction") == direction
    swipe = SOURCES["swipe"].model.model_validate({**unit.event, "student_id": unit.actor.as_is})
    assert swipe.model_dump()["direction"] == (direction or "unknown")
