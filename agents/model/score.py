"""The daily engagement score: 0-5 over the trailing days, from capped, weighted inputs.

Each input is scored 0..1: the share of expected sessions attended, days on campus (days with
a card swipe), days active on the VLE, and VLE actions; the last three are divided by a cap
and clipped at 1, so a student who swipes twenty times a day scores no more for it than one
who swipes once. The score is 5 times the weighted mean of the inputs. An input with nothing
to measure (no timetabled sessions in the window) is left out rather than counted as zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.rules import ScoreModel

BANDS: tuple[tuple[float, str], ...] = (
    (1.0, "very low"),
    (2.0, "low"),
    (3.0, "moderate"),
    (4.0, "good"),
    (5.0, "high"),
)


@dataclass(frozen=True)
class DayFacts:
    """What one student did on one day."""

    present: int = 0
    late: int = 0
    absent: int = 0
    excused: int = 0
    swipes: int = 0
    vle: int = 0
    others: tuple[tuple[str, int], ...] = ()
    """Events of every other registered feed (``library``, …), by source name."""

    @property
    def attended(self) -> int:
        """Sessions attended, late or not."""
        return self.present + self.late

    @property
    def expected(self) -> int:
        """Sessions the student was expected at: excused absences do not count."""
        return self.present + self.late + self.absent

    def active(self, source: str) -> bool:
        """Whether the day shows the student doing something on ``source``."""
        if source == "vle":
            return self.vle > 0
        if source == "swipe":
            return self.swipes > 0
        if source == "attendance":
            return self.attended > 0
        return any(n > 0 for name, n in self.others if name == source)


NO_FACTS = DayFacts()


@dataclass(frozen=True)
class ScoreInputs:
    """The counts a score is made of, over its window."""

    sessions_attended: int
    sessions_expected: int
    campus_days: int
    vle_days: int
    vle_actions: int

    def as_dict(self) -> dict[str, float | int]:
        """For explanations."""
        return {
            "sessions_attended": self.sessions_attended,
            "sessions_expected": self.sessions_expected,
            "campus_days": self.campus_days,
            "vle_days": self.vle_days,
            "vle_actions": self.vle_actions,
        }


def score_inputs(facts: Mapping[int, DayFacts], day: int, window_days: int) -> ScoreInputs:
    """Sum the window of ``window_days`` days ending on ``day`` (inclusive)."""
    attended = expected = campus = vle_days = actions = 0
    for d in range(day - window_days + 1, day + 1):
        f = facts.get(d, NO_FACTS)
        attended += f.attended
        expected += f.expected
        campus += f.swipes > 0
        vle_days += f.vle > 0
        actions += f.vle
    return ScoreInputs(attended, expected, campus, vle_days, actions)


def score_of(inputs: ScoreInputs, model: ScoreModel) -> float:
    """The 0-5 score of some inputs, rounded to one decimal place."""
    w, caps = model.weights, model.caps
    parts: list[tuple[float, float]] = [
        (w.campus_days, min(1.0, inputs.campus_days / caps.campus_days)),
        (w.vle_days, min(1.0, inputs.vle_days / caps.vle_days)),
        (w.vle_actions, min(1.0, inputs.vle_actions / caps.vle_actions)),
    ]
    if inputs.sessions_expected:
        parts.append((w.attendance, inputs.sessions_attended / inputs.sessions_expected))
    total = sum(weight for weight, _ in parts)
    if total <= 0:
        return 0.0
    return round(5 * sum(weight * value for weight, value in parts) / total, 1)


def band(score: float) -> str:
    """The band of a score in words: very low (0-1), low, moderate, good, high (4-5)."""
    for upper, name in BANDS:
        if score <= upper:
            return name
    return BANDS[-1][1]


def daily_score(
    facts: Mapping[int, DayFacts], day: int, first_day: int, model: ScoreModel
) -> float | None:
    """The score on ``day``, or None before the student has a full window of history."""
    if day - first_day + 1 < model.window_days:
        return None
    return score_of(score_inputs(facts, day, model.window_days), model)
