"""The compliance reports' pure parts: daily UKVI records, periods, runs of missed contact
points, SLC census periods, CSV."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.model.contacts import DayRecord, day_record, decode
from agents.model.reference import Enrolment, Period, Session
from agents.model.score import DayFacts
from schemas.report_settings import ReportSettings, parse_census_dates
from sinks.reports import (
    CensusError,
    SlcStudent,
    UkviStudent,
    period_of,
    periods,
    slc_rows,
    student_rows,
    to_csv,
    ukvi_rows,
)

ENROLMENT = Enrolment(frozenset({"MUS101", "MUS102"}), sponsored_visa=True, personal_tutor=None)
MON = date(2026, 11, 2)


def sessions(*modules: str) -> list[Session]:
    return [Session(f"s{n}", m, "B1", 9 + n, 10 + n) for n, m in enumerate(modules)]


def d(when: date) -> int:
    return when.toordinal()


# -- the daily record ----------------------------------------------------------------------------


def test_the_record_counts_timetabled_sessions_of_the_students_modules_only() -> None:
    facts = DayFacts(present=1, absent=1, vle=3)
    record = day_record(d(MON), facts, sessions("MUS101", "MUS102", "ART900"), ENROLMENT)
    assert record == DayRecord(s=2, p=1, a=1, n=3)
    assert (record.expected, record.attended, record.missed) == (2, 1, 1)


def test_a_timetabled_session_without_a_mark_is_a_missed_contact_point() -> None:
    record = day_record(d(MON), None, sessions("MUS101", "MUS102"), ENROLMENT)
    assert record is not None
    assert (record.expected, record.attended, record.missed) == (2, 0, 2)


def test_more_marks_than_timetabled_sessions_count_as_contact_points() -> None:
    record = day_record(d(MON), DayFacts(present=2, late=1), sessions("MUS101"), ENROLMENT)
    assert record is not None
    assert (record.points, record.attended, record.missed) == (3, 3, 0)


def test_excused_marks_and_exempt_days_are_not_expected() -> None:
    excused = day_record(d(MON), DayFacts(excused=1), sessions("MUS101", "MUS102"), ENROLMENT)
    assert excused is not None
    assert (excused.expected, excused.excused, excused.missed) == (1, 1, 1)
    leave = (Period("authorised_absence", d(MON) - 1, d(MON) + 3),)
    exempt = day_record(d(MON), None, sessions("MUS101", "MUS102"), ENROLMENT, leave)
    assert exempt is not None
    assert exempt.x == "authorised_absence"
    assert (exempt.expected, exempt.excused, exempt.missed) == (0, 2, 0)
    after = day_record(d(MON) + 4, None, sessions("MUS101"), ENROLMENT, leave)
    assert after is not None
    assert after.x == ""
    assert after.missed == 1


def test_a_data_gap_leaves_unmarked_points_unknown_not_missed() -> None:
    record = day_record(
        d(MON), DayFacts(present=1), sessions("MUS101", "MUS102"), ENROLMENT, gap=True
    )
    assert record is not None
    assert (record.expected, record.attended, record.missed, record.unknown) == (1, 1, 0, 1)


def test_a_day_with_nothing_is_not_recorded() -> None:
    assert day_record(d(MON), None, sessions("ART900"), ENROLMENT) is None
    assert day_record(d(MON), DayFacts(), [], ENROLMENT) is None
    assert day_record(d(MON), DayFacts(swipes=1), [], ENROLMENT) == DayRecord(n=1)


@given(
    st.builds(
        DayRecord,
        s=st.integers(0, 9),
        p=st.integers(0, 9),
        l=st.integers(0, 9),
        a=st.integers(0, 9),
        e=st.integers(0, 9),
        n=st.integers(0, 99),
        x=st.sampled_from(["", "placement"]),
        g=st.booleans(),
    )
)
def test_records_round_trip_and_their_counts_add_up(record: DayRecord) -> None:
    assert decode(record.encode()) == record
    assert record.expected + record.excused + record.unknown == record.points
    assert 0 <= record.attended <= record.expected
    assert record.missed >= 0


@pytest.mark.parametrize(
    "text", ["", "[]", "{}", '{"v":2,"s":1}', '{"v":1,"s":-1}', '{"v":1,"s":"x"}', "\xff"]
)
def test_a_record_this_release_cannot_read_is_skipped(text: str) -> None:
    assert decode(text) is None


# -- periods and runs ----------------------------------------------------------------------------


def test_months_are_clipped_to_the_range() -> None:
    assert periods(date(2026, 11, 20), date(2027, 1, 5)) == [
        (date(2026, 11, 20), date(2026, 11, 30)),
        (date(2026, 12, 1), date(2026, 12, 31)),
        (date(2027, 1, 1), date(2027, 1, 5)),
    ]


def test_weeks_run_monday_to_sunday() -> None:
    assert periods(date(2026, 11, 4), date(2026, 11, 17), "week") == [
        (date(2026, 11, 4), date(2026, 11, 8)),
        (date(2026, 11, 9), date(2026, 11, 15)),
        (date(2026, 11, 16), date(2026, 11, 17)),
    ]


@given(
    st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    st.integers(0, 800),
    st.sampled_from(["month", "week"]),
)
def test_periods_cover_the_range_once_in_order(first: date, length: int, kind: str) -> None:
    last = first + timedelta(days=length)
    found = periods(first, last, kind)  # type: ignore[arg-type]  # sampled from the literal
    assert found[0][0] == first
    assert found[-1][1] == last
    for (_, end), (start, _) in itertools.pairwise(found):
        assert start == end + timedelta(days=1)
    assert all(start <= end for start, end in found)


def missing(days: range, per_day: int = 2) -> dict[int, DayRecord]:
    return {day: DayRecord(s=per_day) for day in days}


def test_a_run_of_missed_points_carries_across_a_period_end() -> None:
    # attends on 27 Nov, then misses two points a day from 30 Nov to 3 Dec
    records = {d(date(2026, 11, 27)): DayRecord(s=2, p=2)}
    records |= missing(range(d(date(2026, 11, 30)), d(date(2026, 12, 3)) + 1))
    student = UkviStudent("p_x", "S1", records)
    november, december = student_rows(student, date(2026, 11, 1), date(2026, 12, 31))
    assert (november.expected, november.attended, november.missed) == (4, 2, 2)
    assert november.consecutive_missed_at_end == 2
    assert november.longest_consecutive_missed == 2
    assert (december.missed, december.consecutive_missed_at_end) == (6, 8)
    assert december.longest_consecutive_missed == 8
    assert december.attendance_percent == 0.0


def test_the_run_carried_into_the_range_comes_from_records_before_it() -> None:
    records = missing(range(d(date(2026, 10, 26)), d(date(2026, 10, 31)) + 1), per_day=1)
    records[d(date(2026, 11, 2))] = DayRecord(s=1)
    (row,) = student_rows(UkviStudent("p_x", "S1", records), date(2026, 11, 1), date(2026, 11, 30))
    assert row.missed == 1
    assert row.longest_consecutive_missed == 7


def test_attending_ends_a_run_and_that_days_misses_start_the_next() -> None:
    records = missing(range(d(MON), d(MON) + 3))  # 6 missed
    records[d(MON) + 3] = DayRecord(s=3, p=1, a=2)  # attended one, missed two
    records[d(MON) + 4] = DayRecord(s=1)  # missed one
    (row,) = student_rows(UkviStudent("p_x", "S1", records), MON, MON + timedelta(days=6))
    assert row.longest_consecutive_missed == 6
    assert row.consecutive_missed_at_end == 3


def test_exempt_and_unknown_days_neither_extend_nor_end_a_run() -> None:
    records = missing(range(d(MON), d(MON) + 2))  # 4 missed
    records[d(MON) + 2] = DayRecord(s=2, x="authorised_absence")
    records[d(MON) + 3] = DayRecord(s=2, g=True)
    records[d(MON) + 4] = DayRecord(s=1)
    (row,) = student_rows(UkviStudent("p_x", "S1", records), MON, MON + timedelta(days=6))
    assert (row.expected, row.missed, row.excused, row.unknown) == (5, 5, 2, 2)
    assert row.consecutive_missed_at_end == 5
    assert row.attendance_percent == 0.0


def test_a_period_without_contact_points_has_no_percentage() -> None:
    (row,) = student_rows(
        UkviStudent("p_x", "S1", {d(MON): DayRecord(n=4)}), MON, MON + timedelta(days=6), "week"
    )
    assert (row.expected, row.attendance_percent, row.engaged_days) == (0, None, 1)


def test_the_report_lists_students_with_records_by_student_id() -> None:
    students = [
        UkviStudent("p_b", "S2", {d(MON): DayRecord(s=1, p=1)}),
        UkviStudent("p_a", None, {d(MON): DayRecord(s=1)}),
        UkviStudent("p_c", "S1", {d(MON): DayRecord(s=1)}),
        UkviStudent("p_later", "S0", {d(MON) + 60: DayRecord(s=1)}),
    ]
    rows = ukvi_rows(students, MON, MON + timedelta(days=6), "week")
    assert [(r.student_id, r.pseudonym) for r in rows] == [
        ("S1", "p_c"),
        ("S2", "p_b"),
        (None, "p_a"),
    ]


# -- SLC census periods --------------------------------------------------------------------------

POINTS = (date(2026, 10, 15), date(2027, 1, 20), date(2027, 4, 25))


def test_a_census_period_starts_the_day_after_the_previous_point() -> None:
    assert period_of(POINTS[1], POINTS, None) == (date(2026, 10, 16), date(2027, 1, 20))
    assert period_of(POINTS[0], POINTS, date(2026, 9, 21)) == (date(2026, 9, 21), POINTS[0])
    assert period_of(POINTS[0], POINTS, None) == (date(2026, 8, 1), POINTS[0])
    with pytest.raises(CensusError, match="not a census point"):
        period_of(date(2026, 12, 1), POINTS, None)


def slc(student: SlcStudent, census: date = POINTS[1]) -> list[str]:
    rows = slc_rows([student], census, POINTS, today=date(2027, 1, 25), hold_days=60)
    return [r.pseudonym for r in rows]


def student(*engaged: date, first: date | None = date(2026, 9, 1)) -> SlcStudent:
    return SlcStudent(
        "p_s",
        "S1",
        term_start=None,
        first_day=d(first) if first else None,
        engaged_days=frozenset(d(x) for x in engaged),
    )


def test_census_boundaries_are_inclusive_of_the_census_and_exclusive_of_the_previous() -> None:
    assert slc(student(date(2026, 10, 15))) == ["p_s"]  # on the previous point: not this period
    assert slc(student(date(2026, 10, 16))) == []
    assert slc(student(date(2027, 1, 20))) == []
    assert slc(student(date(2027, 1, 21))) == ["p_s"]  # after the census


def test_a_listed_row_says_what_the_held_data_covers() -> None:
    (row,) = slc_rows(
        [student(date(2026, 10, 1))], POINTS[1], POINTS, today=date(2027, 1, 25), hold_days=60
    )
    assert row.last_engaged == date(2026, 10, 1)
    assert row.complete
    gone = slc_rows([student(first=None)], POINTS[1], POINTS, today=date(2027, 1, 25), hold_days=60)
    assert gone[0].data_held_from == date(2026, 11, 26)
    assert not gone[0].complete


def test_an_exemption_over_the_period_is_shown() -> None:
    on_leave = SlcStudent(
        "p_s",
        "S1",
        None,
        None,
        exemptions=(Period("break_in_learning", d(date(2026, 12, 1)), None),),
    )
    (row,) = slc_rows([on_leave], POINTS[1], POINTS, today=date(2027, 1, 25), hold_days=60)
    assert row.exemption == "break_in_learning"


def test_census_dates_are_read_from_a_comma_separated_list() -> None:
    assert parse_census_dates(" 2027-01-20,2026-10-15,,2027-01-20 ") == POINTS[:2]
    with pytest.raises(ValueError, match="not a date"):
        parse_census_dates("2026-13-01")
    assert ReportSettings().slc_census_dates == ()
    assert ReportSettings().ukvi_retention_days >= 365


# -- CSV -------------------------------------------------------------------------------------------


def test_csv_has_a_header_and_defuses_formulas() -> None:
    rows = ukvi_rows(
        [UkviStudent("p_a", "=cmd()", {d(MON): DayRecord(s=1, p=1)})], MON, MON, "week"
    )
    columns = list(type(rows[0]).model_fields)
    text = to_csv(rows, columns)
    header, line = list(csv.reader(io.StringIO(text)))
    assert header == columns
    assert line[0] == "'=cmd()"
    assert line[columns.index("attendance_percent")] == "100.0"
    assert to_csv([], columns).strip() == ",".join(columns)


def test_the_routes_read_the_report_fields_of_any_settings_object() -> None:
    from types import SimpleNamespace

    from stream.api.routes_reports import report_settings

    given = SimpleNamespace(slc_census_dates=POINTS, ukvi_period="week", key_prefix="es")
    found = report_settings(given)
    assert (found.slc_census_dates, found.ukvi_period) == (POINTS, "week")
    assert (
        report_settings(SimpleNamespace()).ukvi_retention_days
        == ReportSettings().ukvi_retention_days
    )
    assert report_settings(found) is found
