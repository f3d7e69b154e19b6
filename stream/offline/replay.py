"""Replay and backtest: the live agents' code over historical files, in event time.

Events are read from files (the publisher's formats, or OULAD ``studentVle.csv``), put in
event-time order, and pushed through the same decoding, routing, state script and detector as
the live worker, with Redis but without the broker. The result is the list of decisions the
live system would have made, and a report staff use to validate a rule before switching it on.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from agents.decode import Ingestor, Origin
from agents.detect import Detector
from agents.model.pseudonym import Pseudonymiser
from agents.plausible import TimeBounds
from agents.router import SignalRouter
from agents.store.reference import ReferenceStore
from agents.store.state import EngagementStore
from schemas.common import Source
from schemas.nudges import Nudge
from schemas.rules import RuleSet
from schemas.settings import Settings
from schemas.sources import SOURCES
from stream.offline.backtest import Decision, build_report
from stream.publisher import Unreadable, read_file
from stream.reference import read_records

CHUNK_EVENTS = 2000


@dataclass
class ReplayInput:
    """What to replay."""

    events: list[tuple[str, Path]] = field(default_factory=list)
    """(registered source name, file) pairs."""
    oulad_vle: Path | None = None
    oulad_start: date = date(2013, 10, 7)
    oulad_sites: Path | None = None
    reference: dict[str, Path] = field(default_factory=dict)
    outcomes: Path | None = None
    outcome_course: str | None = None


@dataclass
class ReplayResult:
    """Decisions, counts and the backtest report."""

    nudges: list[Nudge]
    events: int
    refused: Counter[str]
    too_late: int
    duplicates: int
    seconds: float
    report: dict[str, Any]

    @property
    def events_per_second(self) -> float:
        """Replay throughput."""
        return self.events / self.seconds if self.seconds else 0.0


def _timestamp(event: Mapping[str, object]) -> str:
    value = event.get("occurred_at")
    return value if isinstance(value, str) else ""


def _sort_key(item: tuple[str, dict[str, object]]) -> tuple[float, str]:
    text = _timestamp(item[1])
    try:
        return (datetime.fromisoformat(text).timestamp(), str(item[1].get("event_id", "")))
    except ValueError:
        return (0.0, "")  # unreadable times go first; decoding refuses them with the reason


def load_events(spec: ReplayInput, settings: Settings) -> tuple[list[tuple[str, Any]], int]:
    """Every event in event-time order, plus the count of unreadable lines."""
    from stream.offline.oulad import read_oulad_sites, read_oulad_vle

    events: list[tuple[str, Any]] = []
    unreadable = 0
    for source, path in spec.events:
        for event in read_file(path):
            if isinstance(event, Unreadable):
                unreadable += 1
                continue
            events.append((source, event))
    if spec.oulad_vle is not None:
        sites = read_oulad_sites(spec.oulad_sites) if spec.oulad_sites else None
        for event in read_oulad_vle(
            spec.oulad_vle, start=spec.oulad_start, zone=settings.zone, sites=sites
        ):
            events.append((Source.VLE, event))
    events.sort(key=_sort_key)
    return events, unreadable


def _chunks(events: Sequence[tuple[str, Any]], size: int) -> Iterator[Sequence[tuple[str, Any]]]:
    for start in range(0, len(events), size):
        yield events[start : start + size]


class Replayer:
    """Runs the pipeline's pure parts and its Redis state in one process."""

    def __init__(self, settings: Settings, client: aioredis.Redis, rules: RuleSet) -> None:
        self.settings = settings
        self.rules = rules
        self.client = client
        self.prefix = f"replay-{secrets.token_hex(4)}"
        self.pseudonymise = Pseudonymiser(settings.pseudonym_key)
        self.store = EngagementStore(
            client,
            prefix=self.prefix,
            group="replay",
            dedup_ttl_s=settings.dedup_ttl_days * 86_400,
            state_ttl_s=settings.state_ttl_days * 86_400,
        )
        self.reference = ReferenceStore(client, self.prefix, self.pseudonymise, settings.zone)
        grace_ms = int(settings.late_grace_hours * 3_600_000)
        self.detector = Detector(
            self.store,
            self.reference,
            rules,
            settings.zone,
            grace_ms=grace_ms,
            partitions=settings.partitions,
        )
        self.ingestors = {
            source: Ingestor(
                source,
                self.pseudonymise,
                settings.zone,
                max_message_bytes=settings.max_message_bytes,
                max_event_bytes=settings.max_event_bytes,
                max_skew_s=settings.max_clock_skew_s,
                times=TimeBounds.of(settings.term_start, settings.zone, settings.late_grace_hours),
            )
            for source in SOURCES
        }
        self.router = SignalRouter(settings.partitions, settings.feed_idle_s)
        self.offsets: dict[int, int] = {}

    async def load_reference(self, files: Mapping[str, Path]) -> Counter[str]:
        """Load roster, timetable and exemption files (JSONL, as ``engagement reference``)."""
        refused: Counter[str] = Counter()
        for kind, path in files.items():
            records, problems = read_records(kind, path.read_text(encoding="utf-8").splitlines())
            for problem in problems:
                refused[f"{kind}: {problem}"] += 1
            for key, value in records:
                await self.reference.apply(kind, key.encode(), value)
        return refused

    async def run(
        self, events: Sequence[tuple[str, Any]], refused: Counter[str] | None = None
    ) -> tuple[list[Nudge], Counter[str], int, int]:
        """Push the events through in chunks; returns nudges, refusals, too-late, duplicates."""
        refused = refused if refused is not None else Counter()
        nudges: list[Nudge] = []
        too_late = duplicates = 0
        for number, chunk in enumerate(_chunks(events, CHUNK_EVENTS)):
            signals: list[dict[str, Any]] = []
            by_source: dict[str, list[Any]] = {}
            for source, event in chunk:
                by_source.setdefault(source, []).append(event)
            for source, items in sorted(by_source.items()):
                origin = Origin(f"replay.{source!s}", 0, number, None)
                result = self.ingestors[source].decode_events(items, origin)
                signals.extend(result.signals)
                for letter in result.dead:
                    refused[letter.reason.value] += 1
            # Every feed counts as active while the input lasts (replay time stands still).
            late, dupes = await self._apply(self.router.route(signals, 0.0), nudges)
            too_late += late
            duplicates += dupes
        # The input has ended: every feed is idle, as it is live once the feeds fall silent.
        await self._apply(self.router.route([], math.inf), nudges)
        return nudges, refused, too_late, duplicates

    async def _apply(self, routed: list[tuple[int, bytes]], nudges: list[Nudge]) -> tuple[int, int]:
        messages = []
        for partition, payload in routed:
            offset = self.offsets.get(partition, -1) + 1
            self.offsets[partition] = offset
            messages.append((partition, offset, payload))
        applied = await self.store.apply(messages, self.detector.grace_ms)
        detection = await self.detector.evaluate(range(self.settings.partitions))
        nudges.extend(detection.nudges)
        await detection.commit()
        return len(applied.late), applied.duplicates

    async def students(self) -> set[str]:
        """Every student the replay saw."""
        seen: set[str] = set()
        for partition in range(self.settings.partitions):
            seen.update(await self.store.members(partition))
        return seen

    async def cleanup(self) -> None:
        """Remove every key the replay wrote."""
        batch: list[Any] = []
        async for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await self.client.delete(*batch)
                batch.clear()
        if batch:
            await self.client.delete(*batch)


def decisions_of(nudges: Iterable[Nudge]) -> list[Decision]:
    """Backtest rows of the nudges."""
    return [
        Decision(
            nudge_id=n.nudge_id,
            rule_id=n.rule_id,
            pseudonym=n.pseudonym,
            day=n.explanation.window_end,
            tier=n.tier.value,
            mode=n.mode,
            suppressed=n.suppressed,
        )
        for n in nudges
    ]


async def replay(
    spec: ReplayInput, settings: Settings, client: aioredis.Redis, rules: RuleSet
) -> ReplayResult:
    """Replay ``spec`` and build the backtest report."""
    from stream.offline.oulad import read_outcomes

    started = time.perf_counter()
    events, unreadable = load_events(spec, settings)
    replayer = Replayer(settings, client, rules)
    try:
        refused = await replayer.load_reference(spec.reference)
        if unreadable:
            refused["unreadable_line"] += unreadable
        nudges, refused, too_late, duplicates = await replayer.run(events, refused)
        students = await replayer.students()
        first = await replayer.store.first_day()
        closed = await replayer.detector.closed_day()
    finally:
        await replayer.cleanup()
    seconds = time.perf_counter() - started
    outcomes = None
    if spec.outcomes is not None:
        raw = read_outcomes(spec.outcomes, course=spec.outcome_course)
        outcomes = {replayer.pseudonymise(sid): outcome for sid, outcome in raw.items()}
    today = datetime.now(UTC).date()
    first_day = date.fromordinal(first) if first is not None else today
    last_day = (
        date.fromordinal(closed) if closed is not None and closed >= (first or 0) else first_day
    )
    report = build_report(
        decisions_of(nudges),
        students=students,
        first_day=first_day,
        last_day=last_day,
        outcomes=outcomes,
        rules=[rule.id for rule in rules.active],
    )
    report["replay"] = {
        "events": len(events),
        "refused": dict(sorted(refused.items())),
        "too_late": too_late,
        "duplicates": duplicates,
        "seconds": round(seconds, 2),
        "events_per_second": round(len(events) / seconds) if seconds else 0,
    }
    return ReplayResult(nudges, len(events), refused, too_late, duplicates, seconds, report)


def _median(values: Sequence[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2


def truth_summary(
    truth: Mapping[str, Any], nudges: Iterable[Nudge], pseudonymise: Pseudonymiser, last_day: date
) -> dict[str, Any]:
    """Compare decisions with a simulation's ground truth: who disengaged, who was reached.

    A student counts as reached by their first live decision that is not suppressed (shadow
    rules and suppressed records are not contact). For disengaging students the figures say
    how many days after they disengaged that came, and how many days before the period ended.
    """
    first: dict[str, date] = {}
    for nudge in nudges:
        if nudge.mode == "live" and nudge.suppressed is None:
            day = nudge.explanation.window_end
            if nudge.pseudonym not in first or day < first[nudge.pseudonym]:
                first[nudge.pseudonym] = day
    personas: dict[str, dict[str, Any]] = {}
    for student_id, facts in sorted(truth["students"].items()):
        persona = facts["persona"]
        row = personas.setdefault(
            persona, {"students": 0, "reached": 0, "_after": [], "_before_end": []}
        )
        row["students"] += 1
        reached = first.get(pseudonymise(student_id))
        since = facts.get("disengaged_from")
        if reached is None:
            continue
        if since is not None and reached < date.fromisoformat(since):
            continue  # reached before disengaging: not evidence the model caught it
        row["reached"] += 1
        if since is not None:
            row["_after"].append((reached - date.fromisoformat(since)).days)
        row["_before_end"].append((last_day - reached).days)
    for row in personas.values():
        after, before = row.pop("_after"), row.pop("_before_end")
        row["share_reached"] = round(row["reached"] / row["students"], 3)
        row["median_days_after_disengaging"] = _median(after)
        row["median_days_before_end"] = _median(before)
    return personas
