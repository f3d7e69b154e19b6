"""Reference data as the engagement model reads it: enrolments, sessions and exemption periods.

Plain values, built by the reference store from Redis and read by the rules and the health
checks; they live in the model so that the model depends on nothing that does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.model.eventtime import pretty


@dataclass(frozen=True)
class Enrolment:
    """What the rules and health checks need from the roster."""

    modules: frozenset[str]
    sponsored_visa: bool
    personal_tutor: str | None
    term_start: int | None = None
    """The first day of the student's current term (a day ordinal), when the roster says."""


@dataclass(frozen=True)
class Session:
    """A timetabled session on one local day, in local hours [start_hour, end_hour)."""

    session_id: str
    module: str
    building: str
    start_hour: int
    end_hour: int


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
