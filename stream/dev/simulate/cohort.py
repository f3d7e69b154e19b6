"""The simulated cohort: personas, modules and timetables, and each student's plan and rates.

A cohort is planned once from the seed (who disengages, from which day, which modules and
seminar groups, how often they attend, click and visit the library); what they then do each
day is :mod:`stream.dev.simulate.behaviour`.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from schemas.common import Source

Slot = tuple[int, int]
"""A weekly timetable slot: (weekday 0=Monday, start hour)."""


class Persona(StrEnum):
    """How a simulated student behaves; every persona but ``engaged`` disengages on a day."""

    ENGAGED = "engaged"
    VLE_DROPOUT = "vle_dropout"
    ATTENDANCE_DROPOUT = "attendance_dropout"
    FULL_DROPOUT = "full_dropout"
    GRADUAL = "gradual"


DISENGAGING: Final = (
    Persona.VLE_DROPOUT,
    Persona.ATTENDANCE_DROPOUT,
    Persona.FULL_DROPOUT,
    Persona.GRADUAL,
)


@dataclass(frozen=True)
class SimConfig:
    """What to simulate; the same config always yields the same events."""

    students: int = 500
    weeks: int = 4
    start: date = date(2026, 9, 28)  # a Monday; 4 weeks reach the clocks going back on 25 Oct
    seed: int = 7
    timezone: str = "Europe/London"
    duplicate_rate: float = 0.01
    malformed_rate: float = 0.002
    disengaging_share: float = 0.12

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "malformed_rate", "disengaging_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                msg = f"{name} must be between 0 and 1, got {value}"
                raise ValueError(msg)
        if self.students < 1 or self.weeks < 1:
            msg = "students and weeks must be at least 1"
            raise ValueError(msg)
        ZoneInfo(self.timezone)  # fail early on an unknown zone


@dataclass(frozen=True)
class Module:
    """A module with fixed weekly lecture slots and alternative seminar-group slots."""

    code: str
    building: str
    lectures: tuple[Slot, ...]
    seminar_groups: tuple[Slot, ...]

    @property
    def weekly_sessions(self) -> int:
        """Sessions a student on this module has each week (lectures + one seminar)."""
        return len(self.lectures) + 1


# Lecture slots never clash with each other or with any seminar slot, so any combination of
# modules and seminar groups makes a clash-free personal timetable.
MODULES: Final = (
    Module("CS1010", "Turing", ((0, 9), (2, 11)), ((1, 10), (3, 14), (4, 11))),
    Module("MA1020", "Noether", ((0, 11), (3, 9)), ((1, 14), (2, 15), (4, 9))),
    Module("PH1030", "Faraday", ((1, 9),), ((2, 14), (3, 11), (4, 14))),
    Module("EC1040", "Keynes", ((0, 14), (3, 15)), ((1, 11), (2, 9), (4, 15))),
    Module("ST1050", "Noether", ((1, 15),), ((0, 16), (2, 16), (3, 13))),
    Module("PS1060", "Hub", ((4, 10),), ((0, 13), (1, 13), (3, 10))),
)
SESSION_MINUTES: Final = 50
WEEKLY_SESSIONS: Final = (8, 10)  # inclusive range per student
PLATFORM: Final = "moodle"
VLE_ACTIONS: Final = (("viewed", 0.68), ("downloaded", 0.2), ("posted", 0.08), ("submitted", 0.04))
CAPTURE_METHODS: Final = (("card", 0.8), ("register", 0.1), ("qr", 0.07), ("app", 0.03))
DOWNLOADS: Final = ("slides.pdf", "reading.pdf")
PAGES: Final = ("slides.pdf", "reading.pdf", "recording", "page", "quiz")
LIBRARY: Final = "Library"


@dataclass(frozen=True)
class Session:
    """One weekly timetabled session of a student."""

    module: Module
    kind: str  # LEC1, LEC2 or SEM-G<n>
    slot: Slot


@dataclass
class Student:
    """A student's plan: timetable, persona and personal rates."""

    student_id: str
    persona: Persona
    disengaged_from: date | None
    sessions: tuple[Session, ...]
    attend_p: float
    vle_rate: float
    library_p: float
    counts: Counter[Source] = field(default_factory=Counter)
    attended_after: int = 0
    sessions_after: int = 0


def plan(config: SimConfig, days: int) -> list[tuple[Student, random.Random]]:
    """Choose personas and disengagement days, then each student's timetable and rates."""
    # Each student draws from a generator of their own, so an engaged student behaves
    # identically in cohorts of different sizes.
    cohort = random.Random(config.seed)  # noqa: S311 - simulation, not security
    share = round(config.disengaging_share * config.students)
    chosen = cohort.sample(range(config.students), share)
    personas = {index: DISENGAGING[n % len(DISENGAGING)] for n, index in enumerate(chosen)}
    low, high = min(7, days - 1), min(20, days - 1)  # weeks 2-3 of the term
    students = []
    for index in range(config.students):
        student_id = f"S{index + 1:07d}"
        persona = personas.get(index, Persona.ENGAGED)
        start_day = None
        if persona is not Persona.ENGAGED:
            start_day = config.start + timedelta(days=cohort.randint(low, high))
        rng = random.Random(f"{config.seed}/{student_id}")  # noqa: S311
        student = Student(
            student_id=student_id,
            persona=persona,
            disengaged_from=start_day,
            sessions=_timetable(rng),
            attend_p=rng.uniform(0.78, 0.95),
            vle_rate=rng.uniform(5.0, 15.0),
            library_p=rng.uniform(0.1, 0.5),
        )
        students.append((student, rng))
    return students


def _timetable(rng: random.Random) -> tuple[Session, ...]:
    """3-4 modules giving 8-10 sessions a week, one seminar group per module."""
    while True:
        modules = rng.sample(MODULES, rng.choice((3, 4)))
        total = sum(module.weekly_sessions for module in modules)
        if WEEKLY_SESSIONS[0] <= total <= WEEKLY_SESSIONS[1]:
            break
    sessions = []
    for module in sorted(modules, key=lambda m: m.code):
        for number, slot in enumerate(module.lectures, start=1):
            sessions.append(Session(module, f"LEC{number}", slot))
        group = rng.randrange(len(module.seminar_groups))
        sessions.append(Session(module, f"SEM-G{group + 1}", module.seminar_groups[group]))
    return tuple(sessions)
