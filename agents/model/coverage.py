"""How much of a rule's window the evidence covers, and whether that is enough to decide.

A window that reaches back before the student's term started (or before they were first seen,
when the roster gives no term start) holds days that say nothing about them: two days of term
are not "attendance over 28 days". A rule reads only the days of its window from the student's
start, and decides only when at least ``rule.required_days`` of them are there; the window it
actually read is said in words in the nudge.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.model.eventtime import pretty
from agents.model.student import Student
from schemas.rules import SCORE_KINDS, Kind, Rule


@dataclass(frozen=True)
class Coverage:
    """The part of a rule's window a decision reads: days ``start`` to ``end`` inclusive."""

    start: int
    end: int
    window_days: int
    """The window the rule names."""
    cut_by: str
    """What the window starts at when it is cut short: ``term`` (the student's term start on
    the roster), ``first_seen`` (their first record, when the roster gives no term start) or
    ``score`` (the first day with a score made wholly of days in the term)."""

    @property
    def days(self) -> int:
        """How many days the decision reads."""
        return self.end - self.start + 1

    @property
    def full(self) -> bool:
        """Whether the whole named window is read."""
        return self.days >= self.window_days

    def words(self) -> str:
        """The window read, for messages: "14 days", "the 9 days since term started"."""
        if self.full:
            return f"{self.window_days} days"
        if self.cut_by == "term":
            return f"the {self.days} days since term started"
        return f"the {self.days} days since {pretty(self.start)}"

    def note(self) -> str | None:
        """A sentence for the explanation when the decision read part of the window."""
        if self.full:
            return None
        why = {
            "term": "when term started",
            "first_seen": "the first day with a record of the student",
            "score": "the first day with a score made only of days in term",
        }[self.cut_by]
        return (
            f"Based on {self.days} of the rule's {self.window_days} days: the window is "
            f"covered only from {pretty(self.start)}, {why}."
        )


def coverage(rule: Rule, student: Student, day: int, score_window: int) -> Coverage | None:
    """The part of ``rule``'s window on ``day`` that lies in the student's term, or None when
    it is shorter than the rule needs (``rule.required_days``).

    ``score_drop`` reads the days before ``day`` (its baseline); every other kind reads the
    window ending on ``day``. Score-based kinds start at the first day whose score
    (``score_window`` days) lies wholly within the term and has been seen.
    """
    if rule.kind is Kind.SCORE_DROP:
        named_start, end = day - rule.window_days, day - 1
    else:
        named_start, end = day - rule.window_days + 1, day
    first = student.observed_from
    cut_by = "first_seen" if student.term_start is None else "term"
    if rule.kind in SCORE_KINDS:
        first = max(first, student.first_day) + score_window - 1
        cut_by = "score"
    start = max(named_start, first)
    if end - start + 1 < rule.required_days:
        return None
    return Coverage(start, end, rule.window_days, cut_by)
