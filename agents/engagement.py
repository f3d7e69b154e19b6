"""The engagement agent: apply signal batches to per-student state, then detect and nudge."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from agents.detect import Detection, Detector
from agents.state import ApplyResult, EngagementStore
from schemas.common import Reason
from schemas.deadletter import DeadLetter
from stream.app import Context
from stream.eventtime import from_epoch_ms

log = logging.getLogger("engagement.state")

_SIGNAL_HEADER = b'{"schema_version":1,'


class EngagementAgent:
    """Applies each batch of signals, then emits the nudges it makes due."""

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
            return await self.store.apply(
                messages, self.detector.absence_ms, self.detector.grace_ms
            )

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
        try:
            return await self._apply(messages)
        except ResponseError:
            log.exception("state script refused a batch; applying its messages one by one")
        total = ApplyResult()
        for message, item in zip(kept, messages, strict=True):
            try:
                one = await self._apply([item])
            except ResponseError as exc:
                await self.set_aside(message, f"the state script refused it: {exc}")
                continue
            total.applied += one.applied
            total.duplicates += one.duplicates
            total.skipped_messages += one.skipped_messages
            total.gaps.extend(one.gaps)
            total.watermarks.update(one.watermarks)
            total.late.extend(one.late)
        return total

    async def handle(self, events: Sequence[Any]) -> None:
        """Apply, detect, send nudges, and only then forget what was evaluated."""
        started = time.perf_counter()
        result = await self.apply(events)
        grace_h = self.detector.grace_ms / 3_600_000
        for late in result.late:
            detail = (
                f"the event is {late.late_ms / 3_600_000:.1f} h older than the latest event of "
                f"its feed; events more than {grace_h:g} h late are not counted "
                "(ENGAGEMENT_LATE_GRACE_HOURS)"
            )
            await self.set_aside(late, detail, Reason.TOO_LATE, late.event_id)
            self.metrics.late_events.labels(late.source).inc()
        self.metrics.duplicates.inc(result.duplicates)
        self.metrics.signals_applied.inc(result.applied)
        self.metrics.redelivered_messages.inc(result.skipped_messages)
        partitions = {event.message.partition for event in events}

        async def evaluate() -> Detection:
            return await self.detector.evaluate(result, partitions)

        detection = await self.ctx.until_redis_answers("detect", evaluate)
        pending = []
        now = time.time()
        for nudge in detection.nudges:
            pending.append(
                await self.nudges_topic.send(
                    key=nudge.pseudonym.encode(),
                    value=nudge.model_dump_json().encode(),
                    force=True,
                )
            )
            self.metrics.nudges.labels(nudge.rule_id, nudge.tier.value).inc()
            if nudge.published_at_ms:
                self.metrics.publish_to_nudge_seconds.observe(now - nudge.published_at_ms / 1000)
        await asyncio.gather(*pending)
        await self.ctx.until_redis_answers("detect", detection.commit)
        stamp = getattr(events[0].message, "timestamp", None) if events else None
        if stamp:
            self.metrics.publish_to_state_seconds.observe(max(0.0, now - stamp))
        self.metrics.batch_seconds.labels("state").observe(time.perf_counter() - started)

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
