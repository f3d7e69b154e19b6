"""The daily 0-5 engagement score: capped, weighted inputs over the trailing window."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agents.model.eventtime import local_day_of_ms, to_epoch_ms
from agents.model.score import DayFacts, ScoreInputs, band, daily_score, score_inputs, score_of
from schemas.rules import ScoreCaps, ScoreModel, ScoreWeights

LONDON = ZoneInfo("Europe/London")
DEFAULT = ScoreModel()
DAY = date(2026, 11, 11).toordinal()  # a Wednesday in term


def week(*facts: DayFacts, end: int = DAY) -> dict[int, DayFacts]:
    """The given facts on consecutive days ending on ``end``."""
    return {end - len(facts) + 1 + n: f for n, f in enumerate(facts)}


def score(facts: dict[int, DayFacts], model: ScoreModel = DEFAULT, day: int = DAY) -> float:
    return score_of(score_inputs(facts, day, model.window_days), model)


# -- hand-computed examples -------------------------------------------------------------------


def test_the_defaults_are_the_documented_weights_and_caps() -> None:
    assert DEFAULT.window_days == 7
    assert DEFAULT.weights == ScoreWeights(
        attendance=2.0, campus_days=1.0, vle_days=1.5, vle_actions=0.5
    )
    assert DEFAULT.caps == ScoreCaps(campus_days=4, vle_days=5, vle_actions=60)


@pytest.mark.parametrize("name", ["campus_days", "vle_days"])
def test_a_day_cap_longer_than_the_window_is_refused(name: str) -> None:
    # Full marks would need more active days than the window holds: out of reach.
    with pytest.raises(ValidationError, match=f"caps.{name} is 6 but the window has only 5"):
        ScoreModel(window_days=5, caps=ScoreCaps(**{name: 6}))
    other = "vle_days" if name == "campus_days" else "campus_days"
    with pytest.raises(ValidationError, match=f"caps.{name} is 7 but the window has only 1"):
        ScoreModel(window_days=1, caps=ScoreCaps(**{name: 7, other: 1}))
    # A cap equal to the window is fine: full marks means active every day.
    assert getattr(ScoreModel(window_days=6, caps=ScoreCaps(**{name: 6})).caps, name) == 6
    assert ScoreModel(window_days=1, caps=ScoreCaps(campus_days=1, vle_days=1)).window_days == 1


def test_a_student_doing_everything_up_to_the_caps_scores_five() -> None:
    # 4/4 sessions attended, on campus 4 days, active on the VLE 5 days with 60 actions.
    facts = week(
        DayFacts(present=1, swipes=2, vle=12),
        DayFacts(present=1, swipes=1, vle=12),
        DayFacts(late=1, swipes=3, vle=12),
        DayFacts(present=1, swipes=1, vle=12),
        DayFacts(vle=12),
        DayFacts(),
        DayFacts(),
    )
    inputs = score_inputs(facts, DAY, 7)
    assert inputs == ScoreInputs(
        sessions_attended=4, sessions_expected=4, campus_days=4, vle_days=5, vle_actions=60
    )
    assert score_of(inputs, DEFAULT) == 5.0
    assert band(score_of(inputs, DEFAULT)) == "high"


def test_a_student_missing_every_expected_session_and_doing_nothing_else_scores_zero() -> None:
    facts = week(DayFacts(absent=2), DayFacts(absent=1), DayFacts(absent=1))
    assert score_inputs(facts, DAY, 7).sessions_expected == 4
    assert score(facts) == 0.0
    assert band(score(facts)) == "very low"


def test_a_student_with_no_history_at_all_scores_zero() -> None:
    assert score({}) == 0.0


def test_without_sessions_attendance_is_left_out_and_the_rest_renormalised() -> None:
    # Campus 2 of 4 days (0.5), VLE 5 of 5 days (1.0) with one action each (5/60), and no
    # sessions expected. By hand, over the weights 1 + 1.5 + 0.5 = 3 (attendance left out):
    # 5 * (1*0.5 + 1.5*1.0 + 0.5*5/60) / 3 = 5 * 2.041666 / 3 = 3.40277 -> 3.4.
    facts = week(
        DayFacts(swipes=1, vle=1),
        DayFacts(swipes=4, vle=1),
        DayFacts(vle=1),
        DayFacts(vle=1),
        DayFacts(vle=1),
    )
    inputs = score_inputs(facts, DAY, 7)
    assert inputs == ScoreInputs(0, 0, campus_days=2, vle_days=5, vle_actions=5)
    assert score_of(inputs, DEFAULT) == 3.4
    # Counting attendance as zero would have given 5 * 2.041666 / 5 = 2.04 -> 2.0.
    assert score_of(inputs, DEFAULT) != 2.0


def test_campus_days_alone_without_sessions_score_a_third_of_five() -> None:
    # 5 * 1 / (1 + 1.5 + 0.5) = 1.666 -> 1.7
    assert score_of(ScoreInputs(0, 0, 4, 0, 0), DEFAULT) == 1.7


def test_a_mixed_week_scores_as_computed_by_hand() -> None:
    # Attendance 3/4 (2 * 0.75 = 1.5), campus 2/4 (1 * 0.5), VLE 4/5 days (1.5 * 0.8 = 1.2),
    # 24/60 actions (0.5 * 0.4 = 0.2): 5 * 3.4 / 5 = 3.4.
    facts = week(
        DayFacts(present=1, absent=1, swipes=1, vle=10),
        DayFacts(present=1, excused=2, vle=6),
        DayFacts(late=1, swipes=2, vle=4),
        DayFacts(vle=4),
        DayFacts(),
    )
    inputs = score_inputs(facts, DAY, 7)
    assert inputs == ScoreInputs(3, 4, 2, 4, 24)
    assert score_of(inputs, DEFAULT) == 3.4
    assert band(3.4) == "good"


def test_excused_absences_do_not_count_against_attendance() -> None:
    everything = DayFacts(swipes=1, vle=20)
    excused = week(DayFacts(present=2, excused=3, swipes=1, vle=20), *[everything] * 4)
    assert score_inputs(excused, DAY, 7).sessions_expected == 2
    assert score(excused) == 5.0
    absent = week(DayFacts(present=2, absent=3, swipes=1, vle=20), *[everything] * 4)
    assert score(absent) == 3.8  # 5 * (2 * 2/5 + 1 + 1.5 + 0.5) / 5


def test_late_counts_as_attended() -> None:
    assert DayFacts(present=1, late=2, absent=1).attended == 3
    assert DayFacts(present=1, late=2, absent=1).expected == 4
    on_time = week(DayFacts(present=2, swipes=1))
    late = week(DayFacts(late=2, swipes=1))
    assert score(on_time) == score(late)


def test_active_reports_each_source() -> None:
    day = DayFacts(late=1, vle=0, swipes=3)
    assert day.active("swipe")
    assert day.active("attendance")
    assert not day.active("vle")
    assert not DayFacts(absent=2, excused=1).active("attendance")


def test_score_inputs_as_dict_names_every_count() -> None:
    assert ScoreInputs(1, 2, 3, 4, 5).as_dict() == {
        "sessions_attended": 1,
        "sessions_expected": 2,
        "campus_days": 3,
        "vle_days": 4,
        "vle_actions": 5,
    }


# -- bands --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (0.0, "very low"),
        (0, "very low"),
        (0.5, "very low"),
        (1.0, "very low"),
        (1.1, "low"),
        (2.0, "low"),
        (2.1, "moderate"),
        (3.0, "moderate"),
        (3.1, "good"),
        (4.0, "good"),
        (4.1, "high"),
        (5.0, "high"),
    ],
)
def test_band_names_at_and_around_each_boundary(value: float, name: str) -> None:
    assert band(value) == name


ORDER = ["very low", "low", "moderate", "good", "high"]


@given(a=st.integers(0, 50), b=st.integers(0, 50))
def test_a_higher_score_is_never_in_a_lower_band(a: int, b: int) -> None:
    low, high = sorted((a / 10, b / 10))
    assert ORDER.index(band(low)) <= ORDER.index(band(high))


# -- properties ----------------------------------------------------------------------------------

day_facts = st.builds(
    DayFacts,
    present=st.integers(0, 4),
    late=st.integers(0, 2),
    absent=st.integers(0, 4),
    excused=st.integers(0, 2),
    swipes=st.integers(0, 30),
    vle=st.integers(0, 150),
)
weight = st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_subnormal=False)
score_weights = st.builds(
    ScoreWeights, attendance=weight, campus_days=weight, vle_days=weight, vle_actions=weight
).filter(lambda w: sum(w.model_dump().values()) > 0)


@st.composite
def models(draw: st.DrawFn) -> ScoreModel:
    """Any valid score model: the window first, then day caps that fit inside it."""
    window = draw(st.integers(1, 28))
    caps = ScoreCaps(
        campus_days=draw(st.integers(1, min(7, window))),
        vle_days=draw(st.integers(1, min(7, window))),
        vle_actions=draw(st.integers(1, 500)),
    )
    return ScoreModel(window_days=window, weights=draw(score_weights), caps=caps)


any_model = st.one_of(st.just(DEFAULT), models())
counts = st.integers(0, 1000)
inputs_st = st.builds(
    ScoreInputs,
    sessions_attended=st.integers(0, 40),
    sessions_expected=st.integers(0, 40),
    campus_days=st.integers(0, 28),
    vle_days=st.integers(0, 28),
    vle_actions=counts,
).filter(lambda i: i.sessions_attended <= i.sessions_expected)


@settings(max_examples=150, deadline=None)
@given(inputs=inputs_st, model=any_model)
def test_the_score_is_always_between_zero_and_five(inputs: ScoreInputs, model: ScoreModel) -> None:
    assert 0.0 <= score_of(inputs, model) <= 5.0


@settings(max_examples=100, deadline=None)
@given(facts=st.lists(day_facts, min_size=1, max_size=28), model=any_model)
def test_the_score_of_real_days_is_between_zero_and_five(
    facts: list[DayFacts], model: ScoreModel
) -> None:
    value = score(week(*facts), model)
    assert 0.0 <= value <= 5.0
    assert value == round(value, 1)


@settings(max_examples=100, deadline=None)
@given(model=any_model)
def test_every_valid_model_gives_full_marks_to_a_student_active_every_day(
    model: ScoreModel,
) -> None:
    # Every session attended, on campus and on the VLE every day of the window, with
    # enough VLE actions: each input reaches its cap, so the score is 5.
    facts = week(*[DayFacts(present=1, swipes=1, vle=500)] * model.window_days)
    assert score(facts, model) == 5.0


ACTIVITY = ("present", "late", "swipes", "vle")


@settings(max_examples=150, deadline=None)
@given(
    facts=st.lists(day_facts, min_size=7, max_size=7),
    model=any_model,
    which=st.integers(0, 6),
    field=st.sampled_from(ACTIVITY),
    more=st.integers(1, 100),
)
def test_adding_activity_never_lowers_the_score(
    facts: list[DayFacts], model: ScoreModel, which: int, field: str, more: int
) -> None:
    before = week(*facts)
    after = dict(before)
    day = DAY - 6 + which
    after[day] = replace(before[day], **{field: getattr(before[day], field) + more})
    assert score(after, model) >= score(before, model)


@settings(max_examples=100, deadline=None)
@given(inputs=inputs_st, model=any_model, more=st.integers(1, 100))
def test_raising_any_input_never_lowers_the_score(
    inputs: ScoreInputs, model: ScoreModel, more: int
) -> None:
    base = score_of(inputs, model)
    raised = [
        replace(inputs, campus_days=inputs.campus_days + more),
        replace(inputs, vle_days=inputs.vle_days + more),
        replace(inputs, vle_actions=inputs.vle_actions + more),
        # One more session attended (it was expected too).
        replace(
            inputs,
            sessions_attended=inputs.sessions_attended + 1,
            sessions_expected=inputs.sessions_expected + 1,
        ),
        # An absence marked as attended instead.
        replace(
            inputs,
            sessions_attended=min(inputs.sessions_attended + 1, inputs.sessions_expected),
        ),
    ]
    for better in raised:
        assert score_of(better, model) >= base, better


CAPPED = ("campus_days", "vle_days", "vle_actions")


@settings(max_examples=150, deadline=None)
@given(
    inputs=inputs_st, model=any_model, which=st.sampled_from(CAPPED), above=st.integers(0, 10**6)
)
def test_anything_above_a_cap_scores_exactly_as_the_cap(
    inputs: ScoreInputs, model: ScoreModel, which: str, above: int
) -> None:
    cap = getattr(model.caps, which)
    at_cap = replace(inputs, **{which: cap})
    over = replace(inputs, **{which: cap + above})
    assert score_of(over, model) == score_of(at_cap, model)


@settings(max_examples=150, deadline=None)
@given(
    model=any_model,
    which=st.sampled_from(CAPPED),
    amount=st.integers(0, 10**6),
    sessions=st.integers(0, 10),
)
def test_one_noisy_source_alone_cannot_score_more_than_its_weight_share(
    model: ScoreModel, which: str, amount: int, sessions: int
) -> None:
    # Every other input is zero; with sessions expected (all missed) attendance counts too.
    inputs = replace(ScoreInputs(0, sessions, 0, 0, 0), **{which: amount})
    weights = model.weights
    total = weights.campus_days + weights.vle_days + weights.vle_actions
    if sessions:
        total += weights.attendance
    own = getattr(weights, which)
    ceiling = 0.0 if total <= 0 else round(5 * own / total, 1)
    assert score_of(inputs, model) <= ceiling
    if amount >= getattr(model.caps, which):
        assert score_of(inputs, model) == ceiling


def test_twenty_swipes_a_day_count_no_more_than_one() -> None:
    once = week(*[DayFacts(swipes=1)] * 7)
    twenty = week(*[DayFacts(swipes=20)] * 7)
    assert score(once) == score(twenty) == 1.7  # 5 * 1 / 3: campus days only
    noisy_vle = week(*[DayFacts(vle=10_000)] * 7)
    assert score(noisy_vle) == 3.3  # 5 * (1.5 + 0.5) / 3: the VLE's share and no more


@settings(max_examples=100, deadline=None)
@given(
    spread=st.dictionaries(st.integers(-40, 10), day_facts, max_size=40),
    window=st.integers(1, 28),
    outside=st.lists(day_facts, min_size=2, max_size=2),
)
def test_score_inputs_sums_the_days_in_the_window_and_ignores_the_rest(
    spread: dict[int, DayFacts], window: int, outside: list[DayFacts]
) -> None:
    facts = {DAY + offset: f for offset, f in spread.items()}
    inside = [f for d, f in facts.items() if DAY - window < d <= DAY]
    assert score_inputs(facts, DAY, window) == ScoreInputs(
        sessions_attended=sum(f.present + f.late for f in inside),
        sessions_expected=sum(f.present + f.late + f.absent for f in inside),
        campus_days=sum(1 for f in inside if f.swipes > 0),
        vle_days=sum(1 for f in inside if f.vle > 0),
        vle_actions=sum(f.vle for f in inside),
    )
    # The day before the window and the day after it change nothing.
    changed = dict(facts)
    changed[DAY - window] = outside[0]
    changed[DAY + 1] = outside[1]
    assert score_inputs(changed, DAY, window) == score_inputs(facts, DAY, window)


@settings(max_examples=100, deadline=None)
@given(
    facts=st.dictionaries(st.integers(-40, 0), day_facts, max_size=20),
    history=st.integers(1, 40),
    model=any_model,
)
def test_daily_score_waits_for_a_full_window_of_history(
    facts: dict[int, DayFacts], history: int, model: ScoreModel
) -> None:
    by_day = {DAY + offset: f for offset, f in facts.items()}
    first_day = DAY - history + 1  # ``history`` days seen, today included
    value = daily_score(by_day, DAY, first_day, model)
    if history < model.window_days:
        assert value is None
    else:
        assert value == score_of(score_inputs(by_day, DAY, model.window_days), model)


def test_daily_score_starts_on_the_seventh_day() -> None:
    first = DAY - 10
    facts = {first + n: DayFacts(present=1, swipes=1, vle=12) for n in range(11)}
    assert daily_score(facts, first, first, DEFAULT) is None
    assert daily_score(facts, first + 5, first, DEFAULT) is None
    assert daily_score(facts, first + 6, first, DEFAULT) == 5.0
    assert daily_score(facts, first + 10, first, DEFAULT) == 5.0


# -- the clocks going back ------------------------------------------------------------------------

FALL_BACK = date(2026, 10, 25)  # a Sunday: 02:00 BST becomes 01:00 GMT


def test_the_window_over_the_clocks_going_back_has_seven_days() -> None:
    # Wednesday 21 October to Tuesday 27 October: 7 calendar days, one of them 25 hours long.
    last = date(2026, 10, 27).toordinal()
    facts = {d: DayFacts(swipes=1, vle=1) for d in range(last - 10, last + 5)}
    inputs = score_inputs(facts, last, 7)
    assert inputs.campus_days == 7
    assert inputs.vle_days == 7
    assert inputs.vle_actions == 7
    assert date.fromordinal(last - 6) == date(2026, 10, 21)


def test_events_just_after_midnight_and_before_midnight_land_on_their_london_day() -> None:
    # 00:30 BST on the 25th is 23:30 UTC on the 24th; 23:30 GMT on the 25th is 23:30 UTC.
    early = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    late = datetime(2026, 10, 25, 23, 30, tzinfo=UTC)
    assert early.astimezone(LONDON).strftime("%d %H:%M %Z") == "25 00:30 BST"
    assert late.astimezone(LONDON).strftime("%d %H:%M %Z") == "25 23:30 GMT"
    assert local_day_of_ms(to_epoch_ms(early), LONDON) == FALL_BACK.toordinal()
    assert local_day_of_ms(to_epoch_ms(late), LONDON) == FALL_BACK.toordinal()


def test_a_week_of_swipes_at_half_past_midnight_and_half_past_eleven_over_the_change() -> None:
    # Two swipes each London day, 22 to 28 October, placed by local wall-clock time: the
    # 00:30 ones are BST up to the 25th and GMT after, the 23:30 ones BST up to the 24th.
    first, last = date(2026, 10, 22), date(2026, 10, 28)
    zones = Counter[str]()
    per_day = Counter[int]()
    for n in range((last - first).days + 1):
        local = first + timedelta(days=n)
        for hour, minute in ((0, 30), (23, 30)):
            moment = datetime(local.year, local.month, local.day, hour, minute, tzinfo=LONDON)
            zones[moment.strftime("%Z")] += 1
            per_day[local_day_of_ms(to_epoch_ms(moment), LONDON)] += 1
    assert zones == {"BST": 7, "GMT": 7}  # 00:30 BST on 22-25, 23:30 BST on 22-24
    assert per_day == {first.toordinal() + n: 2 for n in range(7)}
    facts = {d: DayFacts(swipes=count) for d, count in per_day.items()}
    inputs = score_inputs(facts, last.toordinal(), 7)
    assert inputs.campus_days == 7
    assert score_inputs(facts, last.toordinal() + 1, 7).campus_days == 6
    assert score_inputs(facts, last.toordinal() - 1, 7).campus_days == 6
