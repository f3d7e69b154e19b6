"""A deterministic cohort simulator: realistic swipes, attendance and VLE clicks with ground truth.

The output drives demos, load tests and end-to-end checks: every number a detector should find
(who disengaged, from when, how many valid events per source) is known in advance.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final, TypeVar
from zoneinfo import ZoneInfo

from schemas.common import Reason, Source
from stream.publisher import Publisher, PublishReport

_SWIPE, _ATTENDANCE, _VLE = Source.SWIPE, Source.ATTENDANCE, Source.VLE  # hot-loop lookups

_T = TypeVar("_T")
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
OVERSIZED_BYTES: Final = 21_000


@dataclass(frozen=True)
class Session:
    """One weekly timetabled session of a student."""

    module: Module
    kind: str  # LEC1, LEC2 or SEM-G<n>
    slot: Slot


@dataclass(frozen=True)
class StudentTruth:
    """What is true about one simulated student."""

    student_id: str
    persona: Persona
    disengaged_from: date | None
    modules: tuple[str, ...]
    events: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "persona": self.persona.value,
            "disengaged_from": self.disengaged_from.isoformat() if self.disengaged_from else None,
            "modules": list(self.modules),
            "events": dict(self.events),
        }


@dataclass(frozen=True)
class GroundTruth:
    """Every figure a correct pipeline should reproduce from the simulated feed."""

    config: SimConfig
    students: dict[str, StudentTruth]
    totals: dict[str, int]
    duplicates: int
    malformed: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        config = asdict(self.config)
        config["start"] = self.config.start.isoformat()
        return {
            "config": config,
            "totals": dict(self.totals),
            "duplicates": self.duplicates,
            "malformed": dict(self.malformed),
            "students": {sid: truth.as_dict() for sid, truth in self.students.items()},
        }

    def to_json(self) -> str:
        """The ground truth as a JSON document."""
        return json.dumps(self.as_dict(), indent=1)

    def write(self, path: Path) -> None:
        """Write :meth:`to_json` to ``path``."""
        path.write_text(self.to_json() + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Simulation:
    """Generated events in event-time order, malformed payloads, and the ground truth."""

    config: SimConfig
    events: list[tuple[Source, dict[str, object]]]
    malformed: list[tuple[Source, bytes, str]]
    truth: GroundTruth
    roster: list[dict[str, object]] = field(default_factory=list)
    timetable: list[dict[str, object]] = field(default_factory=list)

    def write(self, directory: Path) -> dict[str, Path]:
        """Write ``<source>.jsonl`` per source plus ``truth.json``; returns the paths by name."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {source.value: directory / f"{source.value}.jsonl" for source in Source}
        handles = {name: path.open("w", encoding="utf-8") for name, path in paths.items()}
        try:
            for source, event in self.events:
                handles[source.value].write(json.dumps(event, separators=(",", ":")) + "\n")
        finally:
            for handle in handles.values():
                handle.close()
        paths["truth"] = directory / "truth.json"
        self.truth.write(paths["truth"])
        for name, records in (("roster", self.roster), ("timetable", self.timetable)):
            paths[name] = directory / f"{name}.jsonl"
            lines = (json.dumps(record, separators=(",", ":")) + "\n" for record in records)
            paths[name].write_text("".join(lines), encoding="utf-8")
        return paths


@dataclass
class _Student:
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


class _Generator:
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

    def emit(self, source: Source, student: _Student, when: datetime, **fields: object) -> None:
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

    # -- planning -------------------------------------------------------------------------

    def plan(self) -> list[tuple[_Student, random.Random]]:
        """Choose personas and disengagement days, then each student's timetable and rates."""
        # Each student draws from a generator of their own, so an engaged student behaves
        # identically in cohorts of different sizes.
        config = self.config
        cohort = random.Random(config.seed)  # noqa: S311 - simulation, not security
        share = round(config.disengaging_share * config.students)
        chosen = cohort.sample(range(config.students), share)
        personas = {index: DISENGAGING[n % len(DISENGAGING)] for n, index in enumerate(chosen)}
        low, high = min(7, self.days - 1), min(20, self.days - 1)  # weeks 2-3 of the term
        students = []
        for index in range(config.students):
            student_id = f"S{index + 1:07d}"
            persona = personas.get(index, Persona.ENGAGED)
            start_day = None
            if persona is not Persona.ENGAGED:
                start_day = config.start + timedelta(days=cohort.randint(low, high))
            rng = random.Random(f"{config.seed}/{student_id}")  # noqa: S311
            student = _Student(
                student_id=student_id,
                persona=persona,
                disengaged_from=start_day,
                sessions=self._timetable(rng),
                attend_p=rng.uniform(0.78, 0.95),
                vle_rate=rng.uniform(5.0, 15.0),
                library_p=rng.uniform(0.1, 0.5),
            )
            students.append((student, rng))
        return students

    @staticmethod
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

    # -- behaviour ------------------------------------------------------------------------

    @staticmethod
    def decay(student: _Student, day: date) -> float:
        """Activity multiplier for the ``gradual`` persona: halves every week after the start."""
        if student.persona is not Persona.GRADUAL or student.disengaged_from is None:
            return 1.0
        elapsed = (day - student.disengaged_from).days
        return 1.0 if elapsed < 0 else 0.5 ** ((elapsed + 1) / 7)

    @staticmethod
    def stopped(student: _Student, day: date, *personas: Persona) -> bool:
        """Whether the student has disengaged by ``day`` in one of ``personas``' ways."""
        return (
            student.persona in personas
            and student.disengaged_from is not None
            and day >= student.disengaged_from
        )

    def student_day(self, rng: random.Random, student: _Student, day: date, week: int) -> None:
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

    def attends(self, rng: random.Random, student: _Student, day: date, decay: float) -> bool:
        """Whether the student turns up; attendance drop-outs stay under 30% from their day."""
        if self.stopped(student, day, Persona.ATTENDANCE_DROPOUT):
            student.sessions_after += 1
            goes = rng.random() < 0.15 and student.attended_after < 0.25 * student.sessions_after
            student.attended_after += goes
            return goes
        return rng.random() < student.attend_p * decay

    def session(
        self, rng: random.Random, student: _Student, session: Session, day: date, decay: float
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

    def library(self, rng: random.Random, student: _Student, day: date) -> None:
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

    def vle(self, rng: random.Random, student: _Student, day: date, week: int) -> None:
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


def simulate(config: SimConfig | None = None) -> Simulation:
    """Generate a cohort's events, duplicates, malformed payloads and the ground truth."""
    config = config or SimConfig()
    generator = _Generator(config)
    planned = generator.plan()
    for student, rng in planned:
        for offset in range(generator.days):
            day = config.start + timedelta(days=offset)
            generator.student_day(rng, student, day, offset // 7 + 1)
    generator.raw.sort()  # (epoch, order) is unique, so the dicts are never compared
    rng = random.Random(f"{config.seed}/output")  # noqa: S311
    events: list[tuple[Source, dict[str, object]]] = []
    duplicates = 0
    for number, (_, _, source, event) in enumerate(generator.raw):
        event["event_id"] = f"sim-{config.seed}-{number}"
        events.append((source, event))
        if rng.random() < config.duplicate_rate:  # a scanner or exporter retry
            events.append((source, dict(event)))
            duplicates += 1
    generator.raw.clear()
    malformed = list(_malformed(rng, config, events))
    totals = Counter[Source]()
    students = [student for student, _ in planned]
    for student in students:
        totals.update(student.counts)
    truth = GroundTruth(
        config=config,
        students={
            s.student_id: StudentTruth(
                student_id=s.student_id,
                persona=s.persona,
                disengaged_from=s.disengaged_from,
                modules=tuple(dict.fromkeys(session.module.code for session in s.sessions)),
                events={source.value: s.counts[source] for source in Source},
            )
            for s in students
        },
        totals={source.value: totals[source] for source in Source},
        duplicates=duplicates,
        malformed=dict(Counter(reason for _, _, reason in malformed)),
    )
    return Simulation(
        config=config,
        events=events,
        malformed=malformed,
        truth=truth,
        roster=_roster(config, students),
        timetable=_timetable_records(generator, students),
    )


VISA_SHARE: Final = 0.15
TUTORS: Final = 25


def _roster(config: SimConfig, students: list[_Student]) -> list[dict[str, object]]:
    """Roster entries: modules, a personal tutor and (for some) a sponsored visa."""
    rng = random.Random(f"{config.seed}/roster")  # noqa: S311 - its own stream: events unchanged
    return [
        {
            "schema_version": 1,
            "student_id": s.student_id,
            "personal_tutor": f"T{index % TUTORS + 1:03d}",
            "course": "BSc Natural Sciences",
            "modules": sorted({session.module.code for session in s.sessions}),
            "sponsored_visa": rng.random() < VISA_SHARE,
        }
        for index, s in enumerate(students)
    ]


def _timetable_records(generator: _Generator, students: list[_Student]) -> list[dict[str, object]]:
    """Every dated session some student is timetabled for, with the ids the marks carry."""
    held = {
        (session.module.code, session.kind, session.slot)
        for s in students
        for session in s.sessions
    }
    by_code = {module.code: module for module in MODULES}
    records = []
    for offset in range(generator.days):
        day = generator.config.start + timedelta(days=offset)
        for code, kind, slot in sorted(held):
            if slot[0] != day.weekday():
                continue
            start = generator.moment(day, slot[1] * 3600)
            records.append(
                {
                    "schema_version": 1,
                    "session_id": f"{code}-{kind}-{day:%Y%m%d}",
                    "module": code,
                    "building": by_code[code].building,
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(minutes=SESSION_MINUTES)).isoformat(),
                }
            )
    return records


MALFORMED_KINDS: Final = (
    Reason.MALFORMED_JSON,
    Reason.MISSING_FIELD,
    Reason.WRONG_TYPE,
    Reason.INVALID_VALUE,
    Reason.ASSESSMENT_DATA,
    Reason.FORBIDDEN_FIELD,
    Reason.OVERSIZED,
)
REQUIRED_FIELDS: Final = {
    Source.SWIPE: ("event_id", "student_id", "occurred_at", "reader_id", "building"),
    Source.ATTENDANCE: (
        "event_id", "student_id", "occurred_at", "session_id", "module",
        "expected_start", "expected_end", "status",
    ),
    Source.VLE: ("event_id", "student_id", "occurred_at", "platform", "course", "action"),
}  # fmt: skip


def _malformed(
    rng: random.Random, config: SimConfig, events: list[tuple[Source, dict[str, object]]]
) -> Iterator[tuple[Source, bytes, str]]:
    """Broken copies of real events, each with exactly one defect, cycling through the kinds."""
    count = round(config.malformed_rate * len(events))
    if not events or count == 0:
        return
    kinds = [MALFORMED_KINDS[n % len(MALFORMED_KINDS)] for n in range(count)]
    rng.shuffle(kinds)
    vle = [event for source, event in events if source is Source.VLE]
    for number, kind in enumerate(kinds):
        if kind is Reason.OVERSIZED and vle:
            source, template = Source.VLE, rng.choice(vle)
        else:
            source, template = rng.choice(events)
        payload: dict[str, object] = {**template, "event_id": f"sim-{config.seed}-bad-{number}"}
        yield source, _break(rng, source, payload, kind), kind.value


def _break(rng: random.Random, source: Source, payload: dict[str, object], kind: Reason) -> bytes:
    """Apply one defect of ``kind`` to a valid event and return the bytes to send."""
    if kind is Reason.MALFORMED_JSON:
        text = json.dumps(payload)
        if rng.random() < 0.5:
            return text[: rng.randint(1, len(text) - 1)].encode()  # cut off mid-message
        return repr(payload).encode()  # single quotes: a Python dict, not JSON
    if kind is Reason.MISSING_FIELD:
        del payload[rng.choice(REQUIRED_FIELDS[source])]
    elif kind is Reason.WRONG_TYPE:
        choice = rng.randrange(3)
        if choice == 0:
            payload["occurred_at"] = 12
        elif choice == 1:
            payload["occurred_at"] = [str(payload["occurred_at"])]
        else:
            payload["student_id"] = int(str(payload["student_id"]).lstrip("S"))
    elif kind is Reason.INVALID_VALUE:
        payload["occurred_at"] = str(payload["occurred_at"])[:19]  # drop the UTC offset
    elif kind is Reason.ASSESSMENT_DATA:
        field_name, value = rng.choice((("grade", "B+"), ("score", 62), ("final_result", "2:1")))
        payload[field_name] = value
    elif kind is Reason.FORBIDDEN_FIELD:
        field_name, value = rng.choice(
            (("ethnicity", "not stated"), ("disability", "declared"), ("religion", "none"))
        )
        payload[field_name] = value
    elif kind is Reason.OVERSIZED:
        segment = "/chapter-" + "x" * 40
        payload["resource"] = "course-pack" + segment * (OVERSIZED_BYTES // len(segment) + 1)
    return json.dumps(payload, separators=(",", ":")).encode()


def publish_simulation(sim: Simulation, publisher: Publisher) -> PublishReport:
    """Send the simulation in event-time order (malformed payloads raw), then flush."""
    # Malformed payloads are spread evenly through the stream; with envelopes each source's
    # events wait until they fill one (see Publisher.publish_stream).
    report = publisher.publish_stream(_feed(sim))
    publisher.flush()
    return report


def _feed(sim: Simulation) -> Iterator[tuple[Source, dict[str, object] | bytes]]:
    """The events in order, with the malformed payloads spread evenly between them."""
    total, count = len(sim.events), len(sim.malformed)
    malformed = iter(sim.malformed)
    sent = 0
    for index, (source, event) in enumerate(sim.events):
        while sent < count and (sent + 1) * total // (count + 1) <= index:
            bad_source, payload, _ = next(malformed)
            yield bad_source, payload
            sent += 1
        yield source, event
    for bad_source, payload, _ in malformed:
        yield bad_source, payload
