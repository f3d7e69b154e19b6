"""The declarative mapping engine: loading with errors that name file, line and field; rows to
one outcome each, never a crash; encodings, delimiters, quoted line breaks; clock changes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.adapters.mapping import Compiled, adapt_row, missing_columns
from agents.adapters.mapping_read import encoding_of, read_rows
from agents.adapters.units import Outcome
from schemas.common import Reason
from schemas.mappings import MappingError, load_mapping, parse_mapping
from schemas.sources import SOURCES
from stream.publisher.checks import Checked, check_event

REGISTER = """\
schema_version = 1
name = "test-register"
description = "A register export, as a vendor's reporting tool writes one"
produces = "attendance"

[input]
header_row = 2

[time]
zone = "Europe/London"
formats = ["%d/%m/%Y %H:%M", "%Y-%m-%dT%H:%M:%S%z"]
ambiguous = "earlier"
nonexistent = "refuse"

[identity]
column = "Student ID"

[fields]
event_id = { template = "reg-{Event ID}-{Student ID}" }
occurred_at = { column = "Start", time = true }
session_id = "Event ID"
module = "Module Code"
expected_start = { column = "Start", time = true }
expected_end = { column = "End", time = true }
status = { column = "Mark", map = "marks" }
capture_method = { value = "register" }

[maps.marks]
"P" = "present"
"L" = "late"
"A" = "absent"
"AA" = "excused"

[[ignore]]
reason = "staff_action"
when = { column = "Card Type", in = ["Staff", "Visitor"] }
"""
HEADER = "Event ID,Student ID,Start,End,Module Code,Mark,Card Type\n"


def mapping(text: str = REGISTER) -> Any:
    return parse_mapping(text, "test.toml")


def outcomes(csv_text: str, text: str = REGISTER) -> list[tuple[int, str, Any]]:
    """(line, outcome, reason or event) of every row of an export."""
    m = mapping(text)
    header, rows = read_rows(io.StringIO(csv_text, newline=""), m)
    assert missing_columns(m, header) == []
    compiled = Compiled.of(m)
    out = []
    for n, row in enumerate(rows):
        if row.cells is None:
            out.append((row.line, "unreadable", row.problem))
            continue
        unit = adapt_row(n, row.cells, compiled)
        out.append((row.line, str(unit.outcome), unit.event or unit.reason))
    return out


def test_rows_become_marks_staff_cards_are_ignored_and_bad_rows_refused_alone() -> None:
    export = (
        "Register marks, week 2\n"
        + HEADER
        + (
            "E1,S1,05/10/2026 09:00,05/10/2026 10:00,CS101,P,Student\n"
            "E1,S2,05/10/2026 09:00,05/10/2026 10:00,CS101,X,Student\n"
            "E1,S3,05/10/2026 09:00,05/10/2026 10:00,CS101,A,Staff\n"
            "E1,,05/10/2026 09:00,05/10/2026 10:00,CS101,A,Student\n"
            "E1,S5,yesterday,05/10/2026 10:00,CS101,A,Student\n"
            "E1,S6,05/10/2026 09:00,05/10/2026 10:00,CS101,L\n"
        )
    )
    got = outcomes(export)
    assert [(line, outcome) for line, outcome, _ in got] == [
        (3, "accepted"), (4, "refused"), (5, "ignored"), (6, "refused"), (7, "refused"),
        (8, "unreadable"),
    ]  # fmt: skip
    event = got[0][2]
    assert event["status"] == "present" and event["event_id"] == "reg-E1-S1"
    assert event["occurred_at"] == "2026-10-05T08:00:00+00:00"  # 09:00 BST
    assert got[1][2] == "invalid_value" and got[3][2] == "missing_field"
    SOURCES["attendance"].model.model_validate({**event, "student_id": "S1"})


def test_the_hour_that_repeats_is_read_as_the_earlier_instant_and_the_skipped_hour_refused() -> (
    None
):
    export = (
        "title\n"
        + HEADER
        + (
            "E2,S1,25/10/2026 01:30,25/10/2026 03:00,CS101,P,Student\n"  # clocks back at 02:00
            "E3,S1,29/03/2026 01:30,29/03/2026 03:00,CS101,P,Student\n"  # forward at 01:00
        )
    )
    (_, outcome, event), (_, skipped, reason) = outcomes(export)
    assert outcome == "accepted" and event["occurred_at"] == "2026-10-25T00:30:00+00:00"
    assert (skipped, reason) == ("refused", "invalid_value")
    later = REGISTER.replace('ambiguous = "earlier"', 'ambiguous = "later"').replace(
        'nonexistent = "refuse"', 'nonexistent = "shift_forward"'
    )
    (_, _, event), (_, shifted, moved) = outcomes(export, later)
    assert event["occurred_at"] == "2026-10-25T01:30:00+00:00"  # 01:30 GMT, the second one
    assert shifted == "accepted" and moved["occurred_at"] == "2026-03-29T01:30:00+00:00"


def test_encodings_delimiters_and_quoted_line_breaks() -> None:
    cp1252 = ("É;x\n" + HEADER.replace(",", ";") + "E1;S1;05/10/2026 09:00;05/10/2026 10:00;"
              "CS101;P;Zoë\n").encode("cp1252")  # fmt: skip
    assert encoding_of(cp1252, "auto") == "cp1252"
    assert encoding_of(b"\xef\xbb\xbfa,b\n", "auto") == "utf-8-sig"
    assert encoding_of("Zoë,1\n".encode(), "auto") == "utf-8"
    (row,) = outcomes(cp1252.decode("cp1252"))
    assert row[1] == "accepted"
    quoted = (
        "t\n"
        + HEADER
        + (
            'E1,S1,05/10/2026 09:00,05/10/2026 10:00,"CS\n101",P,Student\n'
            "E2,S1,05/10/2026 11:00,05/10/2026 12:00,CS101,P,Student\n"
        )
    )
    (first, second) = outcomes(quoted)
    assert first[0] == 3 and second[0] == 5  # the second row starts after the quoted break


def test_a_header_without_a_required_column_is_named() -> None:
    m = mapping()
    header, _ = read_rows(io.StringIO("t\nEvent ID,Student ID,Start\n", newline=""), m)
    # An ignore rule's column is required too: without it, staff cards would count.
    assert missing_columns(m, header) == ["Module Code", "End", "Mark", "Card Type"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (('map = "marks"', 'map = "codes"'), "fields.status: map 'codes' is not defined"),
        (('session_id = "Event ID"', 'room = "Event ID"'), "line 21, fields.room: not a field"),
        (('zone = "Europe/London"', 'zone = "Europe/Lundun"'), "line 10, time.zone"),
        (('in = ["Staff", "Visitor"]', 'matches = "(["'), "ignore.0.when"),
        (('produces = "attendance"', 'produces = "gym"'), "produces"),
    ],
)  # fmt: skip
def test_a_bad_mapping_file_names_the_file_line_and_field(
    change: tuple[str, str], named: str
) -> None:
    with pytest.raises(MappingError) as refused:
        parse_mapping(REGISTER.replace(*change), "site/register.toml")
    message = str(refused.value)
    assert message.startswith("site/register.toml:") and named in message, message


def test_presets_are_found_by_name_and_an_unknown_name_lists_them(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="no mapping called 'nope'"):
        load_mapping("nope")
    own = tmp_path / "own.toml"
    own.write_text(REGISTER, encoding="utf-8")
    assert load_mapping(str(own)).name == "test-register"


cell = st.one_of(st.text(max_size=12), st.sampled_from(["P", "L", "25/10/2026 01:30", ""]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(cell, min_size=0, max_size=9), max_size=12))
def test_any_rows_give_one_outcome_each_and_never_raise(rows: list[list[str]]) -> None:
    compiled = Compiled.of(mapping())
    columns = HEADER.strip().split(",")
    for n, cells in enumerate(rows):
        unit = adapt_row(n, dict(zip(columns, cells, strict=False)), compiled)
        assert unit.index == n and unit.outcome in set(Outcome)
        if unit.outcome is Outcome.ACCEPTED:  # then checked as every event is, never raising
            event = {**(unit.event or {}), "student_id": unit.actor.as_is if unit.actor else ""}
            checked = check_event("attendance", event)
            assert isinstance(checked, Checked) or checked[0] in set(Reason)
