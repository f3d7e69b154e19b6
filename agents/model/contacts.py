"""A sponsored student's contact points on one day, as kept for UKVI. Pure.

When a day closes, each student the roster marks as visa-sponsored gets one record for it: the
timetabled sessions of their modules, their register marks, their other engagement (swipes,
VLE, library), the exemption covering the day and whether a data gap covered their register.
The record holds the counts; what counts as expected, attended and missed is read from them
here, so that a report and an inspector reading the raw record agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agents.model.reference import Enrolment, Period, Session
from agents.model.score import DayFacts

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DayRecord:
    """One day of one sponsored student (field names are the stored JSON's keys)."""

    s: int = 0  # timetabled sessions of the student's modules
    p: int = 0  # register marks: present
    l: int = 0  # late  # noqa: E741 - the stored key, kept short: one per day for years
    a: int = 0  # absent
    e: int = 0  # excused (an authorised absence from one session)
    n: int = 0  # other engagement events: swipes, VLE, library
    x: str = ""  # the exemption covering the day (placement, break in learning …), if any
    g: bool = False  # a data gap covered the register that day: misses are unknown

    @property
    def points(self) -> int:
        """Contact points of the day: the timetabled sessions, or more if more were marked."""
        return max(self.s, self.p + self.l + self.a + self.e)

    @property
    def attended(self) -> int:
        """Contact points attended: marked present or late."""
        return self.p + self.l

    @property
    def excused(self) -> int:
        """Contact points not expected: excused marks, or all of an exempt day's."""
        if self.x:
            return self.points - self.attended
        return self.e

    @property
    def unknown(self) -> int:
        """Contact points a data gap leaves unknown (neither attended nor missed)."""
        if self.x or not self.g:
            return 0
        return self.points - self.attended - self.e

    @property
    def expected(self) -> int:
        """Contact points the student was expected at and whose outcome is known."""
        return self.points - self.excused - self.unknown

    @property
    def missed(self) -> int:
        """Expected contact points not attended."""
        return self.expected - self.attended

    def encode(self) -> str:
        """The stored JSON (compact: one of these per sponsored student per teaching day)."""
        body: dict[str, int | str] = {
            "v": SCHEMA_VERSION,
            "s": self.s,
            "p": self.p,
            "l": self.l,
            "a": self.a,
        }
        body.update({"e": self.e, "n": self.n, "x": self.x, "g": int(self.g)})
        return json.dumps(body, separators=(",", ":"))


def decode(text: str | bytes) -> DayRecord | None:
    """A stored record, or None when it is not one this release can read."""
    try:
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("v") != SCHEMA_VERSION:
            return None
        counts = {k: int(body.get(k, 0)) for k in ("s", "p", "l", "a", "e", "n")}
        if any(v < 0 for v in counts.values()):
            return None
        return DayRecord(**counts, x=str(body.get("x") or ""), g=bool(body.get("g")))
    except (ValueError, TypeError):
        return None


def _scheduled(sessions: Iterable[Session], modules: frozenset[str]) -> int:
    return sum(1 for s in sessions if s.module in modules)


def day_record(
    day: int,
    facts: DayFacts | None,
    sessions: Sequence[Session],
    enrolment: Enrolment,
    exemptions: Sequence[Period] = (),
    *,
    gap: bool = False,
) -> DayRecord | None:
    """The record of ``day``, or None when the day holds nothing about the student (no
    contact point and no activity), so that only teaching days are kept."""
    f = facts or DayFacts()
    other = f.swipes + f.vle + sum(n for _, n in f.others)
    exempt = next((p.kind for p in exemptions if p.overlaps(day, day)), "")
    record = DayRecord(
        s=_scheduled(sessions, enrolment.modules),
        p=f.present,
        l=f.late,
        a=f.absent,
        e=f.excused,
        n=other,
        x=exempt,
        g=gap,
    )
    if record.points == 0 and record.n == 0:
        return None
    return record
