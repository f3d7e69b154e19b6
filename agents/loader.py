"""The reference loader: roster, timetable, exemption, identity-map and reader-map records from
their topics into Redis."""

from __future__ import annotations

import logging
import time
from typing import Any

from agents.context import Context
from agents.model.eventtime import from_epoch_ms
from agents.store.reference import ReferenceStore
from schemas.common import Reason
from schemas.deadletter import DeadLetter
from schemas.topics import REFERENCE_KINDS

log = logging.getLogger("engagement.reference")


class ReferenceLoader:
    """One agent per reference topic; a record it cannot read is dead-lettered with the reason."""

    def __init__(self, ctx: Context, reference: ReferenceStore) -> None:
        self.ctx = ctx
        self.reference = reference
        settings = ctx.settings
        self.dead_topic = ctx.app.topic(settings.topics.deadletter, partitions=settings.partitions)

    async def handle(self, kind: str, message: Any) -> None:
        """Apply one record or tombstone; waits while Redis is unavailable."""

        async def step() -> str | None:
            return await self.reference.apply(kind, message.key, message.value)

        problem = await self.ctx.until_redis_answers("reference", step)
        if problem is None:
            self.ctx.metrics.reference_records.labels(kind).inc()
            return
        letter = DeadLetter(
            reason=Reason.INVALID_VALUE,
            detail=f"not a valid {kind} record: {problem}",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            received_at=from_epoch_ms(int(time.time() * 1000)),
            payload_excerpt="",
        )
        await (await self.dead_topic.send(value=letter.model_dump_json().encode(), force=True))
        self.ctx.metrics.dead_lettered.labels(letter.reason.value).inc()

    def register(self) -> None:
        """Attach one agent per reference topic."""
        settings = self.ctx.settings
        for kind in REFERENCE_KINDS:
            topic = self.ctx.app.topic(
                settings.topics.reference(kind), partitions=settings.partitions
            )

            async def load(stream: Any, kind: str = kind) -> None:
                async for events in stream.take_events(500, settings.batch_within_s):
                    for event in events:
                        await self.handle(kind, event.message)

            self.ctx.app.agent(topic, name=f"reference-{kind}", concurrency=1)(load)
