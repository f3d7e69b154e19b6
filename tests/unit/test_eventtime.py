"""Event-time arithmetic: London calendar days across the clock changes, epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agents.model.eventtime import (
    MS_PER_DAY,
    day_length,
    day_start_ms,
    day_to_date,
    from_epoch_ms,
    local_day,
    local_day_of_ms,
    to_epoch_ms,
)

LONDON = ZoneInfo("Europe/London")


def ordinal(year: int, month: int, day: int) -> int:
    return date(year, month, day).toordinal()


@pytest.mark.parametrize(
    ("instant", "local_date"),
    [
        # BST -> GMT on Sunday 25 October 2026 at 01:00 UTC (02:00 BST becomes 01:00 GMT).
        (datetime(2026, 10, 24, 22, 59, tzinfo=UTC), date(2026, 10, 24)),  # 23:59 BST
        (datetime(2026, 10, 24, 23, 0, tzinfo=UTC), date(2026, 10, 25)),  # 00:00 BST
        (datetime(2026, 10, 24, 23, 30, tzinfo=UTC), date(2026, 10, 25)),  # 00:30 BST
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), date(2026, 10, 25)),  # 01:30 BST
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), date(2026, 10, 25)),  # 01:30 GMT
        (datetime(2026, 10, 25, 23, 30, tzinfo=UTC), date(2026, 10, 25)),  # 23:30 GMT
        (datetime(2026, 10, 26, 0, 0, tzinfo=UTC), date(2026, 10, 26)),  # 00:00 GMT
        # GMT -> BST on Sunday 29 March 2026 at 01:00 UTC.
        (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), date(2026, 3, 28)),  # 23:30 GMT
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), date(2026, 3, 29)),  # 00:30 GMT
        (datetime(2026, 3, 29, 22, 59, tzinfo=UTC), date(2026, 3, 29)),  # 23:59 BST
        (datetime(2026, 3, 29, 23, 0, tzinfo=UTC), date(2026, 3, 30)),  # 00:00 BST
        # An offset given by the publisher is honoured.
        (datetime(2026, 7, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))), date(2026, 7, 2)),
    ],
)
def test_local_day_is_the_london_calendar_day(instant: datetime, local_date: date) -> None:
    assert local_day(instant, LONDON) == local_date.toordinal()
    assert local_day_of_ms(to_epoch_ms(instant), LONDON) == local_date.toordinal()
    assert day_to_date(local_day(instant, LONDON)) == local_date


def test_the_hour_after_the_clocks_go_back_stays_on_the_same_day() -> None:
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 01:30 BST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 01:30 GMT, an hour later
    assert first.astimezone(LONDON).strftime("%H:%M %Z") == "01:30 BST"
    assert second.astimezone(LONDON).strftime("%H:%M %Z") == "01:30 GMT"
    assert local_day(first, LONDON) == local_day(second, LONDON) == ordinal(2026, 10, 25)


def test_day_lengths_across_the_clock_changes() -> None:
    assert day_length(ordinal(2026, 10, 25), LONDON) == timedelta(hours=25)
    assert day_length(ordinal(2026, 3, 29), LONDON) == timedelta(hours=23)
    assert day_length(ordinal(2026, 10, 24), LONDON) == timedelta(hours=24)
    assert day_length(ordinal(2026, 10, 26), LONDON) == timedelta(hours=24)
    assert day_length(ordinal(2026, 10, 25), ZoneInfo("UTC")) == timedelta(hours=24)


def test_day_start_is_local_midnight() -> None:
    # Midnight on 25 October is still BST (23:00 UTC the day before).
    assert day_start_ms(ordinal(2026, 10, 25), LONDON) == to_epoch_ms(
        datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    )
    assert day_start_ms(ordinal(2026, 10, 26), LONDON) == to_epoch_ms(
        datetime(2026, 10, 26, 0, 0, tzinfo=UTC)
    )
    assert (
        day_start_ms(ordinal(2026, 3, 30), LONDON) - day_start_ms(ordinal(2026, 3, 29), LONDON)
        == MS_PER_DAY - 3_600_000
    )


def test_to_epoch_ms_refuses_a_naive_datetime() -> None:
    naive = datetime.fromisoformat("2026-10-25T01:30:00")
    with pytest.raises(ValueError, match="naive"):
        to_epoch_ms(naive)


def test_epoch_ms_known_values() -> None:
    assert to_epoch_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_epoch_ms(datetime(2026, 10, 25, 1, 0, tzinfo=UTC)) == 1_792_890_000_000
    assert to_epoch_ms(datetime(2026, 10, 25, 2, 0, tzinfo=timezone(timedelta(hours=1)))) == (
        1_792_890_000_000
    )
    moment = from_epoch_ms(1_792_890_000_123)
    assert moment == datetime(2026, 10, 25, 1, 0, 0, 123_000, tzinfo=UTC)
    assert moment.utcoffset() == timedelta(0)


# Epoch milliseconds from 1970 to 2100.
_ms = st.integers(min_value=0, max_value=4_102_444_800_000)


@settings(max_examples=300, deadline=None)
@given(ms=_ms)
@example(ms=1_792_890_000_123)
@example(ms=1_093_443_117_952)  # 2004-08-25T14:11:57.952Z
@example(ms=2_157_591_500_621)  # 2038-05-16T02:58:20.621Z
def test_epoch_ms_round_trips(ms: int) -> None:
    moment = from_epoch_ms(ms)
    assert moment.tzinfo is not None
    assert to_epoch_ms(moment) == ms
    assert to_epoch_ms(moment.astimezone(LONDON)) == ms


@settings(max_examples=200, deadline=None)
@given(ms=_ms)
def test_local_day_of_ms_agrees_with_day_start(ms: int) -> None:
    day = local_day_of_ms(ms, LONDON)
    assert day_start_ms(day, LONDON) <= ms < day_start_ms(day + 1, LONDON)
