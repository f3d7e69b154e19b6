"""Register corrections: marks that replaced earlier ones, and what they change. Pure.

A correction to an attendance mark replaces the earlier mark for the same student and session
(the state script keeps each session once). One made on the session's own day simply changes
that day's counts. One made on a later day takes effect from that day: decisions about days
before it were taken on the marks as they stood (and stay as they were, live and in a replay
alike); from its day on, every window reads the corrected marks. On that day each rule whose
latest decision counted the corrected session is re-evaluated, and a record is added that says
the decision was based on data later corrected and whether it still holds. Nothing already
sent is sent again, and nothing is withdrawn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from agents.model.eventtime import pretty
from agents.model.findings import FINDERS, Finding
from agents.model.rules import nudge_id, rule_fields
from agents.model.score import DayFacts
from agents.model.student import Student
from schemas.nudges import Explanation, Nudge
from schemas.rules import Rule, RuleSet

STATUSES = ("present", "late", "absent", "excused")
_END_OF_DAY = time(23, 59, 59)


@dataclass(frozen=True)
class Correction:
    """How a day's mark counts changed, from the day a correction was made."""

    day: int  # the day the corrected session counts on
    effective: int  # the day the correction was made: decisions from then on read it
    changes: tuple[int, int, int, int]  # present, late, absent, excused (+ added, - removed)

    def words(self) -> str:
        """The change as a student reads it: 'absent → present', 'late → withdrawn'."""

        def side(sign: int) -> str:
            parts = [
                name if abs(n) == 1 else f"{abs(n)} {name}"
                for name, n in zip(STATUSES, self.changes, strict=True)
                if n * sign > 0
            ]
            return " and ".join(parts) or "withdrawn"

        return f"{side(-1)} → {side(1)}"


def parse_corrections(text: str) -> tuple[Correction, ...]:
    """The state's ``ac`` field (``day:effective=p,l,a,e;...``), in the order they took effect."""
    out = []
    for part in filter(None, text.split(";")):
        cell, _, values = part.partition("=")
        day, _, effective = cell.partition(":")
        p, lt, ab, ex = (int(v) for v in values.split(","))
        out.append(Correction(int(day), int(effective), (p, lt, ab, ex)))
    return tuple(sorted(out, key=lambda c: (c.effective, c.day)))


def apply_corrections(
    facts: dict[int, DayFacts], corrections: Iterable[Correction]
) -> dict[int, DayFacts]:
    """``facts`` with the corrections' changes added (a new dict; ``facts`` is untouched)."""
    out = dict(facts)
    for c in corrections:
        was = out.get(c.day, DayFacts())
        p, lt, ab, ex = c.changes
        out[c.day] = replace(
            was,
            present=max(0, was.present + p),
            late=max(0, was.late + lt),
            absent=max(0, was.absent + ab),
            excused=max(0, was.excused + ex),
        )
    return out


def correction_id(original: str, day: int) -> str:
    """Deterministic id of the record that a correction on ``day`` touched nudge ``original``."""
    text = f"{original}|corrected|{day}"
    return "n_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def take_effect(
    rules: RuleSet, student: Student, today: Sequence[Correction], day: int, zone: ZoneInfo
) -> list[Nudge]:
    """Apply the corrections made on ``day`` to ``student`` and re-evaluate, before the rules
    decide ``day`` itself, the latest decision of each rule whose window held a corrected day.

    Returns one record-only nudge per decision touched: it names the decision, the correction
    and whether, on the corrected data, the rule would still have fired. The student's facts
    and cached scores afterwards are those as known on ``day``.
    """
    days = sorted({c.day for c in today})
    touched: list[tuple[Rule, int, Finding, list[int]]] = []
    for rule in rules.active:
        state = student.states.get(rule.id)
        last = state.last_fired if state is not None else None
        if last is None or last < days[0] or last >= day:
            continue
        found = FINDERS[rule.kind](rule, student, last, rules.score)
        held = [d for d in days if found is not None and found.start <= d <= last]
        if found is not None and held:
            touched.append((rule, last, found, held))
    student.facts = apply_corrections(dict(student.facts), today)
    for stale in [d for d in student._scores if d >= days[0]]:
        del student._scores[stale]
    notices = []
    for rule, last, found, held in touched:
        now = FINDERS[rule.kind](rule, student, last, rules.score)
        changes = [c for c in today if c.day in held]
        notices.append(_notice(rule, student, last, found, now, changes, day, zone))
    return notices


def _notice(
    rule: Rule,
    student: Student,
    decided: int,
    found: Finding,
    now: Finding | None,
    changes: Sequence[Correction],
    day: int,
    zone: ZoneInfo,
) -> Nudge:
    start, end = date.fromordinal(found.start), date.fromordinal(decided)
    original = nudge_id(rule.id, rule.version, student.pseudonym, start, end)
    what = "; ".join(f"{pretty(c.day)}: {c.words()}" for c in changes)
    if now is None:
        verdict = "On the corrected data this rule would not have decided so."
    else:
        verdict = f"On the corrected data the rule still holds ({now.threshold})."
    note = (
        f"The register was corrected on {pretty(day)} ({what}), after this rule decided on "
        f"{pretty(decided)} (nudge {original}). {verdict} Nothing more is sent because of it."
    )
    return Nudge(
        nudge_id=correction_id(original, day),
        pseudonym=student.pseudonym,
        **rule_fields(rule),
        suppressed="data_corrected",
        created_at=datetime.combine(date.fromordinal(day), _END_OF_DAY, tzinfo=zone),
        explanation=Explanation(
            summary=(
                f"The attendance data behind the decision of {pretty(decided)} was later corrected."
            ),
            metrics=dict(now.metrics) if now is not None else {},
            threshold=found.threshold,
            window_start=start,
            window_end=end,
            sources=rule.sources,
            notes=(note,),
        ),
    )
