"""Quiet hours: which moments are quiet, and when the quiet ends, in institution time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.quiet import QuietHours

LONDON = ZoneInfo("Europe/London")


def quiet(value: str = "21:00-08:00") -> QuietHours:
    hours = QuietHours.parse(value, "Europe/London")
    assert hours is not None
    return hours


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)  # type: ignore[misc]  # year, month, day, hour, minute


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (london(2026, 11, 20, 20, 59), False),
        (london(2026, 11, 20, 21, 0), True),
        (london(2026, 11, 20, 23, 30), True),
        (london(2026, 11, 21, 3, 0), True),
        (london(2026, 11, 21, 7, 59), True),
        (london(2026, 11, 21, 8, 0), False),
        (london(2026, 11, 21, 13, 0), False),
    ],
)
def test_the_default_period_crosses_midnight(moment: datetime, expected: bool) -> None:
    assert quiet().contains(moment) is expected


def test_a_prompt_decided_late_in_the_evening_is_due_at_eight_the_next_morning() -> None:
    due = quiet().ends_after(london(2026, 11, 20, 23, 10))
    assert due == london(2026, 11, 21, 8, 0)
    assert due.tzinfo is UTC


def test_a_prompt_decided_before_dawn_is_due_at_eight_the_same_morning() -> None:
    assert quiet().ends_after(london(2026, 11, 21, 2, 0)) == london(2026, 11, 21, 8, 0)


def test_outside_quiet_hours_a_prompt_is_due_at_once() -> None:
    moment = london(2026, 11, 21, 12, 0)
    assert quiet().ends_after(moment) == moment


def test_quiet_hours_follow_the_clocks_through_summer_time() -> None:
    # 21:00 London is 20:00 UTC in summer and 21:00 UTC in winter.
    assert quiet().contains(datetime(2026, 7, 1, 20, 30, tzinfo=UTC))
    assert not quiet().contains(datetime(2026, 12, 1, 20, 30, tzinfo=UTC))
    # The night the clocks go back (25 Oct 2026) is an hour longer; the end is still 08:00.
    due = quiet().ends_after(london(2026, 10, 24, 22, 0))
    assert due == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


def test_a_daytime_period_and_seconds_are_accepted() -> None:
    hours = quiet("12:00:00-12:00:30")
    assert hours.contains(london(2026, 11, 21, 12, 0, 10))
    assert not hours.contains(london(2026, 11, 21, 12, 0, 30))
    assert hours.describe() == "12:00:00-12:00:30 Europe/London"


@pytest.mark.parametrize("value", ["off", "", "none", " OFF "])
def test_off_means_prompts_never_wait(value: str) -> None:
    assert QuietHours.parse(value, "Europe/London") is None


@pytest.mark.parametrize("value", ["21-08", "25:00-08:00", "21:00", "08:00-08:00", "9pm-8am"])
def test_a_bad_value_says_what_is_expected(value: str) -> None:
    with pytest.raises(ValueError, match=r"HH:MM|21:00-08:00|same time"):
        QuietHours.parse(value, "Europe/London")


@given(
    st.datetimes(
        min_value=datetime(2025, 1, 1),  # noqa: DTZ001  # hypothesis adds the zone
        max_value=datetime(2028, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    st.sampled_from(["21:00-08:00", "22:30-06:15", "09:00-17:00", "00:00-07:00"]),
)
def test_the_due_time_is_never_early_never_quiet_and_within_a_day(
    moment: datetime, value: str
) -> None:
    hours = quiet(value)
    due = hours.ends_after(moment)
    assert due >= moment
    assert not hours.contains(due)
    assert due - moment <= timedelta(hours=25)  # a day, plus the extra hour in October
    if hours.contains(moment):
        assert due.astimezone(LONDON).time() == hours.end
