"""``/v1/insights/cohorts``: students per engagement band, by course or by week (insights role).

Counts only, never one student: no id, no pseudonym, no group smaller than the threshold
(10), and no hidden count recoverable from the totals (``sinks/insights.py``). Students are
those on the roster; each one's band is the engagement score's band on the day (by course:
today; by week: the last day of each of the last eight weeks), or "not known" while their
records are too short for a score. The roster holds no school, so ``by=school`` says so.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from agents.model.eventtime import local_day, local_day_of_ms
from agents.model.score import BANDS, band
from agents.model.student import Student
from schemas.access import Principal, Role
from schemas.keys import ROSTER
from sinks.insights import THRESHOLD, Table, suppress, tally
from stream.api.deps import require
from stream.api.problems import responses
from stream.api.routes_common import Api, api_of, now

router = APIRouter(prefix="/v1/insights", tags=["insights"])
Insights = Annotated[Principal, Depends(require(Role.INSIGHTS))]
Deps = Annotated[Api, Depends(api_of)]
NOT_KNOWN: Final = "not known"
COLUMNS: Final = (*(name for _, name in BANDS), NOT_KNOWN)
NO_COURSE: Final = "(no course on the roster)"
WEEKS: Final = 8
CHUNK: Final = 500


class CohortRow(BaseModel):
    """One group: students per band (None: suppressed), and its total (None: suppressed)."""

    group: str = Field(description="A course, or a week as the date of its Monday.")
    counts: list[int | None] = Field(description="One per band, in the order of `bands`.")
    total: int | None


class CohortTable(BaseModel):
    """Students per band per group, small numbers suppressed."""

    by: Literal["course", "week"]
    as_of: date
    threshold: int = Field(description="Counts below it are hidden.")
    bands: list[str]
    rows: list[CohortRow]
    band_totals: list[int | None]
    total: int | None
    suppressed: int = Field(description="How many counts (cells and totals) are hidden.")
    note: str


def _table(table: Table, by: Literal["course", "week"], day: date) -> CohortTable:
    return CohortTable(
        by=by,
        as_of=day,
        threshold=table.threshold,
        bands=list(table.columns),
        rows=[
            CohortRow(group=group, counts=list(cells), total=total)
            for group, cells, total in zip(table.rows, table.cells, table.row_totals, strict=True)
        ],
        band_totals=list(table.column_totals),
        total=table.total,
        suppressed=table.suppressed,
        note=f"Counts below {table.threshold} are hidden, and so are as many others as it "
        "takes for no hidden count to follow from the totals. 'not known': too few days of "
        "records for a score.",
    )


async def _roster(api: Api) -> dict[str, str]:
    """Pseudonym → course of every student on the roster."""
    pattern = ROSTER.pattern(api.settings.key_prefix)
    names = []
    async for key in api.redis.scan_iter(match=ROSTER.glob(api.settings.key_prefix), count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        if pattern.match(name):
            names.append(name)
    out: dict[str, str] = {}
    for start in range(0, len(names), CHUNK):
        chunk = names[start : start + CHUNK]
        values = await api.redis.mget(chunk)
        for name, value in zip(chunk, values, strict=True):
            found = pattern.match(name)
            if value is None or found is None:
                continue
            course = _course(value)
            out[found.group("pseudonym")] = course
    return out


def _course(value: Any) -> str:
    try:
        course = json.loads(value).get("course")
    except (ValueError, AttributeError):
        return NO_COURSE
    return str(course) if course else NO_COURSE


async def _bands(api: Api, pseudonyms: list[str], days: list[int]) -> dict[str, list[str]]:
    """Each student's band on each of ``days``."""
    zone, rules = api.settings.zone, api.rules
    first = min(days) - rules.history_days
    out: dict[str, list[str]] = {}
    for start in range(0, len(pseudonyms), CHUNK):
        chunk = pseudonyms[start : start + CHUNK]
        stored = {s.pseudonym: s for s in await api.state.load_students(chunk, first, max(days))}
        for pseudonym in chunk:
            item = stored.get(pseudonym)
            if item is None:
                out[pseudonym] = [NOT_KNOWN] * len(days)
                continue
            student = Student(
                pseudonym=pseudonym,
                first_day=local_day_of_ms(item.first_ms, zone),
                facts=item.facts,
                known_from=first,
            )
            scores = [student.score(day, rules.score) for day in days]
            out[pseudonym] = [NOT_KNOWN if s is None else band(s) for s in scores]
    return out


@router.get(
    "/cohorts",
    response_model=CohortTable,
    responses=responses(400, description="by=school: the roster holds no school."),
    summary="Students per band, by course or week",
)
async def cohorts(
    _: Insights,
    api: Deps,
    by: Annotated[Literal["course", "week", "school"], Query(description="The groups.")],
) -> CohortTable:
    """Students per engagement band by course (today) or by week (the last eight), with small
    numbers suppressed so that no hidden count can be worked out from the totals."""
    if by == "school":
        raise HTTPException(400, "the roster holds no school for students: use course or week")
    moment: datetime = now()
    today = local_day(moment, api.settings.zone)
    roster = await _roster(api)
    pseudonyms = sorted(roster)
    if by == "course":
        banded = await _bands(api, pseudonyms, [today])
        pairs = [(roster[p], banded[p][0]) for p in pseudonyms]
        groups = sorted({group for group, _ in pairs})
    else:
        monday = today - date.fromordinal(today).weekday()
        ends = [min(today, monday - 7 * back + 6) for back in range(WEEKS - 1, -1, -1)]
        banded = await _bands(api, pseudonyms, ends)
        labels = [str(date.fromordinal(end - date.fromordinal(end).weekday())) for end in ends]
        pairs = [(labels[k], banded[p][k]) for p in pseudonyms for k in range(len(ends))]
        groups = labels
    table = suppress(tally(pairs), groups, COLUMNS, THRESHOLD)
    return _table(table, by, date.fromordinal(today))
