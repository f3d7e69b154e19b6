"""The engagement agent: apply signal batches to per-student state, then decide closed days."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

from redis.exceptions import ResponseError

from agents.context import Context
from agents.detect import Detection, Detector
from agents.model.eventtime import day_start_ms, from_epoch_ms
from agents.offsets import OffsetGuard
from agents.store.state import ApplyResult, BatchRefused, EngagementStore, Late
from schemas.common import Reason
from schemas.deadletter import DeadLetter
from schemas.sources import SOURCES, SourceRegistry

log = logging.getLogger("engagement.state")

_SIGNAL_HEADER = b'{"schema_version":1,'
_PUBLISHED = re.compile(rb'^\{"schema_version":1,"published_at_ms":(\d+)')


def initial_health(sources: SourceRegistry = SOURCES) -> dict[tuple[str, str], int]:
    """Every registered feed as a whole, healthy until a gap says otherwise."""
    return {(str(source), "all"): 1 for source in sources}


def _published_ms(value: Any) -> int | None:
    """The raw publish time in a signal batch's header, without decoding the batch."""
    found = _PUBLISHED.match(value) if isinstance(value, bytes) else None
    return int(found.group(1)) if found else None


class EngagementAgent:
    """Applies each batch of signals, then decides the days it closed."""

    def __init__(self, ctx: Context, store: EngagementStore, detector: Detector) -> None:
        settings = ctx.settings
        names = settings.topics
        self.ctx = ctx
        self.store = store
        self.detector = detector
        self.metrics = ctx.metrics
        self.signals_topic = ctx.app.topic(names.signals, partitions=settings.partitions)
        self.nudges_topic = ctx.app.topic(names.nudges, partitions=settings.partitions)
        self.dead_topic = ctx.app.topic(names.deadletter, partitions=settings.partitions)
        self.health_topic = ctx.app.topic(names.health, partitions=settings.partitions)
        self.zone = settings.zone
        # Whole feeds are known from the start; buildings and registers once a gap names them.
        self._health = initial_health()
        for (source, location), value in self._health.items():
            self.metrics.source_health.labels(source, location).set(value)
        # The batch handler and the idle sweep never decide at the same time.
        self._lock = asyncio.Lock()
        # A signals log behind the stored offsets (the broker lost it) is noticed, not skipped.
        self.offsets = OffsetGuard(ctx, store)

    async def set_aside(
        self,
        message: Any,
        detail: str,
        reason: Reason = Reason.PROCESSING_ERROR,
        event_id: str | None = None,
    ) -> None:
        """Dead-letter one signals message (or one event of it) that cannot be applied."""
        letter = DeadLetter(
            reason=reason,
            detail=detail,
            topic=getattr(message, "topic", self.ctx.settings.topics.signals),
            partition=message.partition,
            offset=message.offset,
            event_id=event_id,
            received_at=from_epoch_ms(int(time.time() * 1000)),
            payload_excerpt="",
        )
        await (await self.dead_topic.send(value=letter.model_dump_json().encode(), force=True))
        self.metrics.dead_lettered.labels(letter.reason.value).inc()

    async def _apply(self, messages: list[tuple[int, int, bytes]]) -> ApplyResult:
        async def step() -> ApplyResult:
            return await self.store.apply(messages, self.detector.grace_ms)

        return await self.ctx.until_redis_answers("state", step)

    async def apply(self, events: Sequence[Any]) -> ApplyResult:
        """Apply a batch in one script call; isolate and set aside a message it refuses."""
        messages: list[tuple[int, int, bytes]] = []
        kept = []
        for event in events:
            message = event.message
            value = message.value
            if not isinstance(value, bytes) or not value.startswith(_SIGNAL_HEADER):
                await self.set_aside(message, "not a version-1 signal batch")
                continue
            messages.append((message.partition, message.offset, value))
            kept.append(message)
        await self.offsets.check(messages)
        try:
            return await self._apply(messages)
        except (ResponseError, BatchRefused):
            log.exception("state script refused a batch; applying its messages one by one")
        total = ApplyResult()
        for message, item in zip(kept, messages, strict=True):
            try:
                one = await self._apply([item])
            except (ResponseError, BatchRefused) as exc:
                await self.set_aside(message, f"the state script refused it: {exc}")
                continue
            total.applied += one.applied
            total.duplicates += one.duplicates
            total.skipped_messages += one.skipped_messages
            total.watermarks.update(one.watermarks)
            total.late.extend(one.late)
            total.corrections += one.corrections
        return total

    async def handle(self, events: Sequence[Any]) -> None:
        """Apply the batch, then decide any day it closed."""
        started = time.perf_counter()
        result = await self.apply(events)
        for late in result.late:
            reason, detail = self._refusal(late)
            await self.set_aside(late, detail, reason, late.event_id)
            if reason is not Reason.DUPLICATE_CONFLICT:
                self.metrics.late_events.labels(late.source).inc()
        self.metrics.duplicates.inc(result.duplicates)
        self.metrics.signals_applied.inc(result.applied)
        self.metrics.redelivered_messages.inc(result.skipped_messages)
        partitions = {event.message.partition for event in events}
        # Record timestamps are the publish times (seconds) of the signal messages; the batch
        # header carries the newest raw publish time behind them.
        stamps = sorted(float(getattr(e.message, "timestamp", 0) or 0) for e in events)
        raw = [_published_ms(e.message.value) for e in events]
        newest = max((ms for ms in raw if ms), default=0)
        await self.decide(partitions, newest / 1000 if newest else None)
        if stamps and stamps[0]:
            self.metrics.publish_to_state_seconds.observe(max(0.0, time.time() - stamps[0]))
        self.metrics.batch_seconds.labels("state").observe(time.perf_counter() - started)

    def _refusal(self, late: Late) -> tuple[Reason, str]:
        """The dead letter's reason and sentence for an event the state did not count."""
        if late.reason == Reason.DUPLICATE_CONFLICT:
            return Reason.DUPLICATE_CONFLICT, (
                f"the {late.source} feed already sent an event with this event_id that said "
                "something else (another kind, place or session); it was counted and this "
                "one was not. A resend must repeat the event exactly; a new event "
                "needs an event_id of its own"
            )
        grace_h = self.detector.grace_ms / 3_600_000
        behind = f"{late.late_ms / 3_600_000:.1f} h older than the latest event of its partition"
        if late.reason == Reason.CORRECTION_TOO_LATE:
            return Reason.CORRECTION_TOO_LATE, (
                f"this attendance mark corrects an earlier mark for the same student and "
                f"session, but it is {behind}; corrections more than {grace_h:g} h late are "
                "not applied and the earlier mark stands (ENGAGEMENT_LATE_GRACE_HOURS). Send "
                "a correction with the time it was made"
            )
        return Reason.TOO_LATE, (
            f"the event is {behind}; events more than {grace_h:g} h late are not counted "
            "(ENGAGEMENT_LATE_GRACE_HOURS)"
        )

    async def decide(self, partitions: Iterable[int], published_s: float | None = None) -> None:
        """Decide newly closed days; send gaps and nudges; only then record the decisions."""
        async with self._lock:

            async def evaluate() -> Detection:
                return await self.detector.evaluate(partitions)

            detection = await self.ctx.until_redis_answers("detect", evaluate)
            if detection.closed_day is not None:
                self.metrics.closed_day.set(
                    day_start_ms(detection.closed_day + 1, self.zone) / 1000
                )
                self._source_health(detection)
            self.metrics.rules_evaluated.inc(detection.evaluations)
            pending = []
            for gap in detection.gaps:
                pending.append(
                    await self.health_topic.send(
                        key=gap.gap_id.encode(), value=gap.model_dump_json().encode(), force=True
                    )
                )
                self.metrics.source_gaps.labels(gap.source, gap.reason).inc()
                ids = {"gap_id": gap.gap_id}
                log.warning("data gap %s: %s", gap.gap_id, gap.detail, extra=ids)
            now = time.time()
            stamp = int(published_s * 1000) if published_s else None
            for nudge in detection.nudges:
                if stamp is not None:
                    nudge = nudge.model_copy(
                        update={"published_at_ms": stamp, "emitted_at_ms": int(now * 1000)}
                    )
                pending.append(
                    await self.nudges_topic.send(
                        key=nudge.pseudonym.encode(),
                        value=nudge.model_dump_json().encode(),
                        force=True,
                    )
                )
                self.metrics.nudges.labels(nudge.rule_id, nudge.tier.value).inc()
                if published_s:
                    self.metrics.publish_to_nudge_seconds.observe(max(0.0, now - published_s))
            sent = time.perf_counter()
            await asyncio.gather(*pending)
            self.metrics.broker_seconds.labels("detect").observe(time.perf_counter() - sent)
            await self.ctx.until_redis_answers("detect", detection.commit)

    def _source_health(self, detection: Detection) -> None:
        """Every feed and location known so far is healthy unless the newly closed days had a
        gap there (locations are buildings and modules: never a person)."""
        if not detection.gaps and not any(v == 0 for v in self._health.values()):
            return
        for key in self._health:
            self._health[key] = 1
        for gap in detection.gaps:
            self._health[(gap.source, gap.location)] = 0
        for (source, location), value in self._health.items():
            self.metrics.source_health.labels(source, location).set(value)

    async def sweep(self) -> None:
        """Decide closed days on this worker's partitions when no batch arrived to do it."""
        topic = self.ctx.settings.topics.signals
        assigned = self.ctx.app.assignor.assigned_actives()
        partitions = {tp.partition for tp in assigned if tp.topic == topic}
        if partitions:
            await self.decide(partitions)

    async def run(self, stream: Any) -> None:
        """The agent body: batches of signal messages, in partition order."""
        settings = self.ctx.settings
        async for events in stream.take_events(settings.batch_max, settings.batch_within_s):
            await self.handle(events)

    def register(self) -> None:
        """Attach the agent to the app (concurrency 1: partitions give the parallelism)."""

        async def engagement(stream: Any) -> None:
            await self.run(stream)

        self.ctx.app.agent(self.signals_topic, name="engagement", concurrency=1)(engagement)

        async def sweep() -> None:
            try:
                await self.sweep()
            except Exception:  # the timer must outlive any one failure; it runs again soon
                log.exception("sweep for closed days failed; retrying at the next interval")

        self.ctx.app.timer(self.ctx.settings.sweep_interval_s, name="engagement-sweep")(sweep)
