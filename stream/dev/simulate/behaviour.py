"""What a planned student does each day: card swipes, attendance marks and VLE clicks.

The generator turns one student-day into time-stamped events with the rates, rhythms and
persona-specific decline of :mod:`stream.dev.simulate.cohort`; it draws only from the
student's own random generator, so the events depend on nothing but the seed.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from schemas.common import Source
from stream.dev.simulate.cohort import (
    CAPTURE_METHODS,
    DOWNLOADS,
    LIBRARY,
    PAGES,
    PLATFORM,
    SESSION_MINUTES,
    VLE_ACTIONS,
    Persona,
    Session,
    SimConfig,
    Student,
)

_SWIPE, _ATTENDANCE, _VLE = Source.SWIPE, Source.ATTENDANCE, Source.VLE  # hot-loop lookups

_T = TypeVar("_T")


# (epoch seconds, generation order, source, the event with its id still to fill in)
_Raw = tuple[float, int, Source, dict[str, object]]


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    """Pick a value from (value, weight) pairs whose weights sum to 1."""
    roll = rng.random()
    for value, weight in choices:
        roll -= weight
        if roll < 0:
            return value
    return choices[-1][0]


def _pick(rng: random.Random, items: tuple[_T, ...]) -> _T:
    """``rng.choice`` without its overhead, for the hot loop."""
    return items[int(rng.random() * len(items))]


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's Poisson sampler; fine for the small daily means used here."""
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


class Generator:
    """Builds one simulation; holds the zone, the clock helpers and the output buffer."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self.days = config.weeks * 7
        self.raw: list[_Raw] = []
        self._order = 0
        self._midnights: dict[date, datetime] = {}

    # -- time helpers ---------------------------------------------------------------------

    def moment(self, day: date, seconds: float) -> datetime:
        """The aware local wall-clock time ``seconds`` after midnight on ``day``."""
        midnight = self._midnights.get(day)
        if midnight is None:
            midnight = datetime(day.year, day.month, day.day, tzinfo=self.zone)
            self._midnights[day] = midnight
        return midnight + timedelta(seconds=int(seconds))

    def emit(self, source: Source, student: Student, when: datetime, **fields: object) -> None:
        """Record one valid event at ``when``."""
        event: dict[str, object] = {
            "event_id": "",  # numbered once every event is in time order
            "schema_version": 1,
            "student_id": student.student_id,
            "occurred_at": when.isoformat(),
        }
        event.update(fields)
        self._order += 1
        self.raw.append((when.timestamp(), self._order, source, event))
        student.counts[source] += 1

    # -- behaviour ------------------------------------------------------------------------

    @staticmethod
    def decay(student: Student, day: date) -> float:
        """Activity multiplier for the ``gradual`` persona: halves every week after the start."""
        if student.persona is not Persona.GRADUAL or student.disengaged_from is None:
            return 1.0
        elapsed = (day - student.disengaged_from).days
        return 1.0 if elapsed < 0 else 0.5 ** ((elapsed + 1) / 7)

    @staticmethod
    def stopped(student: Student, day: date, *personas: Persona) -> bool:
        """Whether the student has disengaged by ``day`` in one of ``personas``' ways."""
        return (
            student.persona in personas
            and student.disengaged_from is not None
            and day >= student.disengaged_from
        )

    def student_day(self, rng: random.Random, student: Student, day: date, week: int) -> None:
        """All events of one student on one day."""
        if self.stopped(student, day, Persona.FULL_DROPOUT):
            return
        decay = self.decay(student, day)
        weekday = day.weekday()
        for session in student.sessions:
            if session.slot[0] == weekday:
                self.session(rng, student, session, day, decay)
        library_p = student.library_p * (1.0 if weekday < 5 else 0.4) * decay
        if rng.random() < library_p:
            self.library(rng, student, day)
        if not self.stopped(student, day, Persona.VLE_DROPOUT):
            mean = student.vle_rate * (1.0 if weekday < 5 else 0.45) * decay
            for _ in range(_poisson(rng, mean)):
                self.vle(rng, student, day, week)

    def attends(self, rng: random.Random, student: Student, day: date, decay: float) -> bool:
        """Whether the student turns up; attendance drop-outs stay under 30% from their day."""
        if self.stopped(student, day, Persona.ATTENDANCE_DROPOUT):
            student.sessions_after += 1
            goes = rng.random() < 0.15 and student.attended_after < 0.25 * student.sessions_after
            student.attended_after += goes
            return goes
        return rng.random() < student.attend_p * decay

    def session(
        self, rng: random.Random, student: Student, session: Session, day: date, decay: float
    ) -> None:
        """The attendance mark for one session, and the card swipes of a student who came."""
        module = session.module
        start = self.moment(day, session.slot[1] * 3600)
        end = start + timedelta(minutes=SESSION_MINUTES)
        method = _weighted(rng, CAPTURE_METHODS)
        if self.attends(rng, student, day, decay):
            late = rng.random() < 0.1
            status = "late" if late else "present"
            offset = rng.uniform(300, 1200) if late else -rng.uniform(0, 900)
            arrival = start + timedelta(seconds=int(offset))
            reader = f"{module.building[:3].upper()}-DOOR-{rng.randint(1, 3)}"
            if rng.random() < 0.92:  # the rest tailgate or use another entrance
                self.emit(
                    _SWIPE, student, arrival,
                    reader_id=reader, building=module.building, direction="in",
                )  # fmt: skip
            if rng.random() < 0.35:
                leaving = end + timedelta(seconds=rng.randint(0, 600))
                self.emit(
                    _SWIPE, student, leaving,
                    reader_id=reader, building=module.building, direction="out",
                )  # fmt: skip
            seconds = rng.randint(20, 180) if method == "card" else rng.randint(300, 900)
            marked = (arrival if method == "card" else start) + timedelta(seconds=seconds)
        elif rng.random() < 0.15:
            status, marked = "excused", start - timedelta(seconds=rng.randint(600, 3 * 3600))
        else:
            status, marked = "absent", end + timedelta(seconds=rng.randint(60, 1800))
        self.emit(
            _ATTENDANCE, student, marked,
            session_id=f"{module.code}-{session.kind}-{day:%Y%m%d}",
            module=module.code,
            expected_start=start.isoformat(),
            expected_end=end.isoformat(),
            status=status,
            capture_method=method,
        )  # fmt: skip

    def library(self, rng: random.Random, student: Student, day: date) -> None:
        """A library visit: in at the gate, usually out again a while later."""
        arrive = rng.uniform(9 * 3600, 19 * 3600)
        gate = f"LIB-GATE-{rng.randint(1, 2)}"
        self.emit(
            _SWIPE, student, self.moment(day, arrive),
            reader_id=gate, building=LIBRARY, direction="in",
        )  # fmt: skip
        if rng.random() < 0.9:
            leave = min(arrive + rng.uniform(40 * 60, 200 * 60), 23.5 * 3600)
            self.emit(
                _SWIPE, student, self.moment(day, leave),
                reader_id=gate, building=LIBRARY, direction="out",
            )  # fmt: skip

    def vle(self, rng: random.Random, student: Student, day: date, week: int) -> None:
        """One VLE action, timed on a daily rhythm peaking late morning and in the evening."""
        roll = rng.random()
        if roll < 0.45:
            hour = rng.gauss(11.0, 1.3)
        elif roll < 0.9:
            hour = rng.gauss(20.5, 1.6)
        else:
            hour = rng.uniform(7.0, 24.0)
        seconds = (hour % 24.0) * 3600  # a late evening spills past midnight into the small hours
        module = _pick(rng, student.sessions).module.code
        action = _weighted(rng, VLE_ACTIONS)
        if action == "downloaded":
            resource = f"{module}/week-{week}/{_pick(rng, DOWNLOADS)}"
        elif action == "posted":
            resource = f"{module}/forum/thread-{rng.randint(1, 40)}"
        elif action == "submitted":
            resource = f"{module}/assignment-{1 + (week - 1) // 2}"
        else:
            page = _pick(rng, PAGES)
            resource = f"{module}/week-{week}/{page}"
        self.emit(
            _VLE, student, self.moment(day, seconds),
            platform=PLATFORM, course=module, action=action, resource=resource,
        )  # fmt: skip
