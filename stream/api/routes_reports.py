"""``/v1/reports/…``: the SLC attendance-confirmation and UKVI attendance reports.

For the compliance role only, as JSON or CSV (``Accept: text/csv`` or ``?format=csv``). Each
report names students, so every student a report lists gets one audit entry (who, role, the
report and its dates), written before the report is returned: a student sees the read under
"who has looked at my data". What the reports say is in docs/reports.md.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from schemas.access import Principal, Role
from schemas.report_settings import REPORT_ENV, Period, ReportSettings
from sinks.reports import (
    CensusError,
    ReportReader,
    SlcRow,
    UkviRow,
    period_of,
    slc_rows,
    to_csv,
    ukvi_rows,
)
from sinks.stores.audit import AuditLog
from stream.api.deps import require
from stream.api.problems import responses

router = APIRouter(prefix="/v1/reports", tags=["reports"])
Compliance = Annotated[Principal, Depends(require(Role.COMPLIANCE))]
Format = Literal["json", "csv"]
MAX_DAYS = 731  # the longest UKVI report: two years of records
_CSV = "text/csv"
_CSV_BODY = {"content": {_CSV: {"schema": {"type": "string"}}}}


class SlcReport(BaseModel):
    """The students with no attended contact point and no engagement in a census period."""

    census: date
    census_points: list[date] = Field(description="Every configured census point.")
    rows: list[SlcRow]


class UkviReport(BaseModel):
    """Contact points expected, attended and missed per sponsored student and period."""

    first: date = Field(serialization_alias="from")
    last: date = Field(serialization_alias="to")
    period: Period
    rows: list[UkviRow]


def report_settings(settings: Any) -> ReportSettings:
    """The reports' fields of the process's settings (their defaults where it has none)."""
    if isinstance(settings, ReportSettings):
        return settings
    given = {
        env: getattr(settings, name) for name, env in REPORT_ENV.items() if hasattr(settings, name)
    }
    return ReportSettings.model_validate(given)


def _wants_csv(request: Request, fmt: Format | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return _CSV in request.headers.get("accept", "")


def _csv(rows: list[Any], model: type[BaseModel], name: str) -> Response:
    return Response(
        content=to_csv(rows, list(model.model_fields)),
        media_type=f"{_CSV}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


async def _audit(
    audit: AuditLog, who: Principal, pseudonyms: list[str], action: str, moment: datetime
) -> None:
    await audit.record_many(
        who=who.subject, role=Role.COMPLIANCE.value, pseudonyms=pseudonyms, action=action,
        now=moment,
    )  # fmt: skip


async def slc_report(
    client: aioredis.Redis,
    audit: AuditLog,
    settings: Any,
    who: Principal,
    census: date,
    moment: datetime,
) -> SlcReport:
    """The SLC report for one census point, audited (the routes' core, without HTTP)."""
    config = report_settings(settings)
    points = config.slc_census_dates
    try:
        period_of(census, points, None)
    except CensusError as exc:
        raise HTTPException(404, detail=str(exc)) from None
    # From the hold period before the census period: the last engaged day before it, if held.
    hold = int(settings.state_ttl_days)
    earliest = period_of(census, points, None)[0] - timedelta(days=hold)
    reader = ReportReader(client, settings.key_prefix, settings.zone)
    students = await reader.slc_students(earliest, census)
    rows = slc_rows(students, census, points, today=moment.date(), hold_days=hold)
    await _audit(audit, who, [r.pseudonym for r in rows], f"report slc {census}", moment)
    return SlcReport(census=census, census_points=list(points), rows=rows)


async def ukvi_report(
    client: aioredis.Redis,
    audit: AuditLog,
    settings: Any,
    who: Principal,
    first: date,
    last: date,
    period: Period | None,
    moment: datetime,
) -> UkviReport:
    """The UKVI report for [first, last], audited (the routes' core, without HTTP)."""
    if last < first:
        raise HTTPException(400, detail="'to' is before 'from'")
    if (last - first).days >= MAX_DAYS:
        raise HTTPException(400, detail=f"a report covers at most {MAX_DAYS} days")
    kind = period or report_settings(settings).ukvi_period
    reader = ReportReader(client, settings.key_prefix, settings.zone)
    rows = ukvi_rows(await reader.ukvi_students(), first, last, kind)
    listed = sorted({r.pseudonym for r in rows})
    await _audit(audit, who, listed, f"report ukvi {first}..{last}", moment)
    return UkviReport(first=first, last=last, period=kind, rows=rows)


@router.get(
    "/slc",
    response_model=SlcReport,
    responses={200: _CSV_BODY, **responses(400, 401, 403, 404)},
    summary="SLC attendance confirmation",
)
async def slc(
    request: Request,
    who: Compliance,
    census: Annotated[date, Query(description="A configured census point, YYYY-MM-DD.")],
    fmt: Annotated[Format | None, Query(alias="format")] = None,
) -> Any:
    """Students with no attended contact point and no engagement event since the previous
    census point (audited: one entry per student listed)."""
    state = request.app.state
    report = await slc_report(state.redis, state.audit, state.settings, who, census, _now())
    if _wants_csv(request, fmt):
        return _csv(report.rows, SlcRow, f"slc-{census}")
    return report


@router.get(
    "/ukvi",
    response_model=UkviReport,
    response_model_by_alias=True,
    responses={200: _CSV_BODY, **responses(400, 401, 403)},
    summary="UKVI attendance",
)
async def ukvi(
    request: Request,
    who: Compliance,
    first: Annotated[date, Query(alias="from", description="First day, YYYY-MM-DD.")],
    last: Annotated[date, Query(alias="to", description="Last day, YYYY-MM-DD.")],
    period: Annotated[Period | None, Query(description="month or week.")] = None,
    fmt: Annotated[Format | None, Query(alias="format")] = None,
) -> Any:
    """Per sponsored student and reporting period: contact points expected, attended and
    missed, and consecutive missed ones (audited: one entry per student listed)."""
    state = request.app.state
    report = await ukvi_report(
        state.redis, state.audit, state.settings, who, first, last, period, _now()
    )
    if _wants_csv(request, fmt):
        return _csv(report.rows, UkviRow, f"ukvi-{first}-{last}")
    return report


def _now() -> datetime:
    return datetime.now(UTC)
