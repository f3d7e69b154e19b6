"""One student as the rules see them: day facts, reference data, data gaps and rule state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agents.model.reference import Period
from agents.model.rulestate import Prompt, RuleState
from agents.model.score import NO_FACTS, DayFacts, daily_score
from schemas.rules import ScoreModel


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
    term_start: int | None = None
    """The first day of the student's current term, from the roster (their enrolment day if
    they joined later); None when the roster does not say."""
    _scores: dict[int, float | None] = field(default_factory=dict)

    def score(self, day: int, model: ScoreModel) -> float | None:
        """The engagement score on a day (cached)."""
        if day not in self._scores:
            self._scores[day] = daily_score(self.facts, day, self.first_day, model)
        return self._scores[day]

    @property
    def observed_from(self) -> int:
        """The first day the rules' windows count: the term start when the roster gives one,
        else the day the student was first seen."""
        return self.first_day if self.term_start is None else self.term_start

    def day(self, day: int) -> DayFacts:
        """Facts of one day."""
        return self.facts.get(day, NO_FACTS)
