"""The engagement model's decisions: one student, one closed day, every rule. Pure functions.

``evaluate_day`` is the step function both the live detector and ``engagement replay`` call,
day by day in order, with the same inputs, so both make exactly the same decisions. A rule
decides at most once per *episode* (a run of consecutive days on which its condition holds)
and not again within its cooldown. A window that touches a data gap on one of the rule's
sources never produces a nudge; an exemption that overlaps the window turns the nudge into a
suppressed record that says why. A rule whose window is not yet covered by enough days of the
student's term finds nothing (:mod:`agents.model.coverage`); one that decides on part of its
window says so in the nudge.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from agents.model.eventtime import pretty
from agents.model.findings import FINDERS, Finding
from agents.model.rulestate import Prompt, RuleState, decode_states
from agents.model.score import band, score_inputs
from agents.model.student import Student
from schemas.nudges import Explanation, Nudge, Tier
from schemas.rules import Mode, Rule, RuleSet, ScoreModel

# ``decode_states`` lives in agents/model/rulestate.py; it is named here too for
# agents/store/state.py, which imports it (with Prompt and RuleState) from this module until
# it imports them from there.
__all__ = ["Prompt", "RuleState", "decode_states", "evaluate_day", "nudge_id"]

# A decision about a day is dated at the last second of that day in the institution's zone.
_END_OF_DAY = time(23, 59, 59)


def nudge_id(rule_id: str, rule_version: int, pseudonym: str, start: date, end: date) -> str:
    """Deterministic id of one rule's decision about one student over one window."""
    text = f"{rule_id}|{rule_version}|{pseudonym}|{start.isoformat()}|{end.isoformat()}"
    return "n_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _gap_notes(rule: Rule, student: Student, start: int, day: int) -> list[str]:
    notes = []
    for d in range(start, day + 1):
        for source, note in sorted(student.gaps.get(d, {}).items()):
            if source in rule.sources:
                notes.append(note)
    return notes


def rule_fields(rule: Rule) -> dict[str, Any]:
    """What every nudge a rule makes says about the rule: id, version, tier, channels, route
    and mode."""
    return {
        "rule_id": rule.id,
        "rule_version": rule.version,
        "tier": rule.tier,
        "channels": rule.channels,
        "route": rule.route,
        "mode": "shadow" if rule.mode is Mode.SHADOW else "live",
    }


def _nudge(
    rule: Rule,
    student: Student,
    day: int,
    finding: Finding,
    model: ScoreModel,
    zone: ZoneInfo,
    *,
    suppressed: str | None = None,
    notes: tuple[str, ...] = (),
) -> Nudge:
    score = student.score(day, model)
    inputs = score_inputs(student.facts, day, model.window_days)
    values: dict[str, str | int | float] = {
        "window_days": rule.window_days,
        "window": finding.covered.words() if finding.covered else f"{rule.window_days} days",
        "since": pretty(finding.start),
        "until": pretty(day),
        "score": "not yet known" if score is None else f"{score:g}",
        "band": "not yet known" if score is None else band(score),
        "threshold": "" if rule.threshold is None else f"{rule.threshold:g}",
        "rule": rule.id,
        "description": rule.description,
    }
    values.update(finding.values)
    partial = finding.covered.note() if finding.covered else None
    if partial:
        notes = (partial, *notes)
    start, end = date.fromordinal(finding.start), date.fromordinal(day)
    created = datetime.combine(end, _END_OF_DAY, tzinfo=zone)
    return Nudge(
        nudge_id=nudge_id(rule.id, rule.version, student.pseudonym, start, end),
        pseudonym=student.pseudonym,
        **rule_fields(rule),
        suppressed=suppressed,  # type: ignore[arg-type]  # one of the Literal's values
        created_at=created,
        explanation=Explanation(
            summary=rule.message.format(**values),
            metrics=finding.metrics,
            threshold=finding.threshold,
            window_start=start,
            window_end=end,
            sources=rule.sources,
            score=score,
            band=None if score is None else band(score),
            score_inputs=inputs.as_dict(),
            notes=notes,
        ),
    )


def _decide(rule: Rule, student: Student, day: int, rules: RuleSet, zone: ZoneInfo) -> Nudge | None:
    state = student.states.setdefault(rule.id, RuleState())
    finding = FINDERS[rule.kind](rule, student, day, rules.score)
    if finding is None:
        state.streak_start = None
        return None
    if state.streak_start is None or state.last_true != day - 1:
        state.streak_start = day
    state.last_true = day
    if state.last_fired is not None and (
        state.last_fired >= state.streak_start or day - state.last_fired < rule.cooldown_days
    ):
        return None  # decided already in this episode, or cooling down
    gaps = _gap_notes(rule, student, finding.start, day)
    if gaps:
        if state.gap_reported == state.streak_start:
            return None
        state.gap_reported = state.streak_start
        gap_notes = ("Not sent: the data behind it has a gap. " + "; ".join(gaps),)
        return _nudge(
            rule, student, day, finding, rules.score, zone, suppressed="data_gap", notes=gap_notes
        )
    exempt = [p for p in student.exemptions if p.overlaps(finding.start, day)]
    state.last_fired = day
    if exempt:
        notes = tuple(f"Exempt: {p.describe()}." for p in exempt)
        return _nudge(
            rule, student, day, finding, rules.score, zone, suppressed="exemption", notes=notes
        )
    if rule.tier is Tier.PROMPT and rule.mode is Mode.LIVE:
        student.last_prompt = Prompt(day, rule.id, student.score(day, rules.score))
    return _nudge(rule, student, day, finding, rules.score, zone)


def evaluate_day(rules: RuleSet, student: Student, day: int, zone: ZoneInfo) -> list[Nudge]:
    """Every active rule's decision about ``student`` on the closed ``day``.

    Call once per day, in day order, from the student's first day; the rule state in
    ``student.states`` and ``student.last_prompt`` carries over from one day to the next.
    """
    if day < student.first_day:
        return []
    nudges = []
    for rule in rules.active:
        nudge = _decide(rule, student, day, rules, zone)
        if nudge is not None:
            nudges.append(nudge)
    return nudges
