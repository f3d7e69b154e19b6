"""The SLC attendance-confirmation report: per census point, the students with no attended
contact point and no engagement event since the previous census point. Pure.

It reads the engagement state, which holds every day of a student's activity while they are
active and expires ``ENGAGEMENT_STATE_TTL_DAYS`` after their last event. So the state shows
for certain that a student did nothing from a known day on: from ``hold_days`` before their
state began (an earlier state would still exist otherwise), or, with no state at all, from
``hold_days`` before the report is run. A listed student whose period starts before that day
is marked incomplete: the product cannot rule out engagement before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict

from agents.model.reference import Period
from schemas.errors import EngagementError


@dataclass(frozen=True)
class SlcStudent:
    """One student on the roster, with the days the state shows them engaged."""

    pseudonym: str
    student_id: str | None
    term_start: int | None  # day ordinal, from the roster
    first_day: int | None  # the day their state began; None: no state held
    engaged_days: frozenset[int] = frozenset()
    exemptions: tuple[Period, ...] = field(default_factory=tuple)


class SlcRow(BaseModel):
    """One student with no attended contact and no engagement in the census period."""

    model_config = ConfigDict(frozen=True)

    student_id: str | None
    pseudonym: str
    census: date
    period_start: date
    period_end: date
    last_engaged: date | None  # the last engaged day before the period, when still held
    exemption: str | None  # an exemption overlapping the period (break in learning, …)
    complete: bool  # whether the held data covers the whole period
    data_held_from: date  # the first day the product can vouch for


class CensusError(EngagementError, ValueError):
    """A census date that is not one of the configured census points."""


def academic_year_start(day: date) -> date:
    """1 August on or before ``day``: where the first census period of a year begins when the
    roster gives no term start."""
    year = day.year if day.month >= 8 else day.year - 1
    return date(year, 8, 1)


def period_of(census: date, points: Sequence[date], term_start: date | None) -> tuple[date, date]:
    """The census period ending on ``census``: from the day after the previous census point;
    for the first point, from the student's term start (or 1 August before it)."""
    if census not in points:
        shown = ", ".join(p.isoformat() for p in points) or "none configured"
        msg = f"{census.isoformat()} is not a census point (ENGAGEMENT_SLC_CENSUS_DATES: {shown})"
        raise CensusError(msg)
    earlier = [p for p in points if p < census]
    if earlier:
        return max(earlier) + timedelta(days=1), census
    start = term_start if term_start is not None and term_start <= census else None
    return start or academic_year_start(census), census


def slc_rows(
    students: Iterable[SlcStudent],
    census: date,
    points: Sequence[date],
    *,
    today: date,
    hold_days: int,
) -> list[SlcRow]:
    """The students to report for ``census``, by student id."""
    period_of(census, points, None)  # refuses a date that is not a census point
    rows = []
    for s in students:
        term = date.fromordinal(s.term_start) if s.term_start is not None else None
        start, end = period_of(census, points, term)
        first, last = start.toordinal(), end.toordinal()
        if any(first <= d <= last for d in s.engaged_days):
            continue
        before = [d for d in s.engaged_days if d < first]
        held_from = (s.first_day if s.first_day is not None else today.toordinal()) - hold_days
        exempt = next((p.kind for p in s.exemptions if p.overlaps(first, last)), None)
        rows.append(
            SlcRow(
                student_id=s.student_id,
                pseudonym=s.pseudonym,
                census=census,
                period_start=start,
                period_end=end,
                last_engaged=date.fromordinal(max(before)) if before else None,
                exemption=exempt,
                complete=held_from <= first,
                data_held_from=date.fromordinal(max(1, held_from)),
            )
        )
    rows.sort(key=lambda r: (r.student_id is None, r.student_id or "", r.pseudonym))
    return rows
