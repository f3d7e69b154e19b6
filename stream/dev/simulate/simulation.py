"""Run a simulation: the cohort's events in time order, duplicates, malformed payloads, the
ground truth a correct pipeline must reproduce, and the reference data (roster, timetable).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Final

from schemas.common import Source
from schemas.sources import SOURCES
from stream.dev.simulate.behaviour import Generator
from stream.dev.simulate.cohort import MODULES, SESSION_MINUTES, Persona, SimConfig, Student, plan
from stream.dev.simulate.defects import broken_copies


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
        paths = {str(source): directory / f"{source}.jsonl" for source in SOURCES}
        handles = {name: path.open("w", encoding="utf-8") for name, path in paths.items()}
        try:
            for source, event in self.events:
                handles[str(source)].write(json.dumps(event, separators=(",", ":")) + "\n")
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


def _per_source(counts: Mapping[Source, int]) -> dict[str, int]:
    """Event counts of every registered feed by name, in registration order (0 for a feed
    the simulator does not generate)."""
    by_name = {str(source): count for source, count in counts.items()}
    return {str(source): by_name.get(str(source), 0) for source in SOURCES}


def simulate(config: SimConfig | None = None) -> Simulation:
    """Generate a cohort's events, duplicates, malformed payloads and the ground truth."""
    config = config or SimConfig()
    generator = Generator(config)
    planned = plan(config, generator.days)
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
    malformed = list(broken_copies(rng, config, events))
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
                events=_per_source(s.counts),
            )
            for s in students
        },
        totals=_per_source(totals),
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


def _roster(config: SimConfig, students: list[Student]) -> list[dict[str, object]]:
    """Roster entries: modules, a personal tutor, (for some) a sponsored visa, and the term
    start, from which the rules count their windows."""
    rng = random.Random(f"{config.seed}/roster")  # noqa: S311 - its own stream: events unchanged
    return [
        {
            "schema_version": 1,
            "student_id": s.student_id,
            "personal_tutor": f"T{index % TUTORS + 1:03d}",
            "course": "BSc Natural Sciences",
            "modules": sorted({session.module.code for session in s.sessions}),
            "sponsored_visa": rng.random() < VISA_SHARE,
            "term_starts_on": config.start.isoformat(),
        }
        for index, s in enumerate(students)
    ]


def _timetable_records(generator: Generator, students: list[Student]) -> list[dict[str, object]]:
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
