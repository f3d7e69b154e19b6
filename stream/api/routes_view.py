"""One student's engagement as they (or an authorised member of staff) read it.

Built from the same state and the same model the rules decide on: the day facts of
``agents/store/state.py``, the score and band of ``agents/model/score.py`` and each rule's
finder (``agents/model/findings.py``), so what the page shows is what the rules saw. The
response models are the OpenAPI schema.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from agents.model.eventtime import local_day, local_day_of_ms
from agents.model.findings import FINDERS
from agents.model.score import DayFacts, band, score_inputs
from agents.model.student import Student
from schemas.rules import Kind, Rule, RuleSet
from schemas.sources import SOURCES
from stream.api.routes_common import Api, Held

WEEKS = 8


class SourceNow(BaseModel):
    """One source over the score's window: events counted and days with any."""

    source: str
    activity: str = Field(description="What the source counts, in words.")
    events: int
    active_days: int
    last_active: date | None = Field(description="The last day with activity (None: none held).")


class RuleNow(BaseModel):
    """One rule: its window and threshold, and where the student stands against it today."""

    rule_id: str
    version: int
    description: str
    sources: list[str]
    window_days: int
    threshold: str = Field(description="The rule's condition in words.")
    value: dict[str, float | int] = Field(description="The student's numbers over the window.")
    holds: bool = Field(description="Whether the rule's condition holds today.")


class Week(BaseModel):
    """One week (Monday to Sunday) of activity, for the chart."""

    week_start: date
    events: dict[str, int] = Field(description="Events per source.")
    active_days: dict[str, int] = Field(description="Days with activity per source.")
    score: float | None = Field(description="The score on the week's last day held.")


class Engagement(BaseModel):
    """What the student's engagement looks like today, and why."""

    as_of: date
    score: float | None = Field(description="Engagement score 0-5 today (None: not yet known).")
    band: str | None
    explanation: str = Field(description="The score and its band in words.")
    score_window_days: int
    sources: list[SourceNow]
    rules: list[RuleNow]
    weekly: list[Week]


def _threshold(rule: Rule) -> str:
    t = rule.threshold
    if rule.kind in (Kind.INACTIVITY, Kind.NO_CONTACT):
        return f"no activity on {', '.join(rule.sources)} for {rule.window_days} days"
    if rule.kind is Kind.ATTENDANCE_RATE:
        return f"attendance below {round((t or 0) * 100)}% over {rule.window_days} days"
    if rule.kind is Kind.LOW_SCORE:
        return f"score at or below {t:g} every day for {rule.window_days} days"
    return f"score {t:g} or more points below your own average over {rule.window_days} days"


def _value(rule: Rule, student: Student, day: int, rules: RuleSet) -> dict[str, float | int]:
    start = day - rule.window_days + 1
    if rule.kind is Kind.ATTENDANCE_RATE:
        facts = [student.day(d) for d in range(start, day + 1)]
        attended, expected = sum(f.attended for f in facts), sum(f.expected for f in facts)
        rate = round(attended / expected, 4) if expected else 0.0
        return {"sessions_attended": attended, "sessions_expected": expected, "rate": rate}
    if rule.kind in (Kind.LOW_SCORE, Kind.SCORE_DROP):
        score = student.score(day, rules.score)
        return {} if score is None else {"score": score}
    active = [
        d for d in range(start, day + 1) if any(student.day(d).active(s) for s in rule.sources)
    ]
    return {"active_days": len(active)}


def _source(name: str, student: Student, day: int, window: int) -> SourceNow:
    facts = [(d, student.day(d)) for d in range(day - window + 1, day + 1)]
    last = max((d for d in student.facts if d <= day and student.day(d).active(name)), default=None)
    return SourceNow(
        source=name,
        activity=SOURCES[name].activity,
        events=sum(_events(f, name) for _, f in facts),
        active_days=sum(1 for _, f in facts if f.active(name)),
        last_active=None if last is None else date.fromordinal(last),
    )


def _events(facts: DayFacts, name: str) -> int:
    """Events of one source on one day (attendance: sessions attended)."""
    if name == "attendance":
        return facts.attended
    if name == "swipe":
        return facts.swipes
    if name == "vle":
        return facts.vle
    return sum(n for source, n in facts.others if source == name)


def _weeks(student: Student, day: int, rules: RuleSet) -> list[Week]:
    monday = day - date.fromordinal(day).weekday()
    out = []
    for start in range(monday - 7 * (WEEKS - 1), monday + 1, 7):
        days = range(start, min(start + 7, day + 1))
        out.append(
            Week(
                week_start=date.fromordinal(start),
                events={s: sum(_events(student.day(d), s) for d in days) for s in SOURCES},
                active_days={s: sum(student.day(d).active(s) for d in days) for s in SOURCES},
                score=student.score(days[-1], rules.score),
            )
        )
    return out


def _explain(student: Student, day: int, rules: RuleSet, score: float | None) -> str:
    window = rules.score.window_days
    if score is None:
        return (
            f"Your engagement score is not known yet: it needs {window} days of records, "
            "and we do not hold that many for you."
        )
    inputs = score_inputs(student.facts, day, window)
    attended = (
        f"attended {inputs.sessions_attended} of {inputs.sessions_expected} sessions, "
        if inputs.sessions_expected
        else ""
    )
    return (
        f"Your engagement score is {score:g} out of 5 ({band(score)}). Over the last {window} "
        f"days you {attended}were on campus on {inputs.campus_days} days, active online on "
        f"{inputs.vle_days} days, with {inputs.vle_actions} online actions."
    )


async def engagement(api: Api, found: Held, moment: datetime) -> Engagement:
    """The engagement view of one student on the day of ``moment`` (institution time)."""
    zone, rules = api.settings.zone, api.rules
    day = local_day(moment, zone)
    span = rules.history_days + 7 * WEEKS
    item = await api.state.load_student(found.pseudonym, day - span, day)
    enrolment = found.enrolment
    if item is not None:
        student = Student(
            pseudonym=found.pseudonym,
            first_day=local_day_of_ms(item.first_ms, zone),
            facts=item.facts,
            sponsored_visa=bool(enrolment and enrolment.sponsored_visa),
            term_start=enrolment.term_start if enrolment else None,
            states=item.states,
            last_prompt=item.last_prompt,
            known_from=day - span,
        )
    else:
        student = Student(pseudonym=found.pseudonym, first_day=day, facts={})
    score = student.score(day, rules.score)
    window = rules.score.window_days
    return Engagement(
        as_of=date.fromordinal(day),
        score=score,
        band=None if score is None else band(score),
        explanation=_explain(student, day, rules, score),
        score_window_days=window,
        sources=[_source(name, student, day, window) for name in SOURCES],
        rules=[
            RuleNow(
                rule_id=rule.id,
                version=rule.version,
                description=rule.description,
                sources=list(rule.sources),
                window_days=rule.window_days,
                threshold=_threshold(rule),
                value=_value(rule, student, day, rules),
                holds=FINDERS[rule.kind](rule, student, day, rules.score) is not None,
            )
            for rule in rules.active
            if rule.kind is not Kind.ESCALATION
            and (rule.applies_to == "all" or student.sponsored_visa)
        ],
        weekly=_weeks(student, day, rules),
    )
