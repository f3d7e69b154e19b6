"""Quiet hours: the part of the day, in institution time, when automated prompts wait.

A prompt decided at 23:10 is not dropped; it is deferred to the end of the quiet period and
delivered then (after its preferences are checked again). The period may cross midnight
(the default 21:00-08:00 does). Times are wall-clock times in the institution's timezone, so
the period follows the clocks through British Summer Time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _parse_time(text: str) -> time:
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        msg = f"{text!r} is not a time of day (HH:MM or HH:MM:SS)"
        raise ValueError(msg)
    numbers = [int(p) for p in parts]
    try:
        return time(numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else 0)
    except ValueError:
        msg = f"{text!r} is not a time of day (HH:MM or HH:MM:SS)"
        raise ValueError(msg) from None


@dataclass(frozen=True)
class QuietHours:
    """``start`` up to (not including) ``end``, local time; start > end crosses midnight."""

    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, value: str, timezone: str) -> QuietHours | None:
        """``"21:00-08:00"`` → QuietHours; ``"off"`` or empty → None (prompts never wait)."""
        text = value.strip().lower()
        if text in ("", "off", "none"):
            return None
        start, sep, end = text.partition("-")
        if not sep:
            msg = f"quiet hours {value!r} must look like 21:00-08:00 (or 'off')"
            raise ValueError(msg)
        quiet = cls(_parse_time(start), _parse_time(end), ZoneInfo(timezone))
        if quiet.start == quiet.end:
            msg = f"quiet hours {value!r} start and end at the same time; use 'off' instead"
            raise ValueError(msg)
        return quiet

    def _in(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (aware) falls in quiet hours."""
        return self._in(moment.astimezone(self.zone).time().replace(tzinfo=None))

    def ends_after(self, moment: datetime) -> datetime:
        """The first end of quiet hours after ``moment``, in UTC (``moment`` itself when it is
        not in quiet hours)."""
        if not self.contains(moment):
            return moment.astimezone(UTC)
        local = moment.astimezone(self.zone)
        for offset in (0, 1):
            day = local.date() + timedelta(days=offset)
            candidate = datetime.combine(day, self.end, tzinfo=self.zone)
            if candidate > local:
                # A local end time that the clocks skip (none of the usual ones) is read as
                # the later offset by zoneinfo; either way the result is after ``moment``.
                return candidate.astimezone(UTC)
        msg = "unreachable: quiet hours always end within a day"  # pragma: no cover
        raise AssertionError(msg)

    def describe(self) -> str:
        """E.g. '21:00-08:00 Europe/London'."""
        fmt = "%H:%M:%S" if self.start.second or self.end.second else "%H:%M"
        return f"{self.start.strftime(fmt)}-{self.end.strftime(fmt)} {self.zone.key}"
