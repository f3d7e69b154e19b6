"""The Quercus status-change preset (``schemas/presets/quercus-status-changes.toml``) on a report
written from Quercus documentation (``tests/fixtures/sources/quercus/SOURCES.md``): an
interruption becomes a ``break_in_learning`` exemption from its status date (to its end date,
when it has one), a withdrawal an open-ended ``withdrawn`` exemption; every other status is
ignored; one outcome per row, through the import path itself (``prepare_export``), so a period
that ends before it starts is refused by the exemption model as the import refuses it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from agents.adapters.mapping import Compiled, adapt_row
from agents.adapters.units import Outcome, content_id
from schemas.mappings import load_mapping
from schemas.reference import Exemption, ExemptionKind
from stream.ingest.imports import Prepared, prepare_export

REPORT = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "quercus"
PRESET = "quercus-status-changes"


def imported(data: bytes) -> list[Prepared]:
    mapping = load_mapping(PRESET)
    return [p for batch in prepare_export(io.BytesIO(data), mapping, None, 64_000) for p in batch]


def record(prepared: Prepared) -> dict[str, Any]:
    """The exemption an accepted row publishes (its key is the exemption id)."""
    assert prepared.reference is not None, prepared.unit
    key, value = prepared.reference
    out: dict[str, Any] = json.loads(value)
    assert key == out["exemption_id"]
    return out


OUTCOMES = [
    (2, "accepted", None),  # Interrupted, open-ended
    (3, "accepted", None),  # Interrupted, ended
    (4, "accepted", None),  # SUSPENDED AFTER ENROLMENT on the day the clocks go back
    (5, "accepted", None),  # Withdrawn
    (6, "accepted", None),  # WITHDRAWN AFTER ENROLMENT, ISO date
    (7, "ignored", "not_engagement"),  # Registered
    (8, "ignored", "not_engagement"),  # Recommended
    (9, "ignored", "not_engagement"),  # DORMANT: not a status the preset maps
    (10, "refused", "missing_field"),  # no ID Number
    (11, "refused", "invalid_value"),  # 31/09/2026
    (12, "refused", "invalid_value"),  # ends before it starts
    (13, "refused", "missing_field"),  # no Status Date
    (14, "accepted", None),  # Withdrawn on the day the clocks go forward
]


def test_every_row_has_its_one_outcome_in_order_with_its_reason() -> None:
    rows = imported((REPORT / "status-changes.csv").read_bytes())
    assert [(p.line, str(p.unit.outcome), p.unit.reason) for p in rows] == OUTCOMES


def test_interruptions_and_withdrawals_become_the_exemptions_the_issue_asks_for() -> None:
    rows = {p.line: p for p in imported((REPORT / "status-changes.csv").read_bytes())}
    expected = {
        2: ("21004512", "break_in_learning", "2027-01-12", None),
        3: ("21007781", "break_in_learning", "2026-11-02", "2027-02-01"),
        4: ("21002291", "break_in_learning", "2026-10-25", None),
        5: ("21003310", "withdrawn", "2026-11-20", None),
        6: ("21005550", "withdrawn", "2026-12-01", None),
        14: ("21007336", "withdrawn", "2026-03-29", None),
    }
    for line, (student, kind, starts, ends) in expected.items():
        got = record(rows[line])
        assert (got["student_id"], got["kind"], got["starts_on"], got["ends_on"]) == (
            student, kind, starts, ends,
        ), line  # fmt: skip
        assert student not in got["exemption_id"]  # a hash, not the student number
        Exemption.model_validate(got)
    assert {ExemptionKind(record(rows[n])["kind"]) for n in expected} == {
        ExemptionKind.BREAK_IN_LEARNING,
        ExemptionKind.WITHDRAWN,
    }


def test_a_refusal_names_the_field_never_the_value() -> None:
    rows = {p.line: p for p in imported((REPORT / "status-changes.csv").read_bytes())}
    assert "the identity column 'ID Number' is empty" in rows[10].unit.detail
    assert rows[11].unit.detail.startswith("starts_on: the date matches none")
    assert "31/09" not in rows[11].unit.detail
    assert "ends_on is before starts_on" in rows[12].unit.detail
    assert "(column 'Status Date') is empty" in rows[13].unit.detail


CELLS = {
    "Status": "Interrupted", "ID Number": "21004512", "First Name": "Amira",
    "Last Name": "Khan", "Course Code": "BAMP-PERF", "Status Date": "12/01/2027",
    "Status End Date": "",
}  # fmt: skip


def event_of(cells: dict[str, str]) -> dict[str, Any]:
    unit = adapt_row(0, {**CELLS, **cells}, Compiled.of(load_mapping(PRESET)))
    assert unit.outcome is Outcome.ACCEPTED and unit.event is not None, unit
    return dict(unit.event)


def test_a_re_exported_interruption_with_its_end_replaces_the_open_one() -> None:
    """The id is of student, status and start: the row re-exported once the student is back
    (its end date filled in) is the same exemption, which the compacted topic replaces."""
    open_ended = event_of({})
    ended = event_of({"Status End Date": "15/03/2027"})
    assert open_ended["exemption_id"] == ended["exemption_id"]
    assert open_ended["exemption_id"] == content_id(PRESET, "21004512|Interrupted|12/01/2027")
    assert "ends_on" not in open_ended and ended["ends_on"] == "2027-03-15"
    assert event_of({"Status Date": "13/01/2027"})["exemption_id"] != open_ended["exemption_id"]
    assert event_of({"ID Number": "21004513"})["exemption_id"] != open_ended["exemption_id"]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("Interrupted", "break_in_learning"),
        ("Interruption of Studies", "break_in_learning"),
        ("Suspended", "break_in_learning"),
        ("SUSPENDED AFTER ENROLMENT", "break_in_learning"),
        ("Withdrawn", "withdrawn"),
        ("WITHDRAWN AFTER ENROLMENT", "withdrawn"),
    ],
)
def test_each_status_word_gives_its_kind(status: str, kind: str) -> None:
    assert event_of({"Status": status})["kind"] == kind


def test_a_report_without_the_status_columns_is_refused_whole_naming_them() -> None:
    from stream.publisher.report import InputFileError

    data = b"Status,ID Number,Status Date\nWithdrawn,21003310,20/11/2026\n"
    with pytest.raises(InputFileError, match="'Status End Date'"):
        imported(data)


def test_a_semicolon_report_in_windows_1252_reads_the_same() -> None:
    text = "Status;ID Number;First Name;Last Name;Course Code;Status Date;Status End Date\r\n"
    text += "Withdrawn;21003310;Siân;Ó Dálaigh;BAMP-PERF;20-Nov-2026;\r\n"
    (row,) = imported(text.encode("cp1252"))
    got = record(row)
    assert (got["kind"], got["starts_on"], got.get("ends_on")) == ("withdrawn", "2026-11-20", None)
