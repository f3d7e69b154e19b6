"""Detection: source health and rule decisions for every day the watermark has closed.

A day is *closed* once every signals partition's watermark has passed its end by the grace
period: no event of that day can still be counted (a later one is dead-lettered as too late),
so a decision taken then is final, and a live run and a replay of the same events take the
same decisions. Each closed day is first checked for data gaps, then every student on the
partition is evaluated for it, in day order.

A register correction made on a later day than the session it corrects takes effect on the
day it was made (:mod:`agents.model.corrections`): decisions before that day read the marks as
they stood, so they never depend on when the correction happened to arrive; on that day the
rules' earlier decisions that counted the session are re-evaluated and recorded as based on
data later corrected.

Nudges and gap events are sent before the detector records what it decided
(``Detection.commit``), so a crash in between decides again and re-sends the same ids, which
the notifier delivers once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from agents.model.corrections import apply_corrections, take_effect
from agents.model.eventtime import local_day_of_ms
from agents.model.health import HealthConfig, covers, find_gaps, watched_sources
from agents.model.reference import Enrolment
from agents.model.rules import evaluate_day
from agents.model.rulestate import encode_states
from agents.model.score import DayFacts
from agents.model.student import Student
from agents.store.reference import ReferenceStore
from agents.store.state import EngagementStore, StoredStudent
from agents.store.ukvi import UkviRecorder
from schemas.health import SourceGap
from schemas.nudges import Nudge
from schemas.rules import RuleSet
from schemas.sources import SOURCES, SourceRegistry


@dataclass
class Detection:
    """Gaps and nudges found in one pass, and the bookkeeping to do once they are sent."""

    nudges: list[Nudge] = field(default_factory=list)
    gaps: list[SourceGap] = field(default_factory=list)
    closed_day: int | None = None
    evaluations: int = 0
    _after_send: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def commit(self) -> None:
        """Record what was decided; call only after every output was acknowledged."""
        for step in self._after_send:
            await step()


class Detector:
    """Finds the days the watermark closed and decides them."""

    def __init__(
        self,
        store: EngagementStore,
        reference: ReferenceStore,
        rules: RuleSet,
        zone: ZoneInfo,
        *,
        grace_ms: int,
        partitions: int,
        health: HealthConfig | None = None,
        sources: SourceRegistry = SOURCES,
        ukvi: UkviRecorder | None = None,
    ) -> None:
        self.store = store
        self.reference = reference
        self.rules = rules
        self.zone = zone
        self.grace_ms = grace_ms
        self.partitions = partitions
        self.health = health or HealthConfig()
        self.sources = sources
        # Sponsored students' daily records for UKVI, written as each day closes.
        self.ukvi = ukvi if ukvi is not None else UkviRecorder(store.redis, store.prefix)
        # pseudonym -> (last day read, day -> facts) for closed days, which never change; and
        # the scores of closed days, which therefore never change either
        self._facts: dict[str, tuple[int, dict[int, DayFacts]]] = {}
        self._scores: dict[str, dict[int, float | None]] = {}
        # The last closed day this worker knows is decided (health, and per partition), so a
        # batch that closes no new day costs one read of the watermarks and nothing more. A
        # partition another worker decided further is read from Redis, never assumed.
        self._health_done = -1
        self._decided: dict[int, int] = {}

    async def closed_day(self) -> int | None:
        """The last day every partition's watermark has passed by the grace period."""
        watermarks = await self.store.watermarks()
        if len(watermarks) < self.partitions:
            return None  # a partition has not been heard from yet: its events may be pending
        clock = min(watermarks.values()) - self.grace_ms
        return local_day_of_ms(clock, self.zone) - 1

    async def evaluate(self, partitions: Iterable[int]) -> Detection:
        """Check health and decide every newly closed day for the given partitions."""
        detection = Detection()
        closed = await self.closed_day()
        if closed is None:
            return detection
        todo = [p for p in sorted(set(partitions)) if self._decided.get(p, closed - 1) < closed]
        if not todo and self._health_done >= closed:
            detection.closed_day = closed  # decided here already: no Redis reads per batch
            return detection
        first = await self.store.first_day()
        if first is None or closed < first:
            return detection
        detection.closed_day = closed
        await self._health(first, closed, detection)
        for partition in todo:
            await self._decide(partition, first, closed, detection)
        return detection

    async def _health(self, first: int, closed: int, detection: Detection) -> None:
        done = await self.store.health_done()
        start = first if done is None else done + 1
        if start > closed:
            self._health_done = closed
            return
        span = self.health.pattern_days
        activity: dict[str, dict[int, dict[tuple[str, int], int]]] = {}
        for source in watched_sources(self.sources):
            activity[source] = {}
            for day in range(start - span, closed + 1):
                activity[source][day] = await self.store.activity(source, day)
        for day in range(start, closed + 1):
            sessions = await self.reference.sessions(day)
            gaps = find_gaps(day, activity, sessions, self.health, self.zone, self.sources)
            await self.store.save_gaps(day, gaps)
            detection.gaps.extend(gaps)
        await self.ukvi.record(self.store, self.reference, start, closed)

        async def remember() -> None:
            await self.store.set_health_done(closed)
            self._health_done = closed

        detection._after_send.append(remember)

    async def _decide(self, partition: int, first: int, closed: int, detection: Detection) -> None:
        decided = await self.store.decided(partition)
        start = first if decided is None else decided + 1
        if start > closed:
            self._decided[partition] = closed  # another worker got there first
            return
        members = await self.store.members(partition)
        low = start - self.rules.history_days
        stored = await self._load(members, low, closed)
        names = [s.pseudonym for s in stored]
        enrolments = await self.reference.enrolments(names)
        exemptions = await self.reference.exemptions(names)
        gaps = await self.store.gaps(list(range(low, closed + 1)))
        changed = []
        for item in stored:
            student = self._student(item, enrolments.get(item.pseudonym), gaps)
            student.exemptions = exemptions.get(item.pseudonym, ())
            student.known_from = low
            begin = max(start, student.first_day)
            if item.corrections:  # the marks as known before ``begin``; scores read them anew
                known = [c for c in item.corrections if c.effective < begin]
                student.facts = apply_corrections(dict(student.facts), known)
                low_day = min(c.day for c in item.corrections)
                for stale in [d for d in student._scores if d >= low_day]:
                    del student._scores[stale]
            for day in range(begin, closed + 1):
                made = [c for c in item.corrections if c.effective == day]
                if made:
                    detection.nudges.extend(take_effect(self.rules, student, made, day, self.zone))
                detection.nudges.extend(evaluate_day(self.rules, student, day, self.zone))
                detection.evaluations += len(self.rules.rules)
            text = encode_states(student.states, student.last_prompt)
            if text != item.stored:
                changed.append((student.pseudonym, text))

        async def remember() -> None:
            await self.store.commit_decisions(changed, partition, closed)
            self._decided[partition] = closed

        detection._after_send.append(remember)

    async def _load(self, members: list[str], low: int, closed: int) -> list[StoredStudent]:
        """Students with facts for [low, closed], reading only days not already cached.

        A closed day's facts never change again (a later event for it is too late; a later
        register correction is kept apart, with the day it took effect, and applied by
        ``_decide``), so each worker keeps the days it has read and asks Redis only for the
        days since.
        """
        by_start: dict[int, list[str]] = {}
        for who in members:
            cached = self._facts.get(who)
            begin = low if cached is None or cached[0] < low - 1 else cached[0] + 1
            by_start.setdefault(begin, []).append(who)
        loaded: dict[str, StoredStudent] = {}
        for begin, names in by_start.items():
            for item in await self.store.load_students(names, begin, closed):
                cached = self._facts.get(item.pseudonym)
                facts = dict(cached[1]) if cached is not None and begin > low else {}
                facts.update(item.facts)
                for day in [d for d in facts if d < low]:
                    del facts[day]
                scores = self._scores.setdefault(item.pseudonym, {})
                for day in [d for d in scores if d < low + self.rules.score.window_days]:
                    del scores[day]
                self._facts[item.pseudonym] = (closed, facts)
                item.facts = facts
                loaded[item.pseudonym] = item
        return [loaded[who] for who in members if who in loaded]

    def _student(
        self,
        item: StoredStudent,
        enrolment: Enrolment | None,
        gaps: dict[int, list[SourceGap]],
    ) -> Student:
        covered: dict[int, dict[str, str]] = {}
        for day, found in gaps.items():
            for gap in found:
                if covers(gap, enrolment):
                    note = f"{gap.day:%a %d %b %Y}: {gap.detail}"
                    for source in gap.affects:
                        covered.setdefault(day, {}).setdefault(source, note)
        return Student(
            pseudonym=item.pseudonym,
            first_day=local_day_of_ms(item.first_ms, self.zone),
            facts=item.facts,
            sponsored_visa=enrolment.sponsored_visa if enrolment else False,
            term_start=enrolment.term_start if enrolment else None,
            gaps=covered,
            states=item.states,
            last_prompt=item.last_prompt,
            _scores=self._scores.setdefault(item.pseudonym, {}),
        )
