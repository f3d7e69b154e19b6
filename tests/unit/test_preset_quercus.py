"""The Quercus preset (``schemas/presets/quercus-students.toml``) on student-records extracts
written from Quercus documentation (``tests/fixtures/sources/quercus/SOURCES.md``): one outcome
per row, in order, with its reason; every accepted row a valid roster entry with its modules
split from one cell and its term start read as a calendar date (the 2026 clock-change days stay
those dates, in every date format of the fixtures); a student without a personal tutor yet is
on the roster without one; the student id is the one SISO (and Canvas, CELCAT) carry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from agents.adapters.mapping import Compiled, adapt_row, missing_columns
from agents.adapters.mapping_read import open_export
from agents.adapters.units import Outcome, Unit
from schemas.common import Reason
from schemas.mappings import PRESETS, Mapping, load_mapping, parse_mapping
from schemas.reference import REFERENCE_MODELS, RosterEntry

SOURCES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
FIXTURES = SOURCES_DIR / "quercus"


@dataclass(frozen=True)
class Export:
    """An export as the import reads it: its encoding, header, and each row's line and unit."""

    encoding: str
    header: list[str]
    rows: list[tuple[int, Unit]]


def read_export(path: Path, mapping: Mapping) -> Export:
    """The file through the mapping, as ``stream/ingest/imports.py`` reads one."""
    compiled = Compiled.of(mapping)
    with path.open("rb") as f:
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


ROW = {
    "Status": "Registered", "ID Number": "21004512", "First Name": "Amira", "Last Name": "Khan",
    "Course Code": "BAMP-PERF", "Course Description": "BA (Hons) Music Performance",
    "Course Instance Course Year": "1", "Course Instance Start Date": "21/09/2026",
    "Course Instance End Date": "18/06/2027", "Personal Tutor": "T0412", "Sponsored Visa": "N",
    "Modules": "MP4001;MP4002",
}  # fmt: skip


def one(cells: dict[str, str]) -> Unit:
    """One row given as cells (the others as line 2 of students.csv) through the preset."""
    return adapt_row(0, {**ROW, **cells}, Compiled.of(load_mapping("quercus-students")))


def outcomes(export: Export) -> list[tuple[int, str, Any]]:
    """(line, outcome, the record with its student id | the reason) of every row."""
    out: list[tuple[int, str, Any]] = []
    for line, unit in export.rows:
        if unit.outcome is Outcome.ACCEPTED:
            assert unit.actor is not None and unit.source == "roster"
            out.append((line, "accepted", {**(unit.event or {}), "student_id": unit.actor.as_is}))
        else:
            out.append((line, str(unit.outcome), unit.reason))
    return out


def student(  # one argument per column the preset reads
    line: int, who: str, course: str, tutor: str | None, visa: str, starts: str, modules: str
) -> Any:
    record: dict[str, Any] = {"course": course}
    if tutor is not None:  # an empty tutor cell leaves the field out
        record["personal_tutor"] = tutor
    record["sponsored_visa"] = visa
    record["modules"] = modules.split() if modules else []
    record["term_starts_on"] = starts  # a calendar date, YYYY-MM-DD
    record["student_id"] = who
    return (line, "accepted", record)


STUDENTS = [
    student(2, "21004512", "BAMP-PERF", "T0412", "false", "2026-09-21", "MP4001 MP4002 MP4003"),
    student(3, "21007781", "BAMP-PROD", "T0388", "true", "2026-09-21", "MP5010 MP5012"),
    student(4, "21002291", "BAMP-SONG", "T0412", "true", "2026-09-21", "MP6001 MP6004"),
    (5, "ignored", "not_engagement"),  # Withdrawn: erasure is later work
    (6, "ignored", "not_engagement"),  # Interrupted: an exemption is later work
    (7, "refused", "missing_field"),  # no ID Number
    (8, "refused", "invalid_value"),  # 11 cells where the header has 12
    # a course description with a line break (lines 9-10); starts on 25 October 2026
    student(9, "21009034", "MMUS-PERF", "T0510", "false", "2026-10-25", "MP7001"),
    # starts on 29 March 2026; an empty visa cell is read as N
    student(11, "21006120", "CERT-MPW", "T0510", "false", "2026-03-29", "MP1001"),
    (12, "refused", "invalid_value"),  # visa code U is neither Y nor N
    # No personal tutor yet: on the roster without one (the field is optional in RosterEntry)
    student(13, "21006122", "BAMP-PROD", None, "false", "2026-09-21", "MP4010"),
    (14, "refused", "invalid_value"),  # 31 September
]  # fmt: skip


def test_the_preset_loads_by_name_and_reads_the_columns_of_a_quercus_report() -> None:
    preset = load_mapping("quercus-students")
    assert (preset.name, preset.produces, preset.is_reference) == (
        "quercus-students", "roster", True,
    )  # fmt: skip
    assert preset.identity is not None
    assert (preset.identity.column, preset.identity.policy) == ("ID Number", "as-is")
    # Status is read by the ignore rule: a report without it would put withdrawn students on
    # the roster, so it is required. Sponsored Visa and Modules have defaults.
    assert set(preset.required_columns) == {
        "ID Number", "Course Code", "Personal Tutor", "Course Instance Start Date", "Status",
    }  # fmt: skip
    header = ["ID Number", "Course Code", "Personal Tutor", "Course Instance Start Date"]
    assert missing_columns(preset, header) == ["Status"]
    assert missing_columns(preset, [*header, "Status"]) == []
    modules = preset.fields["modules"]
    assert (modules.column, modules.split, modules.default) == ("Modules", ";", "")
    assert preset.fields["term_starts_on"].date and not preset.fields["term_starts_on"].time


def test_an_extract_gives_one_outcome_per_row_in_order_with_its_reason() -> None:
    export = read_export(FIXTURES / "students.csv", load_mapping("quercus-students"))
    assert export.encoding == "utf-8"
    assert [unit.index for _, unit in export.rows] == list(range(len(STUDENTS)))
    assert outcomes(export) == STUDENTS
    details = {line: unit.detail for line, unit in export.rows}
    assert details[5] == "the 'Status' column matches an ignore rule of quercus-students"
    assert details[7] == "the identity column 'ID Number' is empty"
    assert details[8] == "the row has 11 cells where the header has 12"
    assert details[12].startswith("sponsored_visa: the code in column 'Sponsored Visa'")
    assert details[14] == "term_starts_on: the date matches none of the mapping's formats"
    assert "31/09" not in details[14] and "21006123" not in details[14]  # never the value


def test_a_semicolon_extract_with_a_byte_order_mark() -> None:
    export = read_export(FIXTURES / "students-semicolon.csv", load_mapping("quercus-students"))
    assert export.encoding == "utf-8-sig" and export.header[0] == "Status"
    assert outcomes(export) == [
        # ISO dates; the quoted Modules cell holds the file's delimiter
        student(2, "21008001", "BAMP-BUS", "T0601", "false", "2026-09-21", "MB4001 MB4002"),
        (3, "ignored", "not_engagement"),
    ]


def test_a_windows_1252_extract_with_accented_names_and_oracle_style_dates() -> None:
    export = read_export(FIXTURES / "students-cp1252.csv", load_mapping("quercus-students"))
    assert export.encoding == "cp1252"
    assert outcomes(export) == [
        student(2, "21005530", "BAMP-SONG", "T0412", "true", "2026-09-21", "MP4020 MP4021"),
        student(3, "21005531", "BAMP-PERF", "T0388", "false", "2026-09-21", "MP4001"),
    ]


@pytest.mark.parametrize("name", ["students.csv", "students-semicolon.csv", "students-cp1252.csv"])
def test_every_accepted_row_is_a_valid_roster_entry(name: str) -> None:
    model = REFERENCE_MODELS["roster"]
    records = [record for _, outcome, record in outcomes(read_export(FIXTURES / name,
               load_mapping("quercus-students"))) if outcome == "accepted"]  # fmt: skip
    assert records
    for record in records:
        entry = model.model_validate(record)
        assert isinstance(entry, RosterEntry)
        assert entry.student_id == record["student_id"]
        assert entry.sponsored_visa is (record["sponsored_visa"] == "true")
        assert entry.term_starts_on == date.fromisoformat(record["term_starts_on"])
        assert entry.modules == tuple(record["modules"]) and entry.modules
        assert entry.personal_tutor == record.get("personal_tutor")


def test_dates_on_the_2026_clock_change_days_stay_those_dates_whatever_the_zone() -> None:
    """Dates are calendar dates (``date = true``): no time of day and no zone, so 29 March and
    25 October 2026 (the days the clocks change) stay those days, even with the mapping's
    ``[time] zone`` set to Europe/London."""
    preset = load_mapping("quercus-students")
    accepted = {line: RosterEntry.model_validate(record) for line, outcome, record
                in outcomes(read_export(FIXTURES / "students.csv", preset))
                if outcome == "accepted"}  # fmt: skip
    assert accepted[11].term_starts_on == date(2026, 3, 29)
    assert accepted[9].term_starts_on == date(2026, 10, 25)
    text = (PRESETS / "quercus-students.toml").read_text(encoding="utf-8")
    london = parse_mapping(
        text.replace("[time]\n", '[time]\nzone = "Europe/London"\n', 1), "london.toml"
    )
    assert london.time.zone == "Europe/London"
    assert outcomes(read_export(FIXTURES / "students.csv", london)) == STUDENTS


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("21/09/2026", "2026-09-21"),  # day first, as Quercus prints dates
        ("2026-09-21", "2026-09-21"),  # ISO
        ("21-SEP-2026", "2026-09-21"),  # Oracle's style; the month in any case
        ("21-Sep-2026", "2026-09-21"),
        ("21-Sep-26", "2026-09-21"),  # two-digit year
        ("01/02/2027", "2027-02-01"),  # 1 February, never 2 January
        ("29/03/2026", "2026-03-29"),  # the clocks go forward that night
        ("25/10/2026", "2026-10-25"),  # the clocks go back that night
        ("31/09/2026", None),  # no such day
        ("09/21/2026", None),  # month first is not read
        ("21/09/2026 00:00", None),  # a time of day is not a date
        ("Sept 21 2026", None),
    ],
)
def test_a_start_date_in_each_format_is_that_calendar_date(cell: str, expected: str | None) -> None:
    unit = one({"Course Instance Start Date": cell})
    if expected is None:
        assert (unit.outcome, unit.reason) == (Outcome.REFUSED, "invalid_value")
        assert cell not in unit.detail and unit.detail.startswith("term_starts_on: ")
        return
    assert unit.outcome is Outcome.ACCEPTED and unit.event is not None
    assert unit.event["term_starts_on"] == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("MP4001;MP4002;MP4003", ["MP4001", "MP4002", "MP4003"]),
        ("MP4001", ["MP4001"]),
        (" MP4001 ; MP4002 ", ["MP4001", "MP4002"]),  # spaces around a code are dropped
        ("MP4001;;MP4002;", ["MP4001", "MP4002"]),  # empty parts are dropped
        ("", []),  # no modules: an empty list, not a refused row
        (";", []),
    ],
)
def test_the_modules_cell_is_split_into_the_enrolled_modules(
    cell: str, expected: list[str]
) -> None:
    unit = one({"Modules": cell})
    assert unit.outcome is Outcome.ACCEPTED and unit.event is not None and unit.actor is not None
    assert unit.event["modules"] == expected
    entry = RosterEntry.model_validate({**unit.event, "student_id": unit.actor.as_is})
    assert entry.modules == tuple(expected)


def test_a_report_without_a_modules_column_gives_no_modules() -> None:
    cells = {k: v for k, v in ROW.items() if k != "Modules"}
    unit = adapt_row(0, cells, Compiled.of(load_mapping("quercus-students")))
    assert unit.outcome is Outcome.ACCEPTED and unit.event is not None
    assert unit.event["modules"] == []


@pytest.mark.parametrize("column", ["Personal Tutor", "Course Code", "Course Instance Start Date"])
def test_an_empty_optional_field_is_left_out_and_the_student_kept(column: str) -> None:
    field = {
        "Personal Tutor": "personal_tutor", "Course Code": "course",
        "Course Instance Start Date": "term_starts_on",
    }[column]  # fmt: skip
    unit = one({column: ""})
    assert unit.outcome is Outcome.ACCEPTED and unit.event is not None and unit.actor is not None
    assert field not in unit.event
    entry = RosterEntry.model_validate({**unit.event, "student_id": unit.actor.as_is})
    assert getattr(entry, field) is None


def test_an_empty_identity_cell_refuses_the_row_naming_the_column() -> None:
    unit = one({"ID Number": "", "Course Instance Start Date": "31/09/2026"})
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, "missing_field")
    assert unit.detail == "the identity column 'ID Number' is empty"  # before the date


def test_the_student_id_is_the_one_siso_carries() -> None:
    """The roster's id is the ID Number cell as it is; SISO's borrowers (and Canvas's SIS ids,
    CELCAT's student ids) must be the same ids for a student's events to meet their roster."""
    roster = {record["student_id"] for _, outcome, record in outcomes(read_export(
              FIXTURES / "students.csv", load_mapping("quercus-students")))
              if outcome == "accepted"}  # fmt: skip
    siso = read_export(SOURCES_DIR / "siso" / "loans.csv", load_mapping("siso-loans"))
    borrowers = {unit.actor.as_is for _, unit in siso.rows if unit.actor is not None}
    assert borrowers and borrowers <= roster
