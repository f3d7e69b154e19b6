"""Settings of the compliance reports: UKVI attendance records and SLC census points.

Part of the one settings object: ``schemas.settings.Settings`` derives from
:class:`ReportSettings` and lists these variables in its ``ENV``. What the reports say, and the
guidance the defaults follow, is in docs/reports.md.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Final, Literal

from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import NoDecode

REPORT_ENV = {
    "ukvi_retention_days": "ENGAGEMENT_UKVI_RETENTION_DAYS",
    "ukvi_period": "ENGAGEMENT_UKVI_PERIOD",
    "slc_census_dates": "ENGAGEMENT_SLC_CENSUS_DATES",
}

# One year after sponsorship ends (the sponsor guidance's record-keeping period), counted from
# the last day recorded, plus 35 days for the time between a student's last contact point and
# the end of their sponsorship being reported.
UKVI_RETENTION_DAYS: Final = 400

Period = Literal["month", "week"]


def _env(field: str) -> AliasChoices:
    return AliasChoices(REPORT_ENV[field])


def parse_census_dates(value: object) -> tuple[date, ...]:
    """``2026-10-15,2027-01-20`` (or a list of dates) → sorted, distinct dates."""
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        msg = "give census dates as YYYY-MM-DD, comma-separated"
        raise ValueError(msg)
    out = set()
    for item in items:
        if isinstance(item, date):
            out.add(item)
            continue
        text = str(item).strip()
        if not text:
            continue
        try:
            out.add(date.fromisoformat(text))
        except ValueError:
            msg = f"{text!r} is not a date (YYYY-MM-DD)"
            raise ValueError(msg) from None
    return tuple(sorted(out))


class ReportSettings(BaseModel):
    """The reports' fields of the settings object."""

    ukvi_retention_days: int = Field(
        default=UKVI_RETENTION_DAYS,
        ge=365,
        le=3_650,
        validation_alias=_env("ukvi_retention_days"),
        description="How long a sponsored student's daily attendance record is kept after the "
        "last day written to it (at least the guidance's one year).",
    )
    ukvi_period: Period = Field(
        default="month",
        validation_alias=_env("ukvi_period"),
        description="The UKVI report's reporting period: calendar month or week (Mon-Sun).",
    )
    # NoDecode: the variable is a comma-separated list, not JSON.
    slc_census_dates: Annotated[tuple[date, ...], NoDecode] = Field(
        default=(),
        validation_alias=_env("slc_census_dates"),
        description="The SLC attendance-confirmation census points, YYYY-MM-DD, comma-separated.",
    )

    @field_validator("slc_census_dates", mode="before")
    @classmethod
    def _census_dates(cls, value: object) -> tuple[date, ...]:
        return parse_census_dates(value)
