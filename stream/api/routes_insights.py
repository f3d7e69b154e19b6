"""``/v1/insights/cohorts``: students per engagement band, by course or by week (insights role).

Counts only, never one student: no id, no pseudonym, no group smaller than the threshold
(10), and no hidden count recoverable from the totals (``sinks/insights.py``). Students are
those on the roster; each one's band is the engagement score's band on the day (by course:
today; by week: the last day of each of the last eight weeks), or "not known" while their
records are too short for a score. The roster holds no school, so ``by=school`` says so.

``/v1/insights/backtests``: the backtest reports ``engagement replay --publish`` filed under
``ENGAGEMENT_STATE_DIR/reports`` (counts only). Before one is served it is checked again: a
report that holds a pseudonym, or the id of a student on the roster, is withheld.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as PathParam
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
from stream.offline.backtest import (
    REPORT_NAME,
    REPORTS_DIR,
    aggregate_part,
    pseudonyms_in,
    strings_in,
)

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


MAX_REPORT_BYTES: Final = 5_000_000
NO_REPORT: Final = "no such backtest report"
ReportName = Annotated[str, PathParam(pattern=REPORT_NAME.pattern + "$", max_length=40)]


class BacktestListed(BaseModel):
    """One filed backtest report: its name, period and size, or why it is withheld."""

    name: str = Field(description="backtest-YYYYMMDDTHHMMSSZ: when it was filed (UTC).")
    filed_at: datetime
    first_day: date | None
    last_day: date | None
    students: int | None
    decisions: int | None
    rules: list[str]
    withheld: str | None = Field(description="Why it is not served (None: it is).")


class BacktestReport(BaseModel):
    """A filed report's aggregate part (docs/replay.md, "The report")."""

    name: str
    report: dict[str, Any]


def _folder(api: Api) -> Path:
    return api.settings.state_dir / REPORTS_DIR


def _read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The report's aggregate part, or why it cannot be read."""
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return None, "larger than a backtest report can be"
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, "not a readable JSON report"
    if not isinstance(found, dict):
        return None, "not a readable JSON report"
    return aggregate_part(found), None


async def _checked(api: Api, path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The report, or why it is withheld: unreadable, or naming a student (a pseudonym, or a
    string that is the id of a student on the roster)."""
    report, why = await asyncio.to_thread(_read, path)
    if report is None:
        return None, why
    if pseudonyms_in(report):
        return None, "it names a student (a pseudonym)"
    texts = sorted(strings_in(report))
    for start in range(0, len(texts), CHUNK):
        keys = [api.keys.roster(api.pseudonymise(t)) for t in texts[start : start + CHUNK]]
        if await api.redis.exists(*keys):
            return None, "it names a student on the roster"
    return report, None


def _listed(name: str, report: dict[str, Any] | None, why: str | None) -> BacktestListed:
    period = (report or {}).get("period") or {}
    rules = (report or {}).get("rules") or []

    def day(value: Any) -> date | None:
        try:
            return date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            return None

    def count(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return BacktestListed(
        name=name,
        filed_at=datetime.strptime(name, "backtest-%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
        first_day=day(period.get("first_day")),
        last_day=day(period.get("last_day")),
        students=count((report or {}).get("students")),
        decisions=count((report or {}).get("decisions")),
        rules=[str(r.get("rule_id")) for r in rules if isinstance(r, dict) and r.get("rule_id")],
        withheld=why,
    )


def _names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(
        (p.stem for p in folder.glob("backtest-*.json") if REPORT_NAME.fullmatch(p.stem)),
        reverse=True,
    )


@router.get("/backtests", response_model=list[BacktestListed], summary="Backtest reports")
async def backtests(_: Insights, api: Deps) -> list[BacktestListed]:
    """The backtest reports filed by ``engagement replay --publish``, newest first; one that
    names a student is listed as withheld, with the reason."""
    folder = _folder(api)
    out = []
    for name in await asyncio.to_thread(_names, folder):
        report, why = await _checked(api, folder / f"{name}.json")
        out.append(_listed(name, report, why))
    return out


@router.get(
    "/backtests/{name}",
    response_model=BacktestReport,
    responses=responses(404, 409, description=f"{NO_REPORT}, or it is withheld"),
    summary="One backtest report",
)
async def backtest(name: ReportName, _: Insights, api: Deps) -> BacktestReport:
    """One filed report's aggregate part: per rule, decisions, students reached, lead times
    and (with outcomes) the comparison, small groups withheld."""
    path = _folder(api) / f"{name}.json"
    if not await asyncio.to_thread(path.is_file):
        raise HTTPException(404, NO_REPORT)
    report, why = await _checked(api, path)
    if report is None:
        raise HTTPException(409, f"this report is withheld: {why}")
    return BacktestReport(name=name, report=report)
