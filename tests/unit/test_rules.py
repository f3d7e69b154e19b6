"""The engagement model's decisions: each default rule on a crafted case and its near miss."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.model.reference import Period
from agents.model.rules import evaluate_day, nudge_id
from agents.model.rulestate import RuleState
from agents.model.score import DayFacts, daily_score
from agents.model.student import Student
from schemas.nudges import Route, Tier
from schemas.rules import Mode
from tests.unit.build import DEFAULTS, LONDON, PSEUDONYM, days, only, run, student

D0 = date(2026, 9, 28).toordinal()  # a Monday
FULL = {"present": 1, "swipes": 2, "vle": 12}


def when(n: int) -> date:
    return date.fromordinal(D0 + n)


# -- no VLE activity for 7 days -------------------------------------------------------------

VLE = only("no_vle_activity_7d")


def test_seven_days_without_the_vle_prompts_the_student_once_with_the_reason() -> None:
    who = student(days(D0, D0 + 9, vle=3), D0)
    (nudge,) = run(VLE, who, D0, D0 + 30)
    assert nudge.rule_id == "no_vle_activity_7d"
    assert nudge.tier is Tier.PROMPT
    assert nudge.route is Route.STUDENT
    assert (nudge.explanation.window_start, nudge.explanation.window_end) == (when(10), when(16))
    assert "since Wednesday 7 October 2026: that is 7 days" in nudge.explanation.summary
    assert nudge.explanation.metrics == {"days_without_activity": 7}
    assert nudge.nudge_id == nudge_id("no_vle_activity_7d", 2, PSEUDONYM, when(10), when(16))


def test_six_days_without_the_vle_is_a_near_miss() -> None:
    who = student(days(D0, D0 + 9, vle=3) | days(D0 + 16, D0 + 16, vle=1), D0)
    assert run(VLE, who, D0, D0 + 22) == []


def test_a_new_absence_after_coming_back_prompts_again_after_the_cooldown() -> None:
    facts = days(D0, D0 + 9, vle=3) | days(D0 + 30, D0 + 30, vle=1)
    nudges = run(VLE, student(facts, D0), D0, D0 + 45)
    assert [n.explanation.window_end for n in nudges] == [when(16), when(37)]


def test_a_student_never_seen_on_the_vle_is_prompted_a_week_after_first_sight() -> None:
    who = student(days(D0, D0 + 20, swipes=1), D0)
    (nudge,) = run(VLE, who, D0, D0 + 20)
    assert nudge.explanation.window_end == when(6)


# -- attendance -----------------------------------------------------------------------------

ATT14 = only("attendance_below_50pct_14d")


def test_attendance_below_half_of_at_least_four_sessions_prompts() -> None:
    facts = days(D0, D0 + 2, present=1) | days(D0 + 3, D0 + 8, absent=1)
    # Term started a week before these marks, so the 14-day window is covered by day 6.
    (nudge,) = run(ATT14, student(facts, D0, term_start=D0 - 7), D0, D0 + 8)
    # 3 of 7 on day 6 is the first rate below 50% (3 of 6 is exactly half).
    assert nudge.explanation.window_end == when(6)
    assert nudge.explanation.metrics["sessions_attended"] == 3
    assert nudge.explanation.metrics["sessions_expected"] == 7
    assert "you attended 3 of the 7 timetabled sessions" in nudge.explanation.summary
    assert "(42%)" in nudge.explanation.summary


def test_exactly_half_is_a_near_miss_and_so_are_too_few_sessions() -> None:
    alternate = {D0 + n: DayFacts(absent=1) if n % 2 else DayFacts(present=1) for n in range(14)}
    assert run(ATT14, student(alternate, D0), D0, D0 + 13) == []
    three = days(D0, D0, present=1) | days(D0 + 1, D0 + 2, absent=1)
    assert run(ATT14, student(three, D0), D0, D0 + 13) == []


def test_excused_absences_do_not_count_against_the_student() -> None:
    facts = days(D0, D0 + 1, present=1) | days(D0 + 2, D0 + 9, excused=1)
    assert run(ATT14, student(facts, D0), D0, D0 + 13) == []


def test_four_weeks_below_half_invites_the_personal_tutor() -> None:
    rules = only("attendance_below_50pct_28d")
    facts = {D0 + n: DayFacts(present=1) if n % 4 == 0 else DayFacts(absent=1) for n in range(12)}
    (nudge,) = run(rules, student(facts, D0), D0, D0 + 27)
    assert nudge.tier is Tier.INVITATION
    assert nudge.route is Route.PERSONAL_TUTOR
    assert nudge.channels == ()
    assert nudge.explanation.metrics["sessions_expected"] >= 8


# -- no activity from any source -------------------------------------------------------------


def test_fourteen_days_without_any_activity_invites_the_tutor() -> None:
    rules = only("no_activity_14d")
    who = student(days(D0, D0 + 4, **FULL), D0)
    (nudge,) = run(rules, who, D0, D0 + 25)
    assert nudge.explanation.window_end == when(18)
    assert nudge.tier is Tier.INVITATION


def test_one_swipe_inside_the_fortnight_is_a_near_miss() -> None:
    rules = only("no_activity_14d")
    who = student(days(D0, D0 + 4, **FULL) | days(D0 + 10, D0 + 10, swipes=1), D0)
    assert run(rules, who, D0, D0 + 23) == []


# -- engagement score rules ------------------------------------------------------------------


def test_a_score_at_or_below_one_for_fourteen_days_invites_the_tutor() -> None:
    rules = only("sustained_low_score_14d")
    who = student(days(D0, D0, vle=1), D0)
    (nudge,) = run(rules, who, D0, D0 + 25)
    # Scores exist from the seventh day (a full window) and are all very low.
    assert nudge.explanation.window_end == when(19)
    assert nudge.explanation.score is not None and nudge.explanation.score <= 1
    assert nudge.explanation.band == "very low"
    assert "(very low)" in nudge.explanation.summary


def test_one_good_day_breaks_a_low_run() -> None:
    rules = only("sustained_low_score_14d")
    facts = days(D0, D0, vle=1) | days(D0 + 12, D0 + 12, swipes=1, vle=60)
    assert run(rules, student(facts, D0), D0, D0 + 25) == []


def test_a_drop_of_two_points_below_the_students_own_baseline_prompts() -> None:
    rules = only("score_drop_2pt_28d")
    who = student(days(D0, D0 + 34, **FULL), D0)
    (nudge,) = run(rules, who, D0, D0 + 45)
    end = nudge.explanation.window_end.toordinal()
    assert nudge.explanation.metrics["score_drop"] >= 2
    assert "against your own average of" in nudge.explanation.summary
    inputs = nudge.explanation.score_inputs
    assert inputs["vle_actions"] < 12 * 7
    assert end > D0 + 34


def test_steady_moderate_engagement_is_not_a_drop() -> None:
    rules = only("score_drop_2pt_28d")
    facts = {D0 + n: DayFacts(vle=3, swipes=1 if n % 2 else 0) for n in range(60)}
    assert run(rules, student(facts, D0), D0, D0 + 59) == []


# -- sponsored-visa contact points -----------------------------------------------------------

VISA = only("visa_no_contact_21d")


def test_a_sponsored_student_without_contact_for_21_days_is_referred_never_messaged() -> None:
    facts = days(D0, D0, present=1) | days(D0 + 1, D0 + 30, vle=5, absent=1)
    (nudge,) = run(VISA, student(facts, D0, sponsored_visa=True), D0, D0 + 30)
    assert nudge.tier is Tier.REFERRAL
    assert nudge.route is Route.COMPLIANCE
    assert nudge.channels == ()
    assert nudge.explanation.window_end == when(21)
    assert "since Monday 28 September 2026 (21 days)" in nudge.explanation.summary


def test_the_visa_rule_ignores_students_without_a_sponsored_visa() -> None:
    facts = days(D0, D0, present=1) | days(D0 + 1, D0 + 30, vle=5, absent=1)
    assert run(VISA, student(facts, D0), D0, D0 + 30) == []


def test_one_attended_session_resets_the_visa_clock() -> None:
    facts = days(D0, D0, present=1) | days(D0 + 5, D0 + 5, late=1)
    assert run(VISA, student(facts, D0, sponsored_visa=True), D0, D0 + 25) == []


# -- escalation ------------------------------------------------------------------------------

ESCALATE = only("no_vle_activity_7d", "prompt_not_recovered_7d")


def test_no_recovery_a_week_after_a_prompt_invites_the_tutor() -> None:
    who = student(days(D0, D0 + 9, **FULL), D0)
    prompt, invitation = run(ESCALATE, who, D0, D0 + 30)
    assert prompt.tier is Tier.PROMPT
    assert invitation.rule_id == "prompt_not_recovered_7d"
    assert invitation.tier is Tier.INVITATION
    assert invitation.explanation.window_start == prompt.explanation.window_end
    assert invitation.explanation.window_end == when(23)
    assert "no_vle_activity_7d" in invitation.explanation.summary


def test_recovery_after_a_prompt_means_no_escalation() -> None:
    facts = days(D0, D0 + 9, **FULL) | days(D0 + 17, D0 + 30, **FULL)
    nudges = run(ESCALATE, student(facts, D0), D0, D0 + 30)
    assert [n.rule_id for n in nudges] == ["no_vle_activity_7d"]


def test_a_shadow_prompt_is_not_escalated() -> None:
    rules = only("prompt_not_recovered_7d", "no_vle_activity_7d")
    shadow = tuple(
        r.model_copy(update={"mode": Mode.SHADOW}) if r.id == "no_vle_activity_7d" else r
        for r in rules.rules
    )
    rules = rules.model_copy(update={"rules": shadow})
    (nudge,) = run(rules, student(days(D0, D0 + 9, **FULL), D0), D0, D0 + 30)
    assert nudge.mode == "shadow"


# -- exemptions, data gaps, shadow mode ------------------------------------------------------


def test_an_exemption_suppresses_the_nudge_and_says_why() -> None:
    placement = Period("placement", D0 + 12, D0 + 60)
    who = student(days(D0, D0 + 9, vle=3), D0, exemptions=(placement,))
    (nudge,) = run(VLE, who, D0, D0 + 40)
    assert nudge.suppressed == "exemption"
    assert nudge.explanation.notes == (
        "Exempt: placement from Saturday 10 October 2026 to Friday 27 November 2026.",
    )


def test_an_exemption_outside_the_window_does_not_suppress() -> None:
    leave = Period("authorised_absence", D0, D0 + 3)
    who = student(days(D0, D0 + 9, vle=3), D0, exemptions=(leave,))
    (nudge,) = run(VLE, who, D0, D0 + 20)
    assert nudge.suppressed is None


def test_a_data_gap_never_produces_a_nudge_and_the_rule_waits_for_clean_data() -> None:
    gaps = {D0 + 12: {"vle": "Sat 10 Oct 2026: the VLE feed had no events"}}
    who = student(days(D0, D0 + 9, vle=3), D0, gaps=gaps)
    suppressed, sent = run(VLE, who, D0, D0 + 30)
    assert suppressed.suppressed == "data_gap"
    assert suppressed.explanation.window_end == when(16)
    assert "the VLE feed had no events" in suppressed.explanation.notes[0]
    # Once the window no longer covers the gap the absence is real, and it is sent.
    assert sent.suppressed is None
    assert (sent.explanation.window_start, sent.explanation.window_end) == (when(13), when(19))


def test_a_gap_on_another_source_does_not_hold_a_rule_back() -> None:
    gaps = {D0 + 12: {"swipe": "doors offline"}}
    (nudge,) = run(VLE, student(days(D0, D0 + 9, vle=3), D0, gaps=gaps), D0, D0 + 20)
    assert nudge.suppressed is None


def test_a_shadow_rule_decides_as_live_would_but_is_marked_shadow() -> None:
    shadow = only("no_vle_activity_7d", mode=Mode.SHADOW)
    live = run(VLE, student(days(D0, D0 + 9, vle=3), D0), D0, D0 + 20)
    (nudge,) = run(shadow, student(days(D0, D0 + 9, vle=3), D0), D0, D0 + 20)
    assert nudge.mode == "shadow"
    assert nudge.nudge_id == live[0].nudge_id


# -- time ------------------------------------------------------------------------------------


def test_decisions_are_dated_in_london_time_across_the_clocks_going_back() -> None:
    clocks_back = date(2026, 10, 25).toordinal()
    before = student(days(clocks_back - 8, clocks_back - 8, vle=1), clocks_back - 8)
    (nudge,) = run(VLE, before, clocks_back - 8, clocks_back + 1)
    assert nudge.explanation.window_end == date(2026, 10, 24)
    assert nudge.created_at == datetime(2026, 10, 24, 23, 59, 59, tzinfo=LONDON)
    assert nudge.created_at.utcoffset() == timedelta(hours=1)
    after = student(days(clocks_back - 7, clocks_back - 7, vle=1), clocks_back - 7)
    (nudge,) = run(VLE, after, clocks_back - 7, clocks_back + 1)
    assert nudge.explanation.window_end == date(2026, 10, 25)
    assert nudge.created_at.utcoffset() == timedelta(0)


def test_nothing_is_decided_before_the_students_first_day() -> None:
    who = student({}, D0 + 5)
    assert evaluate_day(DEFAULTS, who, D0, LONDON) == []
    assert who.states == {}


# -- properties ------------------------------------------------------------------------------

day_facts = st.builds(
    DayFacts,
    present=st.integers(0, 2),
    late=st.integers(0, 1),
    absent=st.integers(0, 2),
    excused=st.integers(0, 1),
    swipes=st.integers(0, 3),
    vle=st.sampled_from([0, 0, 0, 1, 5, 40]),
)
histories = st.lists(day_facts, min_size=1, max_size=50).map(
    lambda facts: {D0 + n: f for n, f in enumerate(facts)}
)


def _first_breach(facts: dict[int, DayFacts], last: int) -> int | None:
    # Not before the whole 14-day window lies in the term, counted from the first day (D0).
    for end in range(D0 + 13, last + 1):
        window = [facts.get(d, DayFacts()) for d in range(end - 13, end + 1)]
        expected = sum(f.expected for f in window)
        attended = sum(f.attended for f in window)
        if expected >= 4 and attended / expected < 0.5:
            return end
    return None


@settings(max_examples=150, deadline=None)
@given(histories)
def test_the_attendance_rule_fires_first_exactly_where_the_arithmetic_says(
    facts: dict[int, DayFacts],
) -> None:
    last = D0 + 49
    nudges = run(ATT14, student(facts, D0), D0, last)
    first = _first_breach(facts, last)
    if first is None:
        assert nudges == []
    else:
        assert nudges[0].explanation.window_end == date.fromordinal(first)


@settings(max_examples=150, deadline=None)
@given(histories)
def test_the_vle_rule_fires_exactly_when_seven_quiet_days_have_passed(
    facts: dict[int, DayFacts],
) -> None:
    last = D0 + 49
    nudges = run(VLE, student(facts, D0), D0, last)
    expected = None
    for end in range(D0 + 6, last + 1):
        if all(facts.get(d, DayFacts()).vle == 0 for d in range(end - 6, end + 1)):
            expected = end
            break
    if expected is None:
        assert nudges == []
    else:
        assert nudges[0].explanation.window_end == date.fromordinal(expected)


@settings(max_examples=60, deadline=None)
@given(histories, st.integers(1, 48))
def test_deciding_in_two_sittings_with_stored_state_gives_the_same_ids(
    facts: dict[int, DayFacts], split: int
) -> None:
    last = D0 + 49
    whole = [n.nudge_id for n in run(DEFAULTS, student(facts, D0), D0, last)]
    first = student(facts, D0, sponsored_visa=False)
    ids = [n.nudge_id for n in run(DEFAULTS, first, D0, D0 + split)]
    # What the detector stores between batches: encoded rule state and the last prompt.
    stored = {rule: RuleState.decode(state.encode()) for rule, state in first.states.items()}
    second = Student(PSEUDONYM, D0, facts, states=stored, last_prompt=first.last_prompt)
    ids += [n.nudge_id for n in run(DEFAULTS, second, D0 + split + 1, last)]
    assert ids == whole


@settings(max_examples=60, deadline=None)
@given(histories)
def test_a_low_score_decision_matches_the_daily_scores(facts: dict[int, DayFacts]) -> None:
    rules = only("sustained_low_score_14d")
    last = D0 + 49
    nudges = run(rules, student(facts, D0), D0, last)
    for nudge in nudges:
        end = nudge.explanation.window_end.toordinal()
        for d in range(end - 13, end + 1):
            score = daily_score(facts, d, D0, rules.score)
            assert score is not None and score <= 1.0
