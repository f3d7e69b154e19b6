"""The engagement model's decisions: one student, one closed day, every rule. Pure functions.

``evaluate_day`` is the step function both the live detector and ``engagement replay`` call,
day by day in order, with the same inputs, so both make exactly the same decisions. A rule
decides at most once per *episode* (a run of consecutive days on which its condition holds)
and not again within its cooldown. A window that touches a data gap on one of the rule's
sources never produces a nudge; an exemption that overlaps the window turns the nudge into a
suppressed record that says why.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from agents.model.score import NO_FACTS, DayFacts, band, daily_score, score_inputs
from schemas.nudges import Explanation, Nudge, Tier
from schemas.rules import Kind, Mode, Rule, RuleSet, ScoreModel

LOOKBACK_DAYS = 120


def nudge_id(rule_id: str, rule_version: int, pseudonym: str, start: date, end: date) -> str:
    """Deterministic id of one rule's decision about one student over one window."""
    text = f"{rule_id}|{rule_version}|{pseudonym}|{start.isoformat()}|{end.isoformat()}"
    return "n_" + hashlib.sha256(text.encode()).hexdigest()[:32]


def pretty(day: int) -> str:
    """A day ordinal as a student reads it: Monday 5 October 2026."""
    d = date.fromordinal(day)
    return f"{d:%A} {d.day} {d:%B %Y}"


@dataclass
class RuleState:
    """Per student and rule: the current episode and the last decision."""

    last_fired: int | None = None
    streak_start: int | None = None
    last_true: int | None = None
    gap_reported: int | None = None

    def encode(self) -> str:
        """Compact text form for the state hash."""
        parts = (self.last_fired, self.streak_start, self.last_true, self.gap_reported)
        return ",".join("" if v is None else str(v) for v in parts)

    @classmethod
    def decode(cls, text: str) -> RuleState:
        """Inverse of :meth:`encode`."""
        values = [int(v) if v else None for v in text.split(",")]
        return cls(*values[:4])


def encode_states(states: Mapping[str, RuleState], prompt: Prompt | None) -> str:
    """Every rule's state and the last prompt of one student, as one text field."""
    parts = []
    if prompt is not None:
        score = "" if prompt.score is None else f"{prompt.score:g}"
        parts.append(f"@={prompt.day},{prompt.rule_id},{score}")
    parts.extend(f"{rule}={states[rule].encode()}" for rule in sorted(states))
    return ";".join(parts)


def decode_states(text: str) -> tuple[dict[str, RuleState], Prompt | None]:
    """Inverse of :func:`encode_states`."""
    states: dict[str, RuleState] = {}
    prompt: Prompt | None = None
    for part in filter(None, text.split(";")):
        name, _, value = part.partition("=")
        if name == "@":
            day, rule_id, score = value.split(",")
            prompt = Prompt(int(day), rule_id, float(score) if score else None)
        else:
            states[name] = RuleState.decode(value)
    return states, prompt


@dataclass(frozen=True)
class Period:
    """An exemption (placement, authorised absence, ...) over whole days; ``end`` None: open."""

    kind: str
    start: int
    end: int | None

    def overlaps(self, first: int, last: int) -> bool:
        """Whether any day in [first, last] is inside the period."""
        return self.start <= last and (self.end is None or self.end >= first)

    def describe(self) -> str:
        """In words."""
        until = f" to {pretty(self.end)}" if self.end is not None else " onwards"
        return f"{self.kind.replace('_', ' ')} from {pretty(self.start)}{until}"


@dataclass(frozen=True)
class Prompt:
    """The last live prompt issued to a student (what escalation rules follow)."""

    day: int
    rule_id: str
    score: float | None


@dataclass
class Student:
    """Everything the rules may read about one student, and the rule state they update."""

    pseudonym: str
    first_day: int
    facts: Mapping[int, DayFacts]
    sponsored_visa: bool = False
    exemptions: tuple[Period, ...] = ()
    gaps: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    """Day → source → note, for data gaps that cover this student."""
    states: dict[str, RuleState] = field(default_factory=dict)
    last_prompt: Prompt | None = None
    known_from: int | None = None
    """The earliest day whose facts were loaded (None: every day since the first)."""
    _scores: dict[int, float | None] = field(default_factory=dict)

    def score(self, day: int, model: ScoreModel) -> float | None:
        """The engagement score on a day (cached)."""
        if day not in self._scores:
            self._scores[day] = daily_score(self.facts, day, self.first_day, model)
        return self._scores[day]

    def day(self, day: int) -> DayFacts:
        """Facts of one day."""
        return self.facts.get(day, NO_FACTS)


@dataclass(frozen=True)
class Finding:
    """A rule's condition holds: over which window, and the numbers behind it."""

    start: int
    values: dict[str, str | int | float]
    metrics: dict[str, float | int]
    threshold: str


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


def _quiet_window(rule: Rule, student: Student, day: int) -> tuple[int, int, str] | None:
    """(window start, days quiet, last active in words) when no day in the window shows
    activity on the rule's sources; None otherwise, or before a full window since first sight."""
    start = day - rule.window_days + 1
    if start < student.first_day:
        return None
    for d in range(start, day + 1):
        facts = student.day(d)
        if any(facts.active(s) for s in rule.sources):
            return None
    days, seen = _quiet_since(student, day, start, rule.sources)
    return start, days, seen


def _inactivity(rule: Rule, student: Student, day: int, model: ScoreModel) -> Finding | None:
    quiet = _quiet_window(rule, student, day)
    if quiet is None:
        return None
    start, days, seen = quiet
    names = {"vle": "online", "swipe": "on campus", "attendance": "at a timetabled session"}
    return Finding(
        start,
        {"days": days, "last_active": seen, "sources": ", ".join(names[s] for s in rule.sources)},
        {"days_without_activity": days},
        f"no activity ({', '.join(rule.sources)}) for {rule.window_days} days",
    )


def _attendance(rule: Rule, student: Student, day: int, model: ScoreModel) -> Finding | None:
    start = day - rule.window_days + 1
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
        f"{rule.window_days} days",
    )


def _low_score(rule: Rule, student: Student, day: int, model: ScoreModel) -> Finding | None:
    start = day - rule.window_days + 1
    threshold = rule.threshold or 0.0
    for d in range(start, day + 1):
        score = student.score(d, model)
        if score is None or score > threshold:
            return None
    return Finding(
        start,
        {"days": rule.window_days},
        {"days_at_or_below_threshold": rule.window_days},
        f"engagement score at or below {threshold:g} every day for {rule.window_days} days",
    )


def _score_drop(rule: Rule, student: Student, day: int, model: ScoreModel) -> Finding | None:
    score = student.score(day, model)
    if score is None or score > 5.0 - (rule.threshold or 0.0):
        return None  # no baseline (at most 5) could be that far above today's score
    start = day - rule.window_days
    scores = [s for d in range(start, day) if (s := student.score(d, model)) is not None]
    if len(scores) * 2 < rule.window_days:
        return None  # not enough history for a baseline of the student's own
    baseline = round(sum(scores) / len(scores), 1)
    drop = round(baseline - score, 1)
    if drop < (rule.threshold or 0.0):
        return None
    return Finding(
        start,
        {"baseline": baseline, "drop": drop},
        {"baseline_score": baseline, "score_drop": drop},
        f"score {rule.threshold:g} or more points below the student's own average over the "
        f"previous {rule.window_days} days",
    )


def _no_contact(rule: Rule, student: Student, day: int, model: ScoreModel) -> Finding | None:
    if rule.applies_to == "sponsored_visa" and not student.sponsored_visa:
        return None
    quiet = _quiet_window(rule, student, day)
    if quiet is None:
        return None
    start, days, seen = quiet
    return Finding(
        start,
        {"days": days, "last_contact": seen},
        {"days_without_contact": days},
        f"no attended contact point for {rule.window_days} days",
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


def _gap_notes(rule: Rule, student: Student, start: int, day: int) -> list[str]:
    notes = []
    for d in range(start, day + 1):
        for source, note in sorted(student.gaps.get(d, {}).items()):
            if source in rule.sources:
                notes.append(note)
    return notes


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
        "since": pretty(finding.start),
        "until": pretty(day),
        "score": "not yet known" if score is None else f"{score:g}",
        "band": "not yet known" if score is None else band(score),
        "threshold": "" if rule.threshold is None else f"{rule.threshold:g}",
        "rule": rule.id,
        "description": rule.description,
    }
    values.update(finding.values)
    start, end = date.fromordinal(finding.start), date.fromordinal(day)
    created = datetime.combine(end, datetime.max.time(), tzinfo=zone).replace(microsecond=0)
    return Nudge(
        nudge_id=nudge_id(rule.id, rule.version, student.pseudonym, start, end),
        pseudonym=student.pseudonym,
        rule_id=rule.id,
        rule_version=rule.version,
        tier=rule.tier,
        channels=rule.channels,
        route=rule.route,
        mode="shadow" if rule.mode is Mode.SHADOW else "live",
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


_TIER_WORDS = {
    Tier.PROMPT: "an automated prompt to the student",
    Tier.INVITATION: "an invitation for a member of staff to get in touch",
    Tier.REFERRAL: "a referral for staff review",
}


def describe(rules: RuleSet) -> str:
    """The rule set in words, as ``engagement rules check`` prints it."""
    score = rules.score
    w, caps = score.weights, score.caps
    lines = [
        f"Engagement score: 0-5 over the last {score.window_days} days, from attendance "
        f"(weight {w.attendance:g}), days on campus (weight {w.campus_days:g}, full marks at "
        f"{caps.campus_days}), days active online (weight {w.vle_days:g}, full marks at "
        f"{caps.vle_days}) and online actions (weight {w.vle_actions:g}, full marks at "
        f"{caps.vle_actions}).",
        "",
    ]
    for rule in rules.rules:
        lines.append(f"{rule.id} (version {rule.version}, {rule.mode.value})")
        lines.append(f"  {rule.description}")
        who = rule.route.value.replace("_", " ")
        action = _TIER_WORDS[rule.tier]
        channels = f" by {', '.join(c.value for c in rule.channels)}" if rule.channels else ""
        lines.append(f"  Leads to {action} ({who}{channels}).")
        cooldown = f"at most once per episode, and not again within {rule.cooldown_days} days"
        scope = " Sponsored-visa students only." if rule.applies_to == "sponsored_visa" else ""
        lines.append(
            f"  Reads {', '.join(rule.sources)} over {rule.window_days} days; fires {cooldown}."
            + scope
        )
        if rule.mode is Mode.SHADOW:
            lines.append("  Shadow: decisions are logged for review and never sent.")
        elif rule.mode is Mode.OFF:
            lines.append("  Off: not evaluated.")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
