"""The demo's check of the rules against the simulator's ground truth.

Two questions a university asks before switching nudges on: are engaged students left alone
(none in the first two weeks of term, at most 1% over the term), and is a student who drops out
reached within 14 days of it? A *decision* here is a nudge the rules sent on (live, and not held
back by the model for a data gap or an exemption), whatever the notifier then did with it:
an opted-out student's prompt still counts, because the rule was wrong or right all the same.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from kafka import KafkaConsumer, TopicPartition

from agents.model.eventtime import local_day_of_ms
from schemas.settings import Settings
from stream.dev.processes import total
from stream.dev.simulate import DISENGAGING, GroundTruth, Persona, Simulation

EARLY_DAYS: Final = 14
"""The first two weeks of term."""
REACH_DAYS: Final = 14
"""A dropout counts as reached when nudged on days 1-14 of their drop."""
ENGAGED_LIMIT: Final = 0.01


@dataclass(frozen=True)
class Reach:
    """The figures, from which the report lines are made."""

    engaged: int
    engaged_early: int
    engaged_term: int
    last_day: date
    eligible: Counter[str] = field(default_factory=Counter)
    """Dropouts by persona whose 14th day of drop was decided."""
    reached: Counter[str] = field(default_factory=Counter)
    days_to_reach: dict[str, list[int]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The report's section, in words."""
        share = self.engaged_term / self.engaged if self.engaged else 0.0
        verdict = "within" if share <= ENGAGED_LIMIT else "ABOVE"
        out = [
            "\nAgainst the ground truth (decisions the rules made, by the day they decided;",
            f"days decided through {self.last_day:%a %d %b}):",
            f"  engaged students nudged in the first two weeks: {self.engaged_early} of "
            f"{self.engaged}",
            f"  engaged students nudged over the term:          {self.engaged_term} of "
            f"{self.engaged} ({share:.1%}, {verdict} the 1% target)",
            f"  dropouts reached by day {REACH_DAYS} of their drop (of those whose day "
            f"{REACH_DAYS} was decided):",
        ]
        for persona in DISENGAGING:
            name = persona.value
            days = sorted(self.days_to_reach.get(name, []))
            median = f", median day {days[len(days) // 2]}" if days else ""
            out.append(
                f"    {name:<20} {self.reached[name]:>3} of {self.eligible[name]:>3}{median}"
            )
        out.append(
            f"    {'all':<20} {sum(self.reached.values()):>3} of {sum(self.eligible.values()):>3}"
        )
        return out


def decisions(nudges: Iterable[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Pseudonym → the days (ordinals) the rules decided to nudge them, once per nudge id."""
    seen: set[str] = set()
    out: dict[str, list[int]] = {}
    for nudge in nudges:
        if nudge["nudge_id"] in seen or nudge.get("mode") != "live" or nudge.get("suppressed"):
            continue
        seen.add(nudge["nudge_id"])
        day = date.fromisoformat(nudge["explanation"]["window_end"]).toordinal()
        out.setdefault(nudge["pseudonym"], []).append(day)
    return out


def measure(
    truth: GroundTruth,
    pseudonymise: Callable[[str], str],
    decided: Mapping[str, list[int]],
    last_day: int,
) -> Reach:
    """Engaged students nudged early and over the term; dropouts reached within 14 days."""
    start = truth.config.start.toordinal()
    engaged = early = term = 0
    eligible: Counter[str] = Counter()
    reached: Counter[str] = Counter()
    days_to_reach: dict[str, list[int]] = {}
    for student_id, student in truth.students.items():
        days = sorted(d for d in decided.get(pseudonymise(student_id), []) if d <= last_day)
        if student.persona is Persona.ENGAGED:
            engaged += 1
            term += bool(days)
            early += any(d < start + EARLY_DAYS for d in days)
            continue
        if student.disengaged_from is None:
            continue
        drop = student.disengaged_from.toordinal()
        if drop + REACH_DAYS - 1 > last_day:
            continue  # the simulation (or the decided days) ended too soon to tell
        name = student.persona.value
        eligible[name] += 1
        after = [d for d in days if d >= drop]
        if after and after[0] <= drop + REACH_DAYS - 1:
            reached[name] += 1
            days_to_reach.setdefault(name, []).append(after[0] - drop + 1)
    return Reach(engaged, early, term, date.fromordinal(last_day), eligible, reached, days_to_reach)


def read_topic(
    bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """The JSON messages on a topic, read until ``expected`` have come (a count the caller
    knows, such as the worker's nudges) or the deadline passes. The embedded broker's end
    offsets cannot be trusted, so the count is."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(json.loads(r.value) for r in records)
    finally:
        consumer.close()
    return out


def reach_report(
    sim: Simulation,
    worker_metrics: Mapping[str, float],
    bootstrap: str,
    settings: Settings,
    pseudonymise: Callable[[str], str],
) -> str:
    """The demo report's section: every nudge the worker emitted, read back from the nudges
    topic and measured against the simulation's ground truth."""
    expected = int(total(worker_metrics, "engagement_nudges_total"))
    nudges = read_topic(bootstrap, settings.topics.nudges, settings.partitions, expected)
    closed = total(worker_metrics, "engagement_closed_day_timestamp_seconds")
    last_day = local_day_of_ms(int(closed * 1000), settings.zone) - 1
    reach = measure(sim.truth, pseudonymise, decisions(nudges), last_day)
    lines = reach.lines()
    if len(nudges) < expected:
        lines.append(f"  (read {len(nudges)} of the {expected} nudges the worker emitted)")
    return "\n".join(lines)
