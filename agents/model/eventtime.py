"""Event-time arithmetic: calendar days in the institution's timezone, epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MS_PER_DAY = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_epoch_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime."""
    if moment.tzinfo is None:
        msg = "naive datetime: event times must carry a timezone"
        raise ValueError(msg)
    # Whole seconds from the float timestamp are exact for any date after 1970 (its error is
    # far below a second); the milliseconds come from the integer microseconds.
    seconds = int(moment.timestamp())
    if seconds < 0:
        return (moment - _EPOCH) // _ONE_MS
    return seconds * 1000 + moment.microsecond // 1000


def from_epoch_ms(ms: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def local_day(moment: datetime, zone: ZoneInfo) -> int:
    """The calendar day (a date ordinal) on which ``moment`` falls in the institution's zone."""
    return moment.astimezone(zone).date().toordinal()


def local_day_of_ms(ms: int, zone: ZoneInfo) -> int:
    """Like :func:`local_day`, from epoch milliseconds."""
    return local_day(from_epoch_ms(ms), zone)


def day_to_date(day: int) -> date:
    """The date of a day ordinal."""
    return date.fromordinal(day)


def day_start_ms(day: int, zone: ZoneInfo) -> int:
    """Epoch milliseconds of local midnight starting ``day`` (23 or 25 hours long across DST)."""
    midnight = datetime.combine(date.fromordinal(day), time(0), tzinfo=zone)
    return to_epoch_ms(midnight)


def day_length(day: int, zone: ZoneInfo) -> timedelta:
    """How long ``day`` lasts in the institution's zone."""
    return timedelta(milliseconds=day_start_ms(day + 1, zone) - day_start_ms(day, zone))


def pretty(day: int) -> str:
    """A day ordinal as a student reads it: Monday 5 October 2026 (for explanations)."""
    d = date.fromordinal(day)
    return f"{d:%A} {d.day} {d:%B %Y}"
