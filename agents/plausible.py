"""Plausible event times: when an event can have happened at all, before it may count.

A date such as 1970-01-01 (an epoch of zero), 0001-01-01 (an empty .NET date) or 9999-12-31 (a
database's "no date") is not a clock error but a placeholder. Counted, one of them would move
the first day of state decades back and make the worker close every day in between, so such
an event is refused as ``implausible_time`` and never becomes a signal.

- **Too early**: before the term start (``ENGAGEMENT_TERM_START``, a date in the institution's
  timezone) less the late grace period, or, with no term start set, before ``FLOOR``
  (2000-01-01). The floor is fixed rather than relative to the clock so that replaying a past
  term (the OULAD sample is from 2013-14) works with the same settings.
- **Far in the future**: more than ``FAR_FUTURE`` (two years) ahead of the worker's clock.
  Closer than that and more than ``ENGAGEMENT_MAX_CLOCK_SKEW_S`` ahead, an event stays
  ``future_dated``: a source clock set to the wrong hour, zone or even year is a clock problem
  its owner can fix; two years ahead no clock error explains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agents.model.eventtime import to_epoch_ms

FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
"""No event before this counts, whatever the term start says."""
FAR_FUTURE = timedelta(days=730)
"""An event dated further ahead of the worker's clock than this is implausible, not early."""


@dataclass(frozen=True)
class TimeBounds:
    """The earliest plausible event time, and how far ahead of the clock one may be."""

    earliest: datetime = FLOOR
    because: str = "2000-01-01, the earliest date the product accepts"
    """The lower bound in words, for the dead letter's sentence."""
    far_future: timedelta = FAR_FUTURE
    earliest_ms: int = field(init=False, repr=False)
    ahead_ms: int = field(init=False, repr=False)

    @classmethod
    def of(cls, term_start: date | None, zone: ZoneInfo, grace_hours: float) -> TimeBounds:
        """Bounds for a deployment: term start (local midnight) less the grace, never below
        the floor; the floor alone when no term start is set."""
        if term_start is None:
            return cls()
        grace = timedelta(hours=grace_hours)
        earliest = datetime.combine(term_start, time(0), tzinfo=zone) - grace
        if earliest <= FLOOR:
            return cls()
        because = (
            f"the term start {term_start.isoformat()} (ENGAGEMENT_TERM_START) less the "
            f"{grace_hours:g}-hour grace period"
        )
        return cls(earliest.astimezone(UTC), because)

    def __post_init__(self) -> None:
        # Frozen: the millisecond forms are computed once here, for the per-event check.
        object.__setattr__(self, "earliest_ms", to_epoch_ms(self.earliest))
        object.__setattr__(self, "ahead_ms", self.far_future // timedelta(milliseconds=1))

    def problem(self, occurred: datetime, occurred_ms: int | None, now_ms: int) -> str | None:
        """A sentence saying why ``occurred`` is implausible, or None when it is plausible.

        ``occurred_ms`` is ``occurred`` in epoch milliseconds, or None where that overflows.
        """
        if occurred_ms is None or occurred_ms < self.earliest_ms:
            when = occurred.isoformat()
            return (
                f"occurred_at is {when}, before {self.because}: a date like this is a "
                "placeholder or a corrupted value (an epoch of 0 is 1970-01-01), not when the "
                "event happened; fix the time in the source's export"
            )
        if occurred_ms - now_ms > self.ahead_ms:
            when, years = occurred.isoformat(), self.far_future.days // 365
            return (
                f"occurred_at is {when}, more than {years} years ahead "
                "of the worker's clock: no clock or time-zone error explains that, so it is a "
                "placeholder or a corrupted value; fix the time in the source's export"
            )
        return None
