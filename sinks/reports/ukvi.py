"""The UKVI attendance report: per sponsored student and reporting period, the contact points
expected, attended and missed, and the runs of consecutive missed ones. Pure.

It reads the daily records the detector keeps for sponsored students
(:mod:`agents.model.contacts`). A run of missed contact points carries across days and across
period ends; exempt days and points a data gap leaves unknown neither extend nor end it. The
register counts of a day are known but not which session each mark belongs to, so a day on
which the student attended anything ends the run before it, and that day's missed points
start the next one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict

from agents.model.contacts import DayRecord
from schemas.report_settings import Period


@dataclass(frozen=True)
class UkviStudent:
    """One sponsored student's records, by day ordinal."""

    pseudonym: str
    student_id: str | None
    records: Mapping[int, DayRecord] = field(default_factory=dict)


class UkviRow(BaseModel):
    """One student in one reporting period."""

    model_config = ConfigDict(frozen=True)

    student_id: str | None  # None: the record holds no student id (see docs/reports.md)
    pseudonym: str
    period_start: date
    period_end: date
    expected: int
    attended: int
    missed: int
    excused: int
    unknown: int
    attendance_percent: float | None
    engaged_days: int
    consecutive_missed_at_end: int
    longest_consecutive_missed: int


def periods(first: date, last: date, kind: Period = "month") -> list[tuple[date, date]]:
    """The reporting periods covering [first, last], each clipped to it, in order."""
    out: list[tuple[date, date]] = []
    start = first
    while start <= last:
        if kind == "week":
            end = start + timedelta(days=6 - start.weekday())
        else:
            following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
            end = following - timedelta(days=1)
        end = min(end, last)
        out.append((start, end))
        start = end + timedelta(days=1)
    return out


def _run_after(run: int, record: DayRecord) -> int:
    """The run of consecutive missed points after a day (see the module's note)."""
    if record.attended:
        return record.missed
    return run + record.missed


def student_rows(
    student: UkviStudent, first: date, last: date, kind: Period = "month"
) -> list[UkviRow]:
    """One row per period of [first, last]; the run carried into ``first`` comes from the
    student's records before it."""
    days = sorted(student.records)
    run = 0
    for day in (d for d in days if d < first.toordinal()):
        run = _run_after(run, student.records[day])
    rows = []
    for start, end in periods(first, last, kind):
        expected = attended = missed = excused = unknown = engaged = longest = 0
        for day in range(start.toordinal(), end.toordinal() + 1):
            record = student.records.get(day)
            if record is None:
                continue
            expected += record.expected
            attended += record.attended
            missed += record.missed
            excused += record.excused
            unknown += record.unknown
            engaged += bool(record.attended or record.n)
            run = _run_after(run, record)
            if record.missed:
                longest = max(longest, run)
        rows.append(
            UkviRow(
                student_id=student.student_id,
                pseudonym=student.pseudonym,
                period_start=start,
                period_end=end,
                expected=expected,
                attended=attended,
                missed=missed,
                excused=excused,
                unknown=unknown,
                attendance_percent=round(100 * attended / expected, 1) if expected else None,
                engaged_days=engaged,
                consecutive_missed_at_end=run,
                longest_consecutive_missed=longest,
            )
        )
    return rows


def ukvi_rows(
    students: Iterable[UkviStudent], first: date, last: date, kind: Period = "month"
) -> list[UkviRow]:
    """The report: every student with a record on or before ``last``, by student id."""
    held = [s for s in students if any(d <= last.toordinal() for d in s.records)]
    held.sort(key=lambda s: (s.student_id is None, s.student_id or "", s.pseudonym))
    return [row for s in held for row in student_rows(s, first, last, kind)]


def listed(students: Sequence[UkviStudent], last: date) -> list[str]:
    """The pseudonyms the report lists (for the audit log)."""
    return sorted(s.pseudonym for s in students if any(d <= last.toordinal() for d in s.records))
