"""Rule arithmetic and nudge construction with the shipped default rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from agents.rules import (
    AttendanceDay,
    AttendanceWindow,
    attendance_breaches,
    attendance_nudge,
    attendance_window,
    nudge_id,
    vle_absence_nudge,
)
from schemas.nudges import Channel, Nudge, Tier
from schemas.rules import AttendanceRateRule, VleAbsenceRule, load_rules
from stream.eventtime import to_epoch_ms
from stream.pseudonym import Pseudonymiser

LONDON = ZoneInfo("Europe/London")
RULES = load_rules()
(ATTENDANCE,) = RULES.of_kind(AttendanceRateRule)
(VLE,) = RULES.of_kind(VleAbsenceRule)
STUDENT = "S7654321"
PSEUDONYM = Pseudonymiser(SecretStr("k" * 20))(STUDENT)
D0 = date(2026, 10, 1).toordinal()


def present(n: int = 1) -> AttendanceDay:
    return AttendanceDay(present=n)


def absent(n: int = 1) -> AttendanceDay:
    return AttendanceDay(absent=n)


def test_the_default_rules_are_the_documented_ones() -> None:
    assert (ATTENDANCE.window_days, ATTENDANCE.threshold) == (14, 0.5)
    assert (ATTENDANCE.min_sessions, ATTENDANCE.cooldown_days) == (4, 14)
    assert VLE.days == 7
    assert VLE.channels == (Channel.EMAIL, Channel.APP)


# -- attendance_window --------------------------------------------------------------------


def test_the_window_sums_exactly_its_days_inclusive() -> None:
    days = {D0 + offset: present() for offset in range(-5, 20)}
    days[D0 + 13] = AttendanceDay(present=1, absent=2)
    window = attendance_window(days, D0 + 13, 14)
    assert (window.start_day, window.end_day) == (D0, D0 + 13)
    # 14 days of one present each, plus two absences on the last day.
    assert (window.attended, window.expected) == (14, 16)
    # A day just outside either end does not count.
    only_edges = {D0 - 1: absent(5), D0: present(), D0 + 13: present(), D0 + 14: absent(5)}
    edges = attendance_window(only_edges, D0 + 13, 14)
    assert (edges.attended, edges.expected) == (2, 2)


def test_a_one_day_window_is_that_day() -> None:
    days = {D0: AttendanceDay(present=1, late=1, absent=1)}
    window = attendance_window(days, D0, 1)
    assert (window.start_day, window.end_day, window.attended, window.expected) == (
        D0,
        D0,
        2,
        3,
    )


def test_late_counts_as_attended_and_excused_does_not_count_as_expected() -> None:
    days = {D0: AttendanceDay(present=1, late=1, absent=1, excused=5)}
    window = attendance_window(days, D0, 14)
    assert (window.attended, window.expected) == (2, 3)
    assert window.rate == pytest.approx(2 / 3)


def test_an_empty_window_has_rate_one() -> None:
    window = attendance_window({D0: AttendanceDay(excused=3)}, D0, 14)
    assert window.expected == 0
    assert window.rate == 1.0


# -- attendance_breaches ------------------------------------------------------------------


def four_sessions(attended: int, end: int = D0 + 13) -> dict[int, AttendanceDay]:
    """Four sessions on four days ending on ``end``, the first ``attended`` attended."""
    return {end - 3 + i: present() if i < attended else absent() for i in range(4)}


def test_fires_below_the_threshold_with_enough_sessions() -> None:
    breaches = attendance_breaches(ATTENDANCE, four_sessions(1), D0 + 13, D0 + 13, None)
    # The first of the four sessions is ten days into the window: the message starts there.
    assert breaches == [AttendanceWindow(D0, D0 + 13, 1, 4, first_session_day=D0 + 10)]


def test_does_not_fire_at_exactly_the_threshold() -> None:
    assert attendance_breaches(ATTENDANCE, four_sessions(2), D0 + 13, D0 + 13, None) == []


def test_does_not_fire_with_fewer_than_min_sessions() -> None:
    days = {D0 + 11: absent(), D0 + 12: absent(), D0 + 13: absent()}
    assert attendance_breaches(ATTENDANCE, days, D0, D0 + 30, None) == []


def test_excused_absences_do_not_make_a_breach() -> None:
    days = {D0 + i: AttendanceDay(excused=1) for i in range(10)} | {D0 + 12: present(2)}
    assert attendance_breaches(ATTENDANCE, days, D0, D0 + 20, None) == []


def test_fires_on_the_first_day_the_window_breaches() -> None:
    days = {D0 + i: absent() for i in range(10)}
    breaches = attendance_breaches(ATTENDANCE, days, D0, D0 + 9, None)
    # The fourth absence is the first time there are 4 expected sessions.
    assert [b.end_day for b in breaches] == [D0 + 3]


def test_cooldown_skips_a_second_breach_and_then_fires_again() -> None:
    days = {D0 + i: absent() for i in range(40)}
    breaches = attendance_breaches(ATTENDANCE, days, D0, D0 + 39, None)
    cooldown = ATTENDANCE.cooldown_days
    assert [b.end_day for b in breaches] == [D0 + 3, D0 + 3 + cooldown, D0 + 3 + 2 * cooldown]


def test_cooldown_counts_from_the_last_nudge_given() -> None:
    days = {D0 + i: absent() for i in range(40)}
    last = D0 + 10
    within = attendance_breaches(ATTENDANCE, days, D0 + 11, D0 + 10 + 13, last)
    assert within == []
    after = attendance_breaches(ATTENDANCE, days, D0 + 11, D0 + 10 + 14, last)
    assert [b.end_day for b in after] == [D0 + 24]


def test_an_empty_range_gives_nothing() -> None:
    days = {D0 + i: absent() for i in range(10)}
    assert attendance_breaches(ATTENDANCE, days, D0 + 9, D0 + 8, None) == []


_marks = st.builds(
    AttendanceDay,
    present=st.integers(0, 2),
    late=st.integers(0, 1),
    absent=st.integers(0, 3),
    excused=st.integers(0, 1),
)


def _last_nudged(breaches: list[AttendanceWindow], previous: int | None) -> int | None:
    return breaches[-1].end_day if breaches else previous


@settings(max_examples=150, deadline=None)
@given(
    days=st.dictionaries(st.integers(D0, D0 + 60), _marks, max_size=45),
    first=st.integers(D0, D0 + 60),
    length=st.integers(0, 40),
    split=st.integers(0, 40),
    previous=st.none() | st.integers(D0 - 30, D0 + 60),
)
def test_breaches_do_not_depend_on_how_days_are_batched(
    days: Mapping[int, AttendanceDay],
    first: int,
    length: int,
    split: int,
    previous: int | None,
) -> None:
    last = first + length
    if previous is not None:
        previous = min(previous, first - 1)
    middle = first + min(split, length)
    whole = attendance_breaches(ATTENDANCE, days, first, last, previous)
    head = attendance_breaches(ATTENDANCE, days, first, middle, previous)
    tail = attendance_breaches(ATTENDANCE, days, middle + 1, last, _last_nudged(head, previous))
    assert whole == head + tail
    # And every breach really is one, at least a cooldown apart.
    for window in whole:
        assert window.expected >= ATTENDANCE.min_sessions
        assert window.rate < ATTENDANCE.threshold
    ends = [previous] if previous is not None else []
    ends += [w.end_day for w in whole]
    assert all(b - a >= ATTENDANCE.cooldown_days for a, b in pairwise(ends))


# -- nudge ids ----------------------------------------------------------------------------


def test_nudge_ids_are_deterministic_and_distinct_per_input() -> None:
    start, end = date(2026, 10, 12), date(2026, 10, 25)
    base = nudge_id("attendance_below_50pct_14d", 1, PSEUDONYM, start, end)
    assert re.fullmatch(r"n_[0-9a-f]{32}", base)
    assert nudge_id("attendance_below_50pct_14d", 1, PSEUDONYM, start, end) == base
    variants = [
        nudge_id("no_vle_activity_7d", 1, PSEUDONYM, start, end),
        nudge_id("attendance_below_50pct_14d", 2, PSEUDONYM, start, end),
        nudge_id("attendance_below_50pct_14d", 1, "p_" + "0" * 32, start, end),
        nudge_id("attendance_below_50pct_14d", 1, PSEUDONYM, start + timedelta(days=1), end),
        nudge_id("attendance_below_50pct_14d", 1, PSEUDONYM, start, end + timedelta(days=1)),
    ]
    assert len({base, *variants}) == 6


# -- attendance nudges --------------------------------------------------------------------


def test_attendance_nudge_explains_the_numbers_without_the_student_id() -> None:
    end = date(2026, 10, 25).toordinal()
    window = AttendanceWindow(end - 13, end, 1, 4)
    nudge = attendance_nudge(ATTENDANCE, PSEUDONYM, window, LONDON)
    Nudge.model_validate(nudge.model_dump())
    assert nudge.nudge_id == nudge_id(
        ATTENDANCE.id, ATTENDANCE.version, PSEUDONYM, date(2026, 10, 12), date(2026, 10, 25)
    )
    assert nudge.pseudonym == PSEUDONYM
    assert (nudge.rule_id, nudge.rule_version) == (ATTENDANCE.id, ATTENDANCE.version)
    assert nudge.tier is Tier.PROMPT
    assert nudge.channels == (Channel.EMAIL,)
    explanation = nudge.explanation
    assert (explanation.window_start, explanation.window_end) == (
        date(2026, 10, 12),
        date(2026, 10, 25),
    )
    summary = explanation.summary
    for text in ("1 of the 4", "(25%)", "14 days", "50%", "Monday 12 October 2026"):
        assert text in summary
    assert "Sunday 25 October 2026" in summary
    assert STUDENT not in summary
    assert PSEUDONYM not in summary
    assert explanation.metrics == {
        "sessions_attended": 1,
        "sessions_expected": 4,
        "attendance_rate": 0.25,
    }
    assert "50%" in explanation.threshold
    assert "4" in explanation.threshold
    assert explanation.sources == ("attendance",)
    # Created at the last second of the window's last day, London time (GMT that day).
    assert nudge.created_at == datetime(2026, 10, 25, 23, 59, 59, tzinfo=UTC)


def test_the_same_window_gives_the_same_nudge_id() -> None:
    window = AttendanceWindow(D0, D0 + 13, 0, 5)
    one = attendance_nudge(ATTENDANCE, PSEUDONYM, window, LONDON)
    two = attendance_nudge(ATTENDANCE, PSEUDONYM, window, LONDON)
    assert one.nudge_id == two.nudge_id
    later = attendance_nudge(ATTENDANCE, PSEUDONYM, AttendanceWindow(D0 + 1, D0 + 14, 0, 5), LONDON)
    assert later.nudge_id != one.nudge_id


def test_the_percentage_shown_is_below_the_threshold_shown() -> None:
    # An 80% attendance rule (common in UK policies) over 28 days: 39 of 49 is 79.6%.
    rule = ATTENDANCE.model_copy(update={"threshold": 0.8, "window_days": 28})
    days = {D0 + i: AttendanceDay(present=2, absent=1) for i in range(10)}
    days |= {D0 + i: present() for i in range(10, 27)} | {D0 + 27: present(2)}
    (window,) = attendance_breaches(rule, days, D0 + 27, D0 + 27, None)
    assert (window.attended, window.expected) == (39, 49)
    summary = attendance_nudge(rule, PSEUDONYM, window, LONDON).explanation.summary
    shown = int(re.search(r"\((\d+)%\)", summary).group(1))  # type: ignore[union-attr]
    limit = int(re.search(r"falls below (\d+)%", summary).group(1))  # type: ignore[union-attr]
    assert shown < limit, summary


# -- VLE absence nudges -------------------------------------------------------------------


def ms(moment: datetime) -> int:
    return to_epoch_ms(moment)


@pytest.mark.parametrize(
    ("last_seen", "start", "end"),
    [
        # Ordinary week in October (BST): 12:00 BST on the 13th -> 12:00 BST on the 20th.
        (datetime(2026, 10, 13, 11, 0, tzinfo=UTC), date(2026, 10, 13), date(2026, 10, 20)),
        # Across BST -> GMT: 12:00 BST on the 20th + 7 x 24 h = 11:00 GMT on the 27th.
        (datetime(2026, 10, 20, 11, 0, tzinfo=UTC), date(2026, 10, 20), date(2026, 10, 27)),
        # Seen at 00:30 BST on the 25th (23:30 UTC on the 24th): the day is the 25th.
        (datetime(2026, 10, 24, 23, 30, tzinfo=UTC), date(2026, 10, 25), date(2026, 10, 31)),
        # Across GMT -> BST: 23:30 GMT on 28 March + 7 x 24 h = 00:30 BST on 5 April.
        (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), date(2026, 3, 28), date(2026, 4, 5)),
        (datetime(2026, 3, 25, 12, 0, tzinfo=UTC), date(2026, 3, 25), date(2026, 4, 1)),
    ],
)
def test_vle_absence_window_runs_from_last_seen_day_to_the_deadline_day(
    last_seen: datetime, start: date, end: date
) -> None:
    nudge = vle_absence_nudge(VLE, PSEUDONYM, ms(last_seen), LONDON)
    assert nudge.explanation.window_start == start
    assert nudge.explanation.window_end == end
    assert nudge.created_at == last_seen + timedelta(days=VLE.days)
    assert nudge.nudge_id == nudge_id(VLE.id, VLE.version, PSEUDONYM, start, end)


def test_vle_absence_nudge_explains_itself_without_the_student_id() -> None:
    last_seen = datetime(2026, 10, 20, 11, 0, tzinfo=UTC)
    nudge = vle_absence_nudge(VLE, PSEUDONYM, ms(last_seen), LONDON)
    summary = nudge.explanation.summary
    assert "Tuesday 20 October 2026" in summary
    assert "7 days" in summary
    assert STUDENT not in summary
    assert PSEUDONYM not in summary
    assert nudge.explanation.metrics == {"days_without_vle_activity": 7}
    assert nudge.explanation.sources == ("vle",)
    assert nudge.channels == (Channel.EMAIL, Channel.APP)
    assert nudge.tier is Tier.PROMPT


def test_vle_absence_nudge_id_is_the_same_for_any_moment_on_the_same_days() -> None:
    morning = vle_absence_nudge(VLE, PSEUDONYM, ms(datetime(2026, 10, 20, 8, tzinfo=UTC)), LONDON)
    evening = vle_absence_nudge(VLE, PSEUDONYM, ms(datetime(2026, 10, 20, 18, tzinfo=UTC)), LONDON)
    assert morning.nudge_id == evening.nudge_id
    assert morning.created_at != evening.created_at
