"""Builders for the model's unit tests: students with crafted days, run through the rules."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from agents.model.pseudonym import Pseudonymiser
from agents.model.rules import evaluate_day
from agents.model.score import DayFacts
from agents.model.student import Student
from schemas.nudges import Nudge
from schemas.rules import Mode, RuleSet, load_rules

LONDON = ZoneInfo("Europe/London")
DEFAULTS = load_rules()
PSEUDONYM = Pseudonymiser(SecretStr("k" * 20))("S7654321")


def only(*rule_ids: str, rules: RuleSet = DEFAULTS, **changes: object) -> RuleSet:
    """The rule set with every rule but ``rule_ids`` switched off (changes apply to those)."""
    kept = []
    for rule in rules.rules:
        if rule.id in rule_ids:
            kept.append(rule.model_copy(update=changes))
        else:
            kept.append(rule.model_copy(update={"mode": Mode.OFF}))
    return rules.model_copy(update={"rules": tuple(kept)})


def student(facts: Mapping[int, DayFacts], first_day: int, **extra: object) -> Student:
    """A student seen first on ``first_day`` with the given days."""
    return Student(PSEUDONYM, first_day, dict(facts), **extra)  # type: ignore[arg-type]


def run(rules: RuleSet, who: Student, first: int, last: int) -> list[Nudge]:
    """Evaluate every day from ``first`` to ``last`` in order, as the detector does."""
    nudges: list[Nudge] = []
    for day in range(first, last + 1):
        nudges.extend(evaluate_day(rules, who, day, LONDON))
    return nudges


def days(first: int, last: int, **counts: int) -> dict[int, DayFacts]:
    """The same facts on every day from ``first`` to ``last``."""
    return {d: DayFacts(**counts) for d in range(first, last + 1)}
