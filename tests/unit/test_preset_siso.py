"""The SISO presets (``schemas/presets/siso-loans.toml``, ``siso-bookings.toml``) on exports
written from SISO's public documentation (``tests/fixtures/sources/siso/SOURCES.md``): one
outcome per row, in order, with its reason; every accepted row a valid library event; the hour
that repeats and the hour that never happens when the clocks change in 2026."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents.adapters.mapping import Compiled, adapt_row, missing_columns
from agents.adapters.mapping_read import open_export
from agents.adapters.units import Outcome, Unit
from schemas.common import Reason
from schemas.mappings import load_mapping
from schemas.sources import SOURCES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "siso"


@dataclass(frozen=True)
class Export:
    """An export as the import reads it: its encoding, header, and each row's line and unit."""

    encoding: str
    header: list[str]
    rows: list[tuple[int, Unit]]


def read_export(name: str, preset: str) -> Export:
    """The fixture ``name`` through the preset, as ``stream/ingest/imports.py`` reads a file."""
    mapping = load_mapping(preset)
    compiled = Compiled.of(mapping)
    with (FIXTURES / name).open("rb") as f:
        encoding, header, rows = open_export(f, mapping)
        assert missing_columns(mapping, header) == []
        out: list[tuple[int, Unit]] = []
        for index, row in enumerate(rows):
            if row.cells is None:  # as the import does: the row alone is refused
                unit = Unit.refused(index, Reason.INVALID_VALUE, row.problem or "unreadable")
            else:
                unit = adapt_row(index, row.cells, compiled)
            out.append((row.line, unit))
    return Export(encoding, header, out)


def outcomes(export: Export) -> list[tuple[int, str, Any]]:
    """(line, outcome, the event with its student id | the reason) of every row."""
    out: list[tuple[int, str, Any]] = []
    for line, unit in export.rows:
        if unit.outcome is Outcome.ACCEPTED:
            assert unit.actor is not None and unit.source == "library"
            out.append((line, "accepted", {**(unit.event or {}), "student_id": unit.actor.as_is}))
        else:
            out.append((line, str(unit.outcome), unit.reason))
    return out


def loan(line: int, n: int, when: str, activity: str, who: str, store: str, kind: str) -> Any:
    event = {
        "event_id": f"siso-loan-T{n}",
        "occurred_at": when,
        "activity": activity,
        "service": store,
        "item_type": kind,
        "student_id": who,
    }
    return (line, "accepted", event)


def booking(line: int, n: int, when: str, who: str, where: str, kind: str) -> Any:
    event = {
        "event_id": f"siso-booking-{n}",
        "occurred_at": when,
        "activity": "room_booking",
        "service": where,
        "item_type": kind,
        "student_id": who,
    }
    return (line, "accepted", event)


AV, MUSIC, LOCKERS = "Photography & AV Store", "Music Tech Store", "Library Laptop Lockers"
CALVIN, DYKE = "Calvin Street Building", "Dyke Road Annexe"

LOANS = [
    loan(2, 100231, "2026-03-02T10:05:00+00:00", "equipment_loan", "21004512", AV, "Camera"),
    loan(3, 100232, "2026-03-04T16:40:00+00:00", "renewal", "21004512", AV, "Camera"),
    loan(4, 100233, "2026-03-05T15:10:00+00:00", "return", "21004512", AV, "Camera"),
    # line 5 is the second line of row 4's quoted note
    (6, "ignored", "staff_action"),  # a member of staff borrowing
    (7, "ignored", "not_engagement"),  # a reservation, not yet a loan
    (8, "ignored", "not_engagement"),  # the reservation cancelled
    (9, "refused", "missing_field"),  # no borrower id
    (10, "refused", "invalid_value"),  # 11 cells where the header has 12
    (11, "refused", "invalid_value"),  # an action code the preset does not know
    loan(12, 100240, "2026-03-06T14:20:00+00:00", "equipment_loan", "21007781", MUSIC, ""),
    # 01:30 on 29 March 2026 never happens in London (01:00 GMT -> 02:00 BST): read as GMT
    loan(13, 100241, "2026-03-29T01:30:00+00:00", "equipment_loan", "21009034", LOCKERS, "Laptop"),
    # 01:30 on 25 October 2026 happens twice (02:00 BST -> 01:00 GMT): the earlier, in BST
    loan(14, 100242, "2026-10-25T00:30:00+00:00", "return", "21009034", LOCKERS, "Laptop"),
    (15, "refused", "invalid_value"),  # 31 February
]  # fmt: skip

BOOKINGS = [
    booking(2, 88101, "2026-03-02T18:42:00+00:00", "21004512", CALVIN, "Edit Suite"),
    (3, "ignored", "not_engagement"),  # cancelled
    (4, "ignored", "staff_action"),  # a member of staff's booking
    (5, "refused", "missing_field"),  # no booker id
    (6, "refused", "invalid_value"),  # 13 cells where the header has 12
    booking(7, 88106, "2026-03-04T16:00:00+00:00", "21002291", CALVIN, "Recording Studio"),
    # line 8 is the second line of row 7's quoted note
    (9, "ignored", "not_engagement"),  # declined
    booking(10, 88108, "2026-03-29T01:30:00+00:00", "21009034", DYKE, "Practice Room"),
    booking(11, 88109, "2026-10-25T00:30:00+00:00", "21004512", CALVIN, "ROOM"),  # no type
    (12, "refused", "invalid_value"),  # 31 February
]  # fmt: skip


def test_the_presets_load_by_name_and_read_the_columns_their_documentation_names() -> None:
    loans, bookings = load_mapping("siso-loans"), load_mapping("siso-bookings")
    assert (loans.name, loans.produces, loans.is_reference) == ("siso-loans", "library", False)
    assert (bookings.name, bookings.produces) == ("siso-bookings", "library")
    # The columns the ignore rules read (User Type; Action, Status) are required: without them
    # staff loans and cancelled bookings would be counted as students' engagement.
    assert set(loans.required_columns) == {
        "Transaction ID", "Date", "Action", "Store", "User ID", "User Type",
    }  # fmt: skip
    assert set(bookings.required_columns) == {
        "Booking ID", "Created", "Location", "User ID", "User Type", "Status",
    }  # fmt: skip
    for preset in (loans, bookings):  # the borrower's id, as the student-records system has it
        assert preset.identity is not None
        assert (preset.identity.column, preset.identity.policy) == ("User ID", "as-is")


def test_a_loan_log_gives_one_outcome_per_row_in_order_with_its_reason() -> None:
    export = read_export("loans.csv", "siso-loans")
    assert export.encoding == "utf-8-sig" and export.header[0] == "Transaction ID"
    assert [unit.index for _, unit in export.rows] == list(range(len(LOANS)))
    assert outcomes(export) == LOANS
    details = {line: unit.detail for line, unit in export.rows}
    assert details[6] == "the 'User Type' column matches an ignore rule of siso-loans"
    assert details[9] == "the identity column 'User ID' is empty"
    assert details[10] == "the row has 11 cells where the header has 12"
    assert details[11].startswith("activity: the code in column 'Action' is none of")
    assert "Written Off" not in details[11] and "31/02" not in details[15]  # never the value


def test_a_windows_1252_loan_log_keeps_its_names_and_store() -> None:
    export = read_export("loans-cp1252.csv", "siso-loans")
    assert export.encoding == "cp1252"
    store = "Media Store \N{EN DASH} Holloway"
    assert outcomes(export) == [
        loan(2, 100301, "2026-03-09T11:15:00+00:00", "equipment_loan", "21005530", store, "Camera"),
        loan(3, 100302, "2026-03-11T10:02:00+00:00", "return", "21005530", store, "Camera"),
    ]  # fmt: skip


def test_a_bookings_report_gives_one_outcome_per_row_in_order_with_its_reason() -> None:
    export = read_export("bookings.csv", "siso-bookings")
    assert export.encoding == "utf-8"
    assert [unit.index for _, unit in export.rows] == list(range(len(BOOKINGS)))
    assert outcomes(export) == BOOKINGS
    details = {line: unit.detail for line, unit in export.rows}
    assert details[3] == "the 'Status' column matches an ignore rule of siso-bookings"
    assert details[4] == "the 'User Type' column matches an ignore rule of siso-bookings"
    assert details[12] == "occurred_at: the time matches none of the mapping's formats"


def test_a_semicolon_bookings_report_keeps_commas_inside_its_cells() -> None:
    export = read_export("bookings-semicolon.csv", "siso-bookings")
    assert len(export.header) == 12 and export.header[-1] == "Notes"
    assert outcomes(export) == [
        booking(2, 88201, "2026-03-06T12:10:00+00:00", "21005530", "Holloway, Block C",
                "Edit Suite"),
        (3, "ignored", "not_engagement"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "preset"),
    [
        ("loans.csv", "siso-loans"),
        ("loans-cp1252.csv", "siso-loans"),
        ("bookings.csv", "siso-bookings"),
        ("bookings-semicolon.csv", "siso-bookings"),
    ],
)
def test_every_accepted_row_is_a_valid_library_event(name: str, preset: str) -> None:
    model = SOURCES["library"].model
    accepted = [event for _, outcome, event in outcomes(read_export(name, preset))
                if outcome == "accepted"]  # fmt: skip
    assert accepted
    for event in accepted:
        valid = model.model_validate(event)
        assert valid.model_dump(mode="json")["source"] == "library"


def test_the_clock_change_hours_of_2026() -> None:
    """Europe/London: 29 March 01:00 GMT -> 02:00 BST, so 01:30 never happens and is read as
    if the clocks had not yet changed (01:30 GMT: the loan is kept, an hour out at most);
    25 October 02:00 BST -> 01:00 GMT, so 01:30 happens twice and is read as the first (BST)."""
    loans = {line: event for line, outcome, event in outcomes(read_export("loans.csv",
             "siso-loans")) if outcome == "accepted"}  # fmt: skip
    bookings = {line: event for line, outcome, event in outcomes(read_export("bookings.csv",
                "siso-bookings")) if outcome == "accepted"}  # fmt: skip
    assert loans[13]["occurred_at"] == bookings[10]["occurred_at"] == "2026-03-29T01:30:00+00:00"
    assert loans[14]["occurred_at"] == bookings[11]["occurred_at"] == "2026-10-25T00:30:00+00:00"
    assert loans[2]["occurred_at"] == "2026-03-02T10:05:00+00:00"  # winter: GMT = UTC


def test_a_header_without_a_required_column_is_named_and_optional_ones_may_be_absent() -> None:
    loans = load_mapping("siso-loans")
    header = ["Transaction ID", "Date", "Action", "User Type", "Item"]
    assert missing_columns(loans, header) == ["Store", "User ID"]
    without_category = ["Transaction ID", "Date", "Action", "Store", "User ID", "User Type"]
    assert missing_columns(loans, without_category) == []  # item_type then defaults to ""
    # A header without the column an ignore rule reads is refused whole, naming it.
    assert missing_columns(loans, without_category[:-1]) == ["User Type"]
    bookings = load_mapping("siso-bookings")
    without_type = ["Booking ID", "Created", "Location", "User ID", "Status", "User Type"]
    assert missing_columns(bookings, without_type) == []  # item_type then defaults to ROOM
    assert missing_columns(bookings, without_type[:4]) == ["User Type", "Status"]


@pytest.mark.parametrize(
    ("preset", "cells", "column"),
    [
        ("siso-loans", {"Transaction ID": ""}, "Transaction ID"),
        ("siso-bookings", {"Booking ID": ""}, "Booking ID"),
    ],
)
def test_an_empty_cell_of_the_event_id_template_refuses_the_row(
    preset: str, cells: dict[str, str], column: str
) -> None:
    """An empty id cell would give every such row the same id (``siso-loan-``), and the
    product would count them once: the row is refused instead, naming the column."""
    base = {
        "siso-loans": {"Date": "02/03/2026 10:05", "Action": "Collected", "User ID": "21004512",
                       "User Type": "Student", "Store": "AV Store", "Category": "Camera"},
        "siso-bookings": {"Created": "02/03/2026 18:42", "Status": "Confirmed",
                          "User ID": "21004512", "User Type": "Student", "Location": "Calvin",
                          "Resource Type": "Edit Suite"},
    }[preset]  # fmt: skip
    unit = adapt_row(0, {**base, **cells}, Compiled.of(load_mapping(preset)))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, "missing_field")
    assert unit.detail == f"event_id (column {column!r}) is empty"
