"""What each kind of rule measures: one finder per kind, over one student and one closed day.

A finder answers whether the rule's condition holds on ``day``; when it does, the ``Finding``
carries the window it holds over, the values its message template may use, the metrics a
nudge reports and the threshold in words. A finder reads only the part of its window that lies
in the student's term, and finds nothing while that part is shorter than the rule needs
(:mod:`agents.model.coverage`). Deciding what to do about a finding (episodes, cooldowns, data
gaps, exemptions) is :mod:`agents.model.rules`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from agents.model.coverage import Coverage, coverage
from agents.model.eventtime import pretty
from agents.model.student import Student
from schemas.rules import Kind, Rule, ScoreModel
from schemas.sources import SOURCES

LOOKBACK_DAYS = 120


@dataclass(frozen=True)
class Finding:
    """A rule's condition holds: over which window, and the numbers behind it."""

    start: int
    values: dict[str, str | int | float]
    metrics: dict[str, float | int]
    threshold: str
    covered: Coverage | None = None
    """The part of the rule's window read (None: the rule reads no window, e.g. escalation)."""


Finder = Callable[[Rule, Student, int, ScoreModel], Finding | None]


def _quiet_since(
    student: Student, day: int, start: int, sources: tuple[str, ...]
) -> tuple[int, str]:
    """Days since the last activity before ``start`` on ``sources``, and that day in words."""
    horizon = max(student.first_day, student.known_from or student.first_day)
    for d in range(start - 1, max(horizon, start - LOOKBACK_DAYS) - 1, -1):
        facts = student.day(d)
        if any(facts.active(s) for s in sources):
            return day - d, pretty(d)
    if horizon > student.first_day:
        return day - horizon + 1, f"before {pretty(horizon)}"
    return day - student.first_day + 1, f"before {pretty(student.first_day)}"


def _quiet_window(
    rule: Rule, student: Student, day: int, model: ScoreModel
) -> tuple[Coverage, int, str] | None:
    """(the window read, days quiet, last active in words) when no day of the covered window
    shows activity on the rule's sources; None otherwise, or when too little is covered."""
    covered = coverage(rule, student, day, model.window_days)
    if covered is None:
        return None
    for d in range(covered.start, day + 1):
        facts = student.day(d)
        if any(facts.active(s) for s in rule.sources):
            return None
    days, seen = _quiet_since(student, day, covered.start, rule.sources)
    return covered, days, seen


def _inactivity(rule: Rule, student: Student, day: int, model: ScoreModel) -> Finding | None:
    quiet = _quiet_window(rule, student, day, model)
    if quiet is None:
        return None
    covered, days, seen = quiet
    where = ", ".join(SOURCES[s].activity for s in rule.sources)
    return Finding(
        covered.start,
        {"days": days, "last_active": seen, "sources": where},
        {"days_without_activity": days},
        f"no activity ({', '.join(rule.sources)}) for {covered.words()}",
        covered,
    )


def _attendance(rule: Rule, student: Student, day: int, model: ScoreModel) -> Finding | None:
    covered = coverage(rule, student, day, model.window_days)
    if covered is None:
        return None
    start = covered.start
    attended = expected = 0
    first_session: int | None = None
    for d in range(start, day + 1):
        facts = student.day(d)
        attended += facts.attended
        expected += facts.expected
        if first_session is None and facts.expected:
            first_session = d
    threshold = rule.threshold or 0.0
    if expected < rule.min_sessions or attended / expected >= threshold:
        return None
    rate = attended / expected
    percent = math.floor(rate * 100)  # rounded down: never reads as equal to the threshold
    share = round(threshold * 100)
    return Finding(
        start,
        {
            "attended": attended,
            "expected": expected,
            "percent": percent,
            "threshold_percent": share,
            "since": pretty(first_session or start),
        },
        {
            "sessions_attended": attended,
            "sessions_expected": expected,
            "attendance_rate": round(rate, 4),
        },
        f"attendance below {share}% of at least {rule.min_sessions} timetabled sessions over "
        f"{covered.words()}",
        covered,
    )


def _low_score(rule: Rule, student: Student, day: int, model: ScoreModel) -> Finding | None:
    covered = coverage(rule, student, day, model.window_days)
    if covered is None:
        return None
    threshold = rule.threshold or 0.0
    for d in range(covered.start, day + 1):
        score = student.score(d, model)
        if score is None or score > threshold:
            return None
    return Finding(
        covered.start,
        {"days": covered.days},
        {"days_at_or_below_threshold": covered.days},
        f"engagement score at or below {threshold:g} every day for {covered.words()}",
        covered,
    )


def _score_drop(rule: Rule, student: Student, day: int, model: ScoreModel) -> Finding | None:
    score = student.score(day, model)
    if score is None or score > 5.0 - (rule.threshold or 0.0):
        return None  # no baseline (at most 5) could be that far above today's score
    covered = coverage(rule, student, day, model.window_days)
    if covered is None:
        return None  # not enough history for a baseline of the student's own
    scores = [s for d in range(covered.start, day) if (s := student.score(d, model)) is not None]
    if not scores:
        return None
    baseline = round(sum(scores) / len(scores), 1)
    drop = round(baseline - score, 1)
    if drop < (rule.threshold or 0.0):
        return None
    return Finding(
        covered.start,
        {"baseline": baseline, "drop": drop},
        {"baseline_score": baseline, "score_drop": drop},
        f"score {rule.threshold:g} or more points below the student's own average over "
        + (f"the previous {covered.words()}" if covered.full else covered.words()),
        covered,
    )


def _no_contact(rule: Rule, student: Student, day: int, model: ScoreModel) -> Finding | None:
    if rule.applies_to == "sponsored_visa" and not student.sponsored_visa:
        return None
    quiet = _quiet_window(rule, student, day, model)
    if quiet is None:
        return None
    covered, days, seen = quiet
    return Finding(
        covered.start,
        {"days": days, "last_contact": seen},
        {"days_without_contact": days},
        f"no attended contact point for {covered.words()}",
        covered,
    )


def _escalation(rule: Rule, student: Student, day: int, model: ScoreModel) -> Finding | None:
    prompt = student.last_prompt
    if prompt is None or prompt.day != day - rule.window_days:
        return None
    if rule.after and prompt.rule_id not in rule.after:
        return None
    score = student.score(day, model)
    if score is None or score >= (rule.threshold or 0.0):
        return None
    then = "not yet known" if prompt.score is None else f"{prompt.score:g}"
    return Finding(
        prompt.day,
        {"prompt_day": pretty(prompt.day), "prompt_rule": prompt.rule_id, "score_then": then},
        {"days_since_prompt": rule.window_days},
        f"engagement score still below {rule.threshold:g} {rule.window_days} days after a prompt",
    )


FINDERS: dict[Kind, Finder] = {
    Kind.INACTIVITY: _inactivity,
    Kind.ATTENDANCE_RATE: _attendance,
    Kind.LOW_SCORE: _low_score,
    Kind.SCORE_DROP: _score_drop,
    Kind.NO_CONTACT: _no_contact,
    Kind.ESCALATION: _escalation,
}
