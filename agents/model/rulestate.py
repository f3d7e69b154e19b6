"""What the rules remember about one student between days, and its compact text form.

Per rule: the current episode and the last decision (``RuleState``); per student: the last
live prompt (``Prompt``), which escalation rules follow. The store keeps all of it in one hash
field, written by :func:`encode_states` and read back by :func:`decode_states`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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


@dataclass(frozen=True)
class Prompt:
    """The last live prompt issued to a student (what escalation rules follow)."""

    day: int
    rule_id: str
    score: float | None


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
