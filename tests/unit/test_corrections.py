"""Register corrections in the pure model: parsing, applying, and re-evaluating decisions."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from agents.model.corrections import (
    Correction,
    apply_corrections,
    correction_id,
    parse_corrections,
    take_effect,
)
from agents.model.rules import evaluate_day, nudge_id
from agents.model.score import DayFacts
from agents.model.student import Student
from schemas.nudges import Nudge
from tests.unit.build import LONDON, PSEUDONYM, days, only, run, student

DAY = date(2026, 10, 5).toordinal()  # a Monday
RULE = "attendance_below_50pct_14d"


def test_the_stored_form_is_read_in_the_order_the_corrections_took_effect() -> None:
    text = f"{DAY}:{DAY + 3}=1,0,-1,0;{DAY - 2}:{DAY + 1}=0,0,-1,1"
    assert parse_corrections(text) == (
        Correction(DAY - 2, DAY + 1, (0, 0, -1, 1)),
        Correction(DAY, DAY + 3, (1, 0, -1, 0)),
    )
    assert parse_corrections("") == ()


def test_a_correction_says_what_changed_in_words() -> None:
    assert Correction(DAY, DAY + 1, (1, 0, -1, 0)).words() == "absent → present"
    assert Correction(DAY, DAY + 1, (0, -1, 0, 0)).words() == "late → withdrawn"
    assert Correction(DAY, DAY + 1, (0, 1, 0, 0)).words() == "withdrawn → late"
    assert Correction(DAY, DAY + 1, (2, 0, -2, 0)).words() == "2 absent → 2 present"


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.tuples(*[st.integers(-1, 1)] * 4)),  # (day offset, change)
        max_size=6,
    )
)
def test_applying_corrections_never_changes_the_facts_it_was_given(
    changes: list[tuple[int, tuple[int, int, int, int]]],
) -> None:
    facts = {DAY + d: DayFacts(present=1, absent=1, vle=3) for d in range(4)}
    before = dict(facts)
    out = apply_corrections(facts, [Correction(DAY + d, DAY + 9, c) for d, c in changes])
    assert facts == before
    for d in range(4):
        assert out[DAY + d].vle == 3  # only marks change
        assert min(out[DAY + d].present, out[DAY + d].absent) >= 0


def _absent_then_corrected() -> tuple[Student, list[Nudge], list[Nudge]]:
    """Absent from one session a day for three weeks; decided; corrected on day 16."""
    rules = only(RULE)
    who = student(days(DAY, DAY + 20, absent=1, vle=5, swipes=1), DAY)
    before = run(rules, who, DAY, DAY + 15)
    fix = [Correction(d, DAY + 16, (1, 0, -1, 0)) for d in range(DAY, DAY + 16)]
    notices = take_effect(rules, who, fix, DAY + 16, LONDON)
    return who, before, notices


def test_a_correction_records_the_decision_it_touched_without_deciding_it_again() -> None:
    who, before, notices = _absent_then_corrected()
    (sent,) = before
    (notice,) = notices
    assert notice.suppressed == "data_corrected"
    assert (notice.rule_id, notice.tier, notice.route) == (sent.rule_id, sent.tier, sent.route)
    note = notice.explanation.notes[0]
    assert sent.nudge_id in note and "absent → present" in note
    assert "would not have decided so" in note
    assert notice.nudge_id == correction_id(sent.nudge_id, DAY + 16)
    # The facts are now as known on day 16: every session attended.
    assert (who.facts[DAY].present, who.facts[DAY].absent) == (1, 0)


def test_a_decision_that_still_holds_on_the_corrected_data_says_so() -> None:
    rules = only(RULE)
    who = student(days(DAY, DAY + 20, absent=2, vle=5), DAY)
    (sent,) = run(rules, who, DAY, DAY + 15)
    decided = sent.explanation.window_end.toordinal()
    fix = [Correction(decided, DAY + 16, (1, 0, -1, 0))]  # one of 2 sessions that day
    (notice,) = take_effect(rules, who, fix, DAY + 16, LONDON)
    assert "still holds" in notice.explanation.notes[0]
    assert notice.explanation.metrics["sessions_attended"] == 1


def test_a_correction_outside_every_decided_window_records_nothing() -> None:
    rules = only(RULE)
    who = student(days(DAY, DAY + 20, absent=1, vle=5), DAY)
    (sent,) = run(rules, who, DAY, DAY + 15)
    later = sent.explanation.window_end.toordinal() + 1
    fix = [Correction(later, DAY + 16, (1, 0, -1, 0))]
    assert take_effect(rules, who, fix, DAY + 16, LONDON) == []
    assert who.facts[later].present == 1  # still applied to the facts


def test_after_a_correction_the_next_decisions_read_the_corrected_marks() -> None:
    rules = only(RULE)
    who = student(days(DAY, DAY + 27, absent=1, vle=5), DAY)
    run(rules, who, DAY, DAY + 15)
    score_before = who.score(DAY + 15, rules.score)  # cached, on the marks as they were
    fix = [Correction(d, DAY + 16, (1, 0, -1, 0)) for d in range(DAY + 3, DAY + 16)]
    take_effect(rules, who, fix, DAY + 16, LONDON)
    # Day 16's window holds 13 attended of 14: nothing fires; the score is read anew.
    assert evaluate_day(rules, who, DAY + 16, LONDON) == []
    score_after = who.score(DAY + 15, rules.score)
    assert score_before is not None and score_after is not None
    assert score_after > score_before


def test_correction_ids_are_deterministic_and_distinct_per_day() -> None:
    original = nudge_id(RULE, 1, PSEUDONYM, date(2026, 10, 5), date(2026, 10, 18))
    assert correction_id(original, DAY) == correction_id(original, DAY)
    assert correction_id(original, DAY) != correction_id(original, DAY + 1)
    assert correction_id(original, DAY).startswith("n_") and len(correction_id(original, DAY)) == 34
