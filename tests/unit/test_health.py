"""Source health: silent feeds, door readers and registers found against their normal pattern."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.model.health import (
    HealthConfig,
    covers,
    door_gaps,
    find_gaps,
    local_hours,
    pattern_gaps,
    register_gaps,
)
from agents.model.reference import Enrolment, Session
from schemas.health import SourceGap

LONDON = ZoneInfo("Europe/London")
DAY = date(2026, 11, 11).toordinal()  # a Wednesday in term
PAST = range(DAY - 14, DAY)  # the pattern window: Wednesday 28 October to Tuesday 10 November
WEEKDAYS = [d for d in PAST if date.fromordinal(d).weekday() < 5]  # the 10 weekdays in it
WEEKEND = [d for d in PAST if date.fromordinal(d).weekday() >= 5]  # and its 4 weekend days
SATURDAY = date(2026, 11, 14).toordinal()
MONDAY = date(2026, 11, 16).toordinal()
CONFIG = HealthConfig()

Counts = dict[tuple[str, int], int]
History = dict[int, Counts]


def every_day(days: Iterable[int], counts: Mapping[tuple[str, int], int]) -> History:
    """The same counts on each of ``days``."""
    return {d: dict(counts) for d in days}


def lecture(
    module: str = "CS1010", building: str = "Turing", start: int = 10, end: int = 12
) -> Session:
    return Session(f"{module}-{building}-{start}", module, building, start, end)


def enrolled(*modules: str) -> Enrolment:
    return Enrolment(frozenset(modules), sponsored_visa=False, personal_tutor=None)


def test_the_defaults_compare_a_fortnight_of_days_of_the_same_kind() -> None:
    assert CONFIG == HealthConfig(
        pattern_days=14, pattern_min_days=3, pattern_share=1.0, min_expected=8.0
    )
    assert len(WEEKDAYS) == 10
    assert len(WEEKEND) == 4


# -- pattern: a location silent in hours it is normally busy ---------------------------------------


def test_a_vle_feed_busy_at_eleven_all_fortnight_and_silent_today_is_one_gap() -> None:
    history = every_day(PAST, {("all", 11): 20})
    gaps = pattern_gaps("vle", DAY, history, CONFIG)
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.reason == "silent_against_pattern"
    assert (gap.source, gap.location) == ("vle", "all")
    assert gap.day == date(2026, 11, 11)
    assert (gap.start_hour, gap.end_hour) == (11, 12)
    assert gap.affects == ("vle",)
    assert gap.modules == ()
    assert "the VLE feed" in gap.detail
    assert "from 11:00 to 12:00" in gap.detail
    assert "at least 10 of the previous 10 weekdays" in gap.detail


def test_find_gaps_reports_the_silent_vle_hour() -> None:
    activity = {"vle": {**every_day(PAST, {("all", 11): 20}), DAY: {("all", 9): 30}}}
    gaps = find_gaps(DAY, activity, [])
    assert [(g.source, g.start_hour, g.end_hour, g.reason) for g in gaps] == [
        ("vle", 11, 12, "silent_against_pattern")
    ]


def test_a_single_event_in_the_busy_hour_is_not_a_gap() -> None:
    history = every_day(PAST, {("all", 11): 20})
    history[DAY] = {("all", 11): 1}
    assert pattern_gaps("vle", DAY, history, CONFIG) == []


def test_consecutive_silent_hours_merge_into_one_gap() -> None:
    busy = {("all", hour): 40 for hour in (9, 10, 11, 12, 15, 16)}
    history = every_day(PAST, busy)
    history[DAY] = {("all", 9): 35, ("all", 16): 30}  # silent 10-13 and at 15
    gaps = pattern_gaps("vle", DAY, history, CONFIG)
    assert [(g.start_hour, g.end_hour) for g in gaps] == [(10, 13), (15, 16)]
    assert "from 10:00 to 13:00" in gaps[0].detail
    assert "from 15:00 to 16:00" in gaps[1].detail


def test_a_feed_silent_all_day_is_one_gap_per_run_of_busy_hours() -> None:
    busy = {("all", hour): 25 for hour in range(8, 24)}
    history = every_day(PAST, busy)
    gaps = pattern_gaps("vle", DAY, history, CONFIG)
    assert [(g.start_hour, g.end_hour) for g in gaps] == [(8, 24)]
    assert "from 08:00 to 24:00" in gaps[0].detail


def test_a_quiet_location_silent_today_is_not_a_gap() -> None:
    # 2 events an hour: silence by chance is likely (e^-2 ≈ 14%), so it proves nothing.
    history = every_day(PAST, {("all", 11): 2, ("Library", 3): 7})
    assert pattern_gaps("vle", DAY, history, CONFIG) == []
    assert pattern_gaps("swipe", DAY, history, CONFIG) == []


def test_the_expected_rate_threshold_is_a_mean_over_the_previous_days_of_the_same_kind() -> None:
    # 8 a day for the fortnight: a mean of exactly 8 is enough.
    assert len(pattern_gaps("vle", DAY, every_day(PAST, {("all", 11): 8}), CONFIG)) == 1
    # 8 on 9 of the 10 weekdays and 7 on the other: busy on every weekday, but a mean of
    # 79/10 = 7.9 is not.
    history = every_day(WEEKDAYS, {("all", 11): 8})
    history[WEEKDAYS[4]] = {("all", 11): 7}
    assert pattern_gaps("vle", DAY, history, CONFIG) == []
    # ... however busy the weekend was: weekend days are not in a weekday's mean.
    history.update(every_day(WEEKEND, {("all", 11): 500}))
    assert pattern_gaps("vle", DAY, history, CONFIG) == []
    # 12 on 5 weekdays and 4 on the other 5: 80/10 = 8.0 is.
    history = every_day(WEEKDAYS[:5], {("all", 11): 12})
    history.update(every_day(WEEKDAYS[5:], {("all", 11): 4}))
    assert len(pattern_gaps("vle", DAY, history, CONFIG)) == 1
    # 8 on every weekday and nothing at the weekend: the silent weekend days do not dilute
    # the mean (80/14 ≈ 5.7 if they counted).
    history = every_day(WEEKDAYS, {("all", 11): 8})
    history.update(every_day(WEEKEND, {}))
    assert len(pattern_gaps("vle", DAY, history, CONFIG)) == 1
    # With a configured share below 1, the weekdays without events count in the mean as
    # zeros: 9 on 8 of the 10 weekdays is 72/10 = 7.2, not enough; 10 on 8 is 80/10 = 8.0.
    share = HealthConfig(pattern_share=0.8)
    assert pattern_gaps("vle", DAY, every_day(WEEKDAYS[:8], {("all", 11): 9}), share) == []
    history = every_day(WEEKDAYS[:8], {("all", 11): 10})
    assert len(pattern_gaps("vle", DAY, history, share)) == 1


def test_busy_on_only_nine_of_ten_weekdays_is_not_a_pattern() -> None:
    # An hour is normally busy only if it had events on every one of the previous weekdays:
    # a building used on 4 of 5 weekdays by its timetable is quiet on the fifth every week.
    for busy in (7, 8, 9):
        history = every_day(WEEKDAYS[:busy], {("Turing", 10): 100})
        assert pattern_gaps("swipe", DAY, history, CONFIG) == [], busy
    history = every_day(WEEKDAYS, {("Turing", 10): 100})
    assert len(pattern_gaps("swipe", DAY, history, CONFIG)) == 1


def test_a_weekday_silent_after_ten_busy_weekdays_and_silent_weekends_is_a_gap() -> None:
    # 10 events at 11:00 on every weekday and none on the weekend days in between. Counted
    # over all 14 days this would be busy on only 10/14 ≈ 71% of days with a mean of
    # 100/14 ≈ 7.1: not a pattern. Against the weekdays alone it is busy on all 10.
    for day in (DAY, MONDAY):
        earlier = range(day - 14, day)
        weekdays = [d for d in earlier if date.fromordinal(d).weekday() < 5]
        history = every_day(earlier, {})  # the weekend days: silent
        history.update(every_day(weekdays, {("all", 11): 10}))
        assert len(weekdays) == 10
        history[day] = {("all", 15): 40}  # busy in another hour, silent at 11
        gaps = pattern_gaps("vle", day, history, CONFIG)
        assert [(g.start_hour, g.end_hour) for g in gaps] == [(11, 12)], date.fromordinal(day)
        assert "at least 10 of the previous 10 weekdays" in gaps[0].detail


def test_a_weekend_day_is_compared_with_the_previous_weekend_days() -> None:
    # The library is busy at 14:00 on each of the 4 weekend days of the fortnight before
    # Saturday 14 November and silent on every weekday: a silent Saturday is a gap.
    earlier = range(SATURDAY - 14, SATURDAY)
    weekend = [d for d in earlier if date.fromordinal(d).weekday() >= 5]
    history = every_day(earlier, {})
    history.update(every_day(weekend, {("Library", 14): 30}))
    gaps = pattern_gaps("swipe", SATURDAY, history, CONFIG)
    assert [(g.location, g.start_hour, g.end_hour) for g in gaps] == [("Library", 14, 15)]
    assert "at least 4 of the previous 4 weekend days" in gaps[0].detail
    # The same silence on a weekday is not a gap: weekdays are never busy at 14:00.
    assert pattern_gaps("swipe", SATURDAY - 1, history, CONFIG) == []
    # Busy on 3 of the 4 weekend days is not busy on every one of them.
    history = every_day(weekend[:3], {("Library", 14): 30})
    assert pattern_gaps("swipe", SATURDAY, history, CONFIG) == []


def test_too_few_days_of_the_same_kind_make_no_pattern() -> None:
    # Saturday has 4 weekend days in its fortnight: a gap by default (4 of 4 needed) ...
    history = every_day(range(SATURDAY - 14, SATURDAY), {("all", 11): 50})
    assert len(pattern_gaps("vle", SATURDAY, history, CONFIG)) == 1
    # ... but never when more days are needed than there are days of that kind.
    config = HealthConfig(pattern_min_days=5)
    assert pattern_gaps("vle", SATURDAY, history, config) == []
    # A week has only 2 weekend days, fewer than the default pattern_min_days of 3.
    assert pattern_gaps("vle", SATURDAY, history, HealthConfig(pattern_days=7)) == []


def test_days_before_the_pattern_window_do_not_count() -> None:
    # Busy on every day of the fortnight before the window, and on 9 of its 10 weekdays:
    # the earlier days do not make up for the silent tenth.
    history = every_day(range(DAY - 28, DAY - 14), {("all", 11): 50})
    history.update(every_day(WEEKDAYS[:9], {("all", 11): 50}))
    assert pattern_gaps("vle", DAY, history, CONFIG) == []
    history.update(every_day(WEEKDAYS[9:], {("all", 11): 50}))
    assert len(pattern_gaps("vle", DAY, history, CONFIG)) == 1


def test_a_location_seen_only_today_is_not_a_gap() -> None:
    history = {DAY: {("Hub", 10): 50}}
    assert pattern_gaps("swipe", DAY, history, CONFIG) == []


def test_a_silent_swipe_location_affects_swipes_and_attendance() -> None:
    history = every_day(PAST, {("Library", 14): 30, ("Turing", 14): 30})
    history[DAY] = {("Turing", 14): 25}
    gaps = pattern_gaps("swipe", DAY, history, CONFIG)
    assert len(gaps) == 1
    gap = gaps[0]
    assert (gap.source, gap.location) == ("swipe", "Library")
    assert gap.affects == ("swipe", "attendance")
    assert gap.detail.startswith("Library (swipe) had no events from 14:00 to 15:00")


def test_the_vle_gap_affects_only_the_vle() -> None:
    activity = {
        "vle": every_day(PAST, {("all", 20): 50}),
        "swipe": every_day(PAST, {("Library", 12): 50}),
    }
    gaps = find_gaps(DAY, activity, [])
    assert {g.location: g.affects for g in gaps} == {
        "all": ("vle",),
        "Library": ("swipe", "attendance"),
    }


def test_a_shorter_pattern_window_can_be_configured() -> None:
    config = HealthConfig(pattern_days=3, pattern_min_days=3, min_expected=4.0)
    thursday = DAY + 1  # the 3 days before are Monday to Wednesday
    history = every_day(range(thursday - 3, thursday), {("all", 11): 5})
    gaps = pattern_gaps("vle", thursday, history, config)
    assert len(gaps) == 1
    assert "at least 3 of the previous 3 weekdays" in gaps[0].detail
    # Busy weekdays before those 3 days count for nothing.
    history = every_day(range(thursday - 14, thursday - 3), {("all", 11): 50})
    history.update(every_day(range(thursday - 3, thursday), {}))
    assert pattern_gaps("vle", thursday, history, config) == []
    # On Wednesday the 3 days before include a Sunday: only 2 weekdays, fewer than 3.
    assert pattern_gaps("vle", DAY, every_day(range(DAY - 3, DAY), {("all", 11): 5}), config) == []


def test_the_share_of_days_can_be_configured() -> None:
    config = HealthConfig(pattern_share=0.5)  # 5 of the 10 weekdays
    history = every_day(WEEKDAYS[:5], {("all", 11): 20})  # mean 100/10 = 10
    gaps = pattern_gaps("vle", DAY, history, config)
    assert len(gaps) == 1
    assert "at least 5 of the previous 10 weekdays" in gaps[0].detail
    assert pattern_gaps("vle", DAY, every_day(WEEKDAYS[:4], {("all", 11): 25}), config) == []
    assert pattern_gaps("vle", DAY, history, CONFIG) == []  # 10 needed by default


# -- doors: sessions in buildings with readers, and no swipe around them ---------------------------

KNOWN_DOORS = every_day(PAST, {("Turing", 15): 1, ("Noether", 9): 1})


def test_a_session_with_silent_doors_is_a_gap_naming_its_module() -> None:
    swipes = {**KNOWN_DOORS, DAY: {("Noether", 10): 12}}
    gaps = door_gaps(DAY, swipes, [lecture("CS1010", "Turing", 10, 12)], CONFIG)
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.reason == "door_silent_during_session"
    assert (gap.source, gap.location) == ("swipe", "Turing")
    assert (gap.start_hour, gap.end_hour) == (9, 12)  # from the hour before to the end
    assert gap.modules == ("CS1010",)
    assert gap.affects == ("swipe", "attendance")
    assert gap.day == date(2026, 11, 11)
    assert "CS1010" in gap.detail
    assert "no card swipes at Turing from 09:00 to 12:00" in gap.detail


def test_a_swipe_in_the_hour_before_or_during_the_session_means_the_doors_work() -> None:
    session = lecture("CS1010", "Turing", 10, 12)
    for hour in (9, 10, 11):
        swipes = {**KNOWN_DOORS, DAY: {("Turing", hour): 1}}
        assert door_gaps(DAY, swipes, [session], CONFIG) == [], hour


def test_swipes_outside_the_span_or_at_another_building_do_not_count() -> None:
    session = lecture("CS1010", "Turing", 10, 12)
    for seen in (("Turing", 8), ("Turing", 12), ("Noether", 10)):
        swipes = {**KNOWN_DOORS, DAY: {seen: 30}}
        assert len(door_gaps(DAY, swipes, [session], CONFIG)) == 1, seen


def test_a_building_never_seen_swiping_has_no_readers_and_no_gap() -> None:
    swipes = {**KNOWN_DOORS, DAY: {}}
    assert door_gaps(DAY, swipes, [lecture("PS1060", "Hub", 10, 11)], CONFIG) == []
    # Swipes from before the pattern window do not make a building known either.
    swipes[DAY - 15] = {("Hub", 10): 40}
    assert door_gaps(DAY, swipes, [lecture("PS1060", "Hub", 10, 11)], CONFIG) == []


def test_two_modules_sharing_a_building_and_hours_make_one_gap_listing_both() -> None:
    sessions = [
        lecture("MA1020", "Turing", 14, 16),
        lecture("CS1010", "Turing", 14, 16),
        lecture("CS1010", "Turing", 14, 16),  # a second group of the same module
    ]
    gaps = door_gaps(DAY, {**KNOWN_DOORS, DAY: {}}, sessions, CONFIG)
    assert len(gaps) == 1
    assert gaps[0].modules == ("CS1010", "MA1020")
    assert "CS1010, MA1020 had a session there" in gaps[0].detail


def test_sessions_at_different_hours_make_separate_gaps() -> None:
    sessions = [lecture("CS1010", "Turing", 9, 10), lecture("MA1020", "Turing", 14, 15)]
    gaps = door_gaps(DAY, {**KNOWN_DOORS, DAY: {("Turing", 11): 3}}, sessions, CONFIG)
    assert [(g.start_hour, g.end_hour, g.modules) for g in gaps] == [
        (8, 10, ("CS1010",)),
        (13, 15, ("MA1020",)),
    ]
    assert len({g.gap_id for g in gaps}) == 2


def test_a_session_at_midnight_checks_from_midnight() -> None:
    gaps = door_gaps(DAY, {**KNOWN_DOORS, DAY: {}}, [lecture("CS1010", "Turing", 0, 1)], CONFIG)
    assert [(g.start_hour, g.end_hour) for g in gaps] == [(0, 1)]


# -- registers: modules taught today with no attendance marks at all -------------------------------


def test_a_module_taught_today_without_a_single_mark_is_a_gap() -> None:
    sessions = [lecture("EC1040", "Keynes", 14, 15), lecture("EC1040", "Keynes", 9, 10)]
    gaps = register_gaps(DAY, {}, sessions)
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.reason == "register_without_marks"
    assert (gap.source, gap.location) == ("attendance", "EC1040")
    assert gap.modules == ("EC1040",)
    assert gap.affects == ("attendance",)
    assert (gap.start_hour, gap.end_hour) == (9, 15)
    assert gap.detail.startswith("EC1040 had 2 timetabled session(s)")


def test_any_mark_that_day_means_the_register_was_taken() -> None:
    sessions = [lecture("EC1040", "Keynes", 14, 15)]
    assert register_gaps(DAY, {("EC1040", 19): 1}, sessions) == []  # uploaded in the evening
    assert register_gaps(DAY, {("EC1040", 14): 30}, sessions) == []


def test_marks_for_another_module_do_not_count() -> None:
    sessions = [lecture("EC1040", "Keynes", 14, 15), lecture("ST1050", "Noether", 15, 16)]
    gaps = register_gaps(DAY, {("ST1050", 15): 20}, sessions)
    assert [g.location for g in gaps] == ["EC1040"]


def test_find_gaps_reads_only_todays_marks_for_registers() -> None:
    sessions = [lecture("EC1040", "Keynes", 14, 15)]
    yesterday = {"attendance": {DAY - 1: {("EC1040", 14): 30}}}
    assert [g.reason for g in find_gaps(DAY, yesterday, sessions)] == ["register_without_marks"]
    today = {"attendance": {DAY: {("EC1040", 14): 30}}}
    assert find_gaps(DAY, today, sessions) == []


def test_no_sessions_and_no_activity_is_no_gap() -> None:
    assert find_gaps(DAY, {}, []) == []


# -- gap ids ---------------------------------------------------------------------------------------


def _everything_silent(day: int) -> list[SourceGap]:
    past = range(day - 14, day)
    activity = {
        "vle": every_day(past, {("all", 11): 20}),
        "swipe": every_day(past, {("Turing", 11): 20}),
    }
    sessions = [lecture("CS1010", "Turing", 10, 12), lecture("MA1020", "Noether", 14, 15)]
    return find_gaps(day, activity, sessions)


def test_gap_ids_are_deterministic_and_distinct() -> None:
    first, again = _everything_silent(DAY), _everything_silent(DAY)
    assert [g.reason for g in first] == [
        "silent_against_pattern",
        "silent_against_pattern",
        "door_silent_during_session",
        "register_without_marks",
        "register_without_marks",
    ]
    assert [g.gap_id for g in first] == [g.gap_id for g in again]
    assert first == again
    assert len({g.gap_id for g in first}) == len(first)
    assert all(g.gap_id.startswith("g_") and len(g.gap_id) == 26 for g in first)


def test_gap_ids_differ_between_days() -> None:
    today = {g.gap_id for g in _everything_silent(DAY)}
    tomorrow = {g.gap_id for g in _everything_silent(DAY + 1)}
    assert len(today) == len(tomorrow) == 5
    assert today.isdisjoint(tomorrow)


def test_gaps_round_trip_through_json() -> None:
    for gap in _everything_silent(DAY):
        assert SourceGap.model_validate_json(gap.model_dump_json()) == gap


# -- covers ----------------------------------------------------------------------------------------


def test_a_module_gap_covers_the_modules_students_only() -> None:
    gap = register_gaps(DAY, {}, [lecture("EC1040", "Keynes", 14, 15)])[0]
    assert covers(gap, enrolled("EC1040", "MA1020"))
    assert not covers(gap, enrolled("MA1020", "CS1010"))
    assert not covers(gap, enrolled())


def test_a_door_gap_covers_students_of_any_of_its_modules() -> None:
    sessions = [lecture("MA1020", "Turing", 14, 16), lecture("CS1010", "Turing", 14, 16)]
    gap = door_gaps(DAY, {**KNOWN_DOORS, DAY: {}}, sessions, CONFIG)[0]
    assert covers(gap, enrolled("CS1010"))
    assert covers(gap, enrolled("MA1020", "PH1030"))
    assert not covers(gap, enrolled("PH1030"))


def test_a_student_without_a_roster_entry_is_covered_by_every_gap() -> None:
    for gap in _everything_silent(DAY):
        assert covers(gap, None)


def test_a_gap_without_modules_covers_everyone() -> None:
    gap = pattern_gaps("vle", DAY, every_day(PAST, {("all", 11): 20}), CONFIG)[0]
    assert gap.modules == ()
    for enrolment in (enrolled("CS1010"), enrolled(), None):
        assert covers(gap, enrolment)


# -- properties ------------------------------------------------------------------------------------

LOCATIONS = ("all", "Turing", "Library")
day_counts = st.dictionaries(
    st.tuples(st.sampled_from(LOCATIONS), st.integers(0, 23)), st.integers(1, 60), max_size=12
)


CHECKED_DAYS = st.sampled_from([DAY, SATURDAY, MONDAY])


@settings(max_examples=60, deadline=None)
@given(
    day=CHECKED_DAYS,
    past=st.lists(day_counts, min_size=14, max_size=14),
    today=day_counts,
    extra=day_counts,
)
def test_more_activity_today_never_adds_a_gap(
    day: int, past: list[Counts], today: Counts, extra: Counts
) -> None:
    sessions = [lecture("CS1010", "Turing", 10, 12), lecture("MA1020", "Library", 15, 16)]

    def gaps_with(counts: Counts) -> set[tuple[str, str, str, int]]:
        # Compared hour by hour: more activity may split a run of silent hours in two.
        history = {day - 14 + n: counts_ for n, counts_ in enumerate(past)}
        history[day] = counts
        activity = {"vle": history, "swipe": history, "attendance": {day: counts}}
        return {
            (g.source, g.location, g.reason, hour)
            for g in find_gaps(day, activity, sessions)
            for hour in range(g.start_hour, g.end_hour)
        }

    more = dict(today)
    for key, count in extra.items():
        more[key] = more.get(key, 0) + count
    assert gaps_with(more) <= gaps_with(today)


@settings(max_examples=60, deadline=None)
@given(day=CHECKED_DAYS, past=st.lists(day_counts, min_size=14, max_size=14))
def test_activity_in_every_hour_seen_before_means_no_pattern_gap(
    day: int, past: list[Counts]
) -> None:
    history: History = {day - 14 + n: counts for n, counts in enumerate(past)}
    history[day] = {key: 1 for counts in past for key in counts}
    assert pattern_gaps("swipe", day, history, CONFIG) == []
    assert pattern_gaps("vle", day, history, CONFIG) == []


# -- a realistic fortnight ------------------------------------------------------------------------

# Weekday (0 = Monday) → sessions: a 9:00 lecture in Turing every weekday, as teaching
# buildings usually have, and a few others.
TIMETABLE: dict[int, list[tuple[str, str, int, int]]] = {
    0: [("CS1010", "Turing", 9, 10), ("MA1020", "Noether", 11, 12), ("EC1040", "Keynes", 14, 15)],
    1: [("PH1030", "Turing", 9, 10), ("ST1050", "Noether", 15, 16), ("CS1010", "Turing", 10, 11)],
    2: [("CS1010", "Turing", 9, 11), ("EC1040", "Keynes", 9, 10), ("MA1020", "Noether", 14, 16)],
    3: [("MA1020", "Turing", 9, 10), ("EC1040", "Keynes", 15, 16), ("PH1030", "Turing", 11, 12)],
    4: [("PS1060", "Turing", 9, 10), ("PS1060", "Hub", 10, 11), ("CS1010", "Turing", 11, 12)],
    5: [],
    6: [],
}
VLE_PROFILE = (
    3,
    2,
    1,
    0,
    0,
    1,
    2,
    6,
    15,
    30,
    45,
    55,
    50,
    40,
    35,
    30,
    30,
    35,
    45,
    55,
    60,
    50,
    30,
    10,
)


def sessions_on(day: int) -> list[Session]:
    weekday = date.fromordinal(day).weekday()
    return [Session(f"{m}-{b}-{s}-{day}", m, b, s, e) for m, b, s, e in TIMETABLE[weekday]]


def realistic_activity(first: int, last: int, seed: int = 7) -> dict[str, History]:
    """Activity of a mid-sized campus: VLE around the clock, library daily, teaching weekdays."""
    rng = random.Random(seed)
    vle: History = {}
    swipe: History = {}
    marks: History = {}
    for day in range(first, last + 1):
        weekend = date.fromordinal(day).weekday() >= 5
        scale = 0.5 if weekend else 1.0
        vle[day] = {}
        for hour, mean in enumerate(VLE_PROFILE):
            count = round(rng.gauss(mean * scale, (mean * scale) ** 0.5)) if mean else 0
            if count > 0:
                vle[day][("all", hour)] = count
        swipe[day] = {}
        for hour in range(9, 20):
            swipe[day][("Library", hour)] = rng.randint(4, 8) if weekend else rng.randint(10, 25)
        marks[day] = {}
        for session in sessions_on(day):
            for hour in range(session.start_hour - 1, session.end_hour):
                key = (session.building, hour)
                swipe[day][key] = swipe[day].get(key, 0) + rng.randint(25, 60)
            marks[day][(session.module, session.start_hour)] = rng.randint(20, 40)
    return {"vle": vle, "swipe": swipe, "attendance": marks}


FIRST = DAY - 28  # four weeks of history: a full pattern window before each day checked


def test_a_normal_weekday_after_a_realistic_fortnight_has_no_gaps() -> None:
    activity = realistic_activity(FIRST, DAY)
    weekdays = [d for d in range(DAY - 9, DAY + 1) if date.fromordinal(d).weekday() < 5]
    assert len(weekdays) == 8  # Monday 2 November to Wednesday 11 November
    for day in weekdays:
        assert find_gaps(day, activity, sessions_on(day)) == [], date.fromordinal(day)


def test_the_same_week_with_the_vle_feed_down_all_morning_is_one_vle_gap() -> None:
    activity = realistic_activity(FIRST, DAY)
    activity["vle"][DAY] = {k: v for k, v in activity["vle"][DAY].items() if k[1] >= 13}
    gaps = find_gaps(DAY, activity, sessions_on(DAY))
    assert [(g.source, g.start_hour, g.end_hour) for g in gaps] == [("vle", 8, 13)]


def test_the_same_week_with_turing_doors_offline_is_a_door_gap_and_a_pattern_gap() -> None:
    activity = realistic_activity(FIRST, DAY)
    activity["swipe"][DAY] = {k: v for k, v in activity["swipe"][DAY].items() if k[0] != "Turing"}
    gaps = find_gaps(DAY, activity, sessions_on(DAY))
    # Turing is busy at 8:00 and 9:00 every weekday (the 9:00 lectures): that silence is a
    # pattern gap. At 10:00 it is busy only from Tuesday to Friday, 8 of the 10 previous
    # weekdays, so 10:00 is not normally busy; the door gap still spans the CS1010 session.
    assert [(g.reason, g.location, g.start_hour, g.end_hour, g.modules) for g in gaps] == [
        ("silent_against_pattern", "Turing", 8, 10, ()),
        ("door_silent_during_session", "Turing", 8, 11, ("CS1010",)),
    ]


def test_a_normal_weekend_after_a_realistic_week_has_no_gaps() -> None:
    # Teaching buildings are closed at weekends: that is their normal pattern, not a fault.
    # The 9:00 hour in Turing is busy on every weekday, but a weekend day is compared only
    # with the previous weekend days, when Turing was closed. (Compared with all the previous
    # days, a Saturday was reported "silent_against_pattern", and that gap, having no
    # modules, covered every student's swipe and attendance data for the whole weekend.)
    saturday = SATURDAY
    activity = realistic_activity(saturday - 14, saturday + 1)
    for day in (saturday, saturday + 1):
        assert find_gaps(day, activity, sessions_on(day)) == [], date.fromordinal(day)


def test_an_hour_busy_tuesday_to_friday_is_not_a_monday_gap() -> None:
    # A weekly timetable: Turing is busy at 10:00 on Tuesday to Friday (people arriving for
    # 11:00 lectures, or at a 10:00 one) and never on a Monday. That is 8 of the previous 10
    # weekdays, exactly the 80% share, so every ordinary Monday is reported silent against
    # its pattern, and the gap (no modules) covers every student's swipes and attendance.
    # The silence recurs on the same weekday every week: it is the building's timetable, not
    # a fault. Fails while agents/model/health.py counts 4 of 5 weekdays (pattern_share = 0.8,
    # ceil(0.8 * 10) = 8) as "normally busy".
    earlier = range(MONDAY - 14, MONDAY)
    history = every_day(earlier, {})
    for d in earlier:
        if 1 <= date.fromordinal(d).weekday() <= 4:
            history[d] = {("Turing", 10): 40}
    assert sum(1 for d in earlier if history[d]) == 8
    history[MONDAY] = {("Turing", 9): 40}
    assert pattern_gaps("swipe", MONDAY, history, CONFIG) == []


# -- the clocks changing ---------------------------------------------------------------------------


def vle_by_local_hour(first: date, last: date, per_utc_hour: int) -> History:
    """A VLE feed with steady traffic every hour, bucketed by London day and hour as decoded."""
    history: History = {}
    moment = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(hours=2)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    while moment < end:
        local = (moment + timedelta(minutes=30)).astimezone(LONDON)
        counts = history.setdefault(local.date().toordinal(), {})
        counts[("all", local.hour)] = counts.get(("all", local.hour), 0) + per_utc_hour
        moment += timedelta(hours=1)
    return history


def test_local_hours_are_the_hours_that_exist_on_the_day() -> None:
    forward = date(2026, 3, 29).toordinal()  # 01:00 GMT becomes 02:00 BST
    assert local_hours(forward, LONDON) == [0, *range(2, 24)]
    assert len(local_hours(forward, LONDON)) == 23
    assert local_hours(DAY, LONDON) == list(range(24))
    # 25 October 2026 has 25 hours, but 01:00 happens twice: 24 distinct local hours.
    assert local_hours(date(2026, 10, 25).toordinal(), LONDON) == list(range(24))
    assert local_hours(forward, ZoneInfo("UTC")) == list(range(24))


def test_the_long_day_when_the_clocks_go_back_has_no_gap() -> None:
    day = date(2026, 10, 25)  # 25 hours: 01:00-02:00 happens twice
    history = vle_by_local_hour(day - timedelta(days=15), day, 30)
    assert history[day.toordinal()][("all", 1)] == 60
    assert find_gaps(day.toordinal(), {"vle": history}, []) == []


def test_the_short_day_when_the_clocks_go_forward_has_no_gap() -> None:
    # On Sunday 29 March 2026 01:00 GMT becomes 02:00 BST: the local hour 01:00 does not
    # exist, so a VLE feed that is steadily busy overnight has no events "at 01:00" although
    # nothing went wrong. It must not be reported as silent against its pattern.
    day = date(2026, 3, 29)
    history = vle_by_local_hour(day - timedelta(days=15), day, 30)
    assert ("all", 1) not in history[day.toordinal()]
    assert all(history[d][("all", 1)] == 30 for d in range(day.toordinal() - 14, day.toordinal()))
    assert find_gaps(day.toordinal(), {"vle": history}, []) == []


def test_the_hours_checked_follow_the_zone_given() -> None:
    # The same counts checked as if they were UTC hours, when 01:00 exists on 29 March: the
    # missing hour is then a real silence.
    day = date(2026, 3, 29)
    history = vle_by_local_hour(day - timedelta(days=15), day, 30)
    gaps = find_gaps(day.toordinal(), {"vle": history}, [], zone=ZoneInfo("UTC"))
    assert [(g.source, g.start_hour, g.end_hour) for g in gaps] == [("vle", 1, 2)]
    assert pattern_gaps("vle", day.toordinal(), history, CONFIG, LONDON) == []
