"""Enough evidence before a window rule fires: windows count from the student's term start.

On day 2 of term, "attended 1 of 4 sessions" is not "attendance below 50% over 14 days". Each
row below is a student, a rule and the first day (if any) the rule may decide; the window the
decision read must be the one its explanation names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.model.coverage import coverage
from agents.model.score import DayFacts
from schemas.reference import RosterEntry
from schemas.rules import SCORE_KINDS, Kind
from tests.unit.build import DEFAULTS, days, only, run, student

D0 = date(2026, 9, 28).toordinal()  # a Monday: term starts
ATT14, ATT28 = "attendance_below_50pct_14d", "attendance_below_50pct_28d"


@dataclass(frozen=True)
class Case:
    """One student and one rule: the first decision expected, and what it says."""

    name: str
    rule: str
    facts: dict[int, DayFacts]
    last: int
    """Evaluate from the student's first day through D0 + last."""
    fires: int | None
    """D0 + this is the first window end decided; None: nothing is decided."""
    first_day: int = 0
    term_start: int | None = None
    changes: dict[str, object] = field(default_factory=dict)
    starts: int | None = None
    """D0 + this is where the window read begins (checked when set)."""
    says: tuple[str, ...] = ()
    """Phrases of the explanation (summary, threshold and notes, joined)."""


ONE_OF_FOUR = days(D0, D0, present=1, absent=1) | days(D0 + 1, D0 + 1, absent=2)
THREE_OF_EIGHT = days(D0, D0 + 2, present=1, absent=1) | days(D0 + 3, D0 + 4, absent=1)
ABSENT = days(D0, D0 + 20, absent=1)

CASES = [
    Case("day 2 of term, 1 of 4 sessions: the 14-day rule waits", ATT14, ONE_OF_FOUR, 4, None),
    Case("five days in, 3 of 8: the 28-day rule waits", ATT28, THREE_OF_EIGHT, 4, None),
    Case(
        "absent from the start: the 14-day rule decides once 14 days of term have passed",
        ATT14, ABSENT, 20, 13, starts=0,
        says=("over 14 days falls below 50%", "you attended 0 of the 14"),
    ),
    Case(
        "absent from the start: the 28-day rule decides on day 28 of term",
        ATT28, days(D0, D0 + 30, absent=1), 30, 27, starts=0, says=("below 50% over 28 days",),
    ),
    Case(
        "term started ten days before the first record: its days count",
        ATT14, days(D0, D0 + 3, absent=1), 5, 3, term_start=-10, starts=-10,
        says=("you attended 0 of the 4",),
    ),
    Case(
        "induction-week swipes before term do not count as term days",
        ATT14, days(D0 - 7, D0 - 1, swipes=1) | ABSENT, 20, 13, first_day=-7, term_start=0,
        starts=0,
    ),
    Case(
        "the same student without a term start on the roster counts from the first record",
        ATT14, days(D0 - 7, D0 - 1, swipes=1) | ABSENT, 20, 6, first_day=-7, starts=-7,
    ),
    Case(
        "min_days = 7: decides on part of the window, and says which part",
        ATT14, days(D0, D0, present=1) | days(D0 + 1, D0 + 20, absent=1), 20, 6,
        term_start=0, changes={"min_days": 7}, starts=0,
        says=(
            "over the 7 days since term started falls below 50%",
            "Based on 7 of the rule's 14 days: the window is covered only from Monday 28 "
            "September 2026, when term started.",
        ),
    ),
    Case(
        "min_days = 7 without a term start: the window is dated",
        ATT14, days(D0, D0, present=1) | days(D0 + 1, D0 + 20, absent=1), 20, 6,
        changes={"min_days": 7}, starts=0,
        says=(
            "over the 7 days since Monday 28 September 2026 falls below",
            "the first day with a record of the student",
        ),
    ),
    Case(
        "covered, but too few sessions: min_sessions still holds",
        ATT14, days(D0, D0 + 2, absent=1) | days(D0 + 3, D0 + 20, vle=1), 20, None,
    ),
    Case(
        "an inactivity rule with min_days = 3 may decide on day 3",
        "no_vle_activity_7d", days(D0, D0 + 10, swipes=1), 10, 2, term_start=0,
        changes={"min_days": 3}, starts=0, says=("for the 3 days since term started",),
    ),
    Case(
        "an inactivity rule by default needs its whole window",
        "no_vle_activity_7d", days(D0, D0 + 10, swipes=1), 10, 6, term_start=0, starts=0,
        says=("for 7 days",),
    ),
    Case(
        "a score rule counts from the first day whose score is all term days",
        "sustained_low_score_14d", days(D0, D0, vle=1), 30, 19, term_start=0, starts=6,
        says=("every day for 14 days",),
    ),
    Case(
        "a score rule with min_days = 7 decides a week after its first score",
        "sustained_low_score_14d", days(D0, D0, vle=1), 30, 12, term_start=0, starts=6,
        changes={"min_days": 7}, says=("(7 days)", "the first day with a score made only"),
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_rule_decides_only_on_a_covered_window(case: Case) -> None:
    rules = only(case.rule, **case.changes)
    term = None if case.term_start is None else D0 + case.term_start
    who = student(case.facts, D0 + case.first_day, term_start=term)
    nudges = run(rules, who, D0 + case.first_day, D0 + case.last)
    if case.fires is None:
        assert nudges == []
        return
    assert nudges, "expected a decision"
    first = nudges[0]
    assert first.explanation.window_end == date.fromordinal(D0 + case.fires)
    if case.starts is not None:
        assert first.explanation.window_start == date.fromordinal(D0 + case.starts)
    text = " ".join((first.explanation.summary, first.explanation.threshold or ""))
    text += " " + " ".join(first.explanation.notes)
    for phrase in case.says:
        assert phrase in text


def test_a_full_window_adds_no_note() -> None:
    (nudge, *_) = run(only(ATT14), student(ABSENT, D0), D0, D0 + 20)
    assert nudge.explanation.notes == ()


# -- properties over every default rule --------------------------------------------------------

day_facts = st.builds(
    DayFacts,
    present=st.integers(0, 2),
    late=st.integers(0, 1),
    absent=st.integers(0, 3),
    excused=st.integers(0, 1),
    swipes=st.sampled_from([0, 0, 1, 3]),
    vle=st.sampled_from([0, 0, 0, 1, 5, 40]),
)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(day_facts, min_size=1, max_size=45),
    st.one_of(st.none(), st.integers(-10, 10)),
)
def test_no_default_rule_decides_before_its_window_lies_in_the_term(
    history: list[DayFacts], term_offset: int | None
) -> None:
    facts = {D0 + n: f for n, f in enumerate(history)}
    term = None if term_offset is None else D0 + term_offset
    who = student(facts, D0, term_start=term, sponsored_visa=True)
    by_id = {rule.id: rule for rule in DEFAULTS.rules}
    observed = D0 if term is None else term
    for nudge in run(DEFAULTS, who, D0, D0 + 49):
        rule = by_id[nudge.rule_id]
        if rule.kind is Kind.ESCALATION:
            continue
        start = nudge.explanation.window_start.toordinal()
        end = nudge.explanation.window_end.toordinal()
        first = observed
        if rule.kind in SCORE_KINDS:  # from the first score made only of days in the term
            first = max(observed, D0) + DEFAULTS.score.window_days - 1
        assert start >= first, (rule.id, start, first)
        read = end - start + (0 if rule.kind is Kind.SCORE_DROP else 1)
        assert read >= rule.required_days, (rule.id, read)
        partial = [n for n in nudge.explanation.notes if n.startswith("Based on")]
        assert bool(partial) == (read < rule.window_days), (rule.id, read, partial)
        if rule.kind is Kind.ATTENDANCE_RATE:
            # The shipped attendance rules need the whole window: their words say so.
            assert read == rule.window_days
            assert f"over {rule.window_days} days" in nudge.explanation.summary


def test_coverage_is_none_until_enough_days_and_then_counts_them() -> None:
    rule = only(ATT14, min_days=5).rules[1]
    assert rule.id == ATT14
    who = student({}, D0, term_start=D0)
    assert coverage(rule, who, D0 + 3, 7) is None
    covered = coverage(rule, who, D0 + 4, 7)
    assert covered is not None
    assert (covered.start, covered.days, covered.full) == (D0, 5, False)
    assert covered.words() == "the 5 days since term started"
    full = coverage(rule, who, D0 + 20, 7)
    assert full is not None
    assert (full.start, full.days, full.full, full.words()) == (D0 + 7, 14, True, "14 days")
    assert full.note() is None


# -- the roster carries the term start ----------------------------------------------------------


def test_the_roster_may_give_a_term_start_and_older_entries_still_load() -> None:
    old = RosterEntry.model_validate_json('{"schema_version": 1, "student_id": "S1"}')
    assert old.term_starts_on is None
    new = RosterEntry.model_validate_json(
        '{"schema_version": 1, "student_id": "S1", "term_starts_on": "2026-09-28"}'
    )
    assert new.term_starts_on == date(2026, 9, 28)
