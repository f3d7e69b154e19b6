"""Ingest agents: one per raw topic. Decode, refuse, minimise, pseudonymise, batch signals.

Signals are grouped by their target partition of the signals topic (a hash of the
pseudonym), so one Kafka message carries many signals and each student's signals stay in
order on one partition. The raw offsets are committed only after Faust has flushed every output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from agents.decode import Ingestor, IngestResult, Origin
from agents.state import EngagementStore
from schemas.common import SCHEMA_VERSION, Reason, Source
from schemas.deadletter import DeadLetter
from stream.app import Context
from stream.pseudonym import Pseudonymiser

log = logging.getLogger("engagement.ingest")

# Signals per message on the signals topic: ~250 bytes each keeps a message well under 1 MiB.
SIGNALS_PER_MESSAGE = 2000
YIELD_EVERY_EVENTS = 1000


def signal_partition(pseudonym: str, partitions: int) -> int:
    """The signals partition of a student: stable for the life of the topic."""
    return int(pseudonym[2:10], 16) % partitions


def pack_signals(signals: Sequence[dict[str, Any]]) -> list[bytes]:
    """Encode signals as SignalBatch messages of at most SIGNALS_PER_MESSAGE each."""
    out = []
    for start in range(0, len(signals), SIGNALS_PER_MESSAGE):
        chunk = signals[start : start + SIGNALS_PER_MESSAGE]
        batch = {"schema_version": SCHEMA_VERSION, "signals": chunk}
        out.append(json.dumps(batch, separators=(",", ":")).encode())
    return out


def _origin(message: Any) -> Origin:
    stamp = getattr(message, "timestamp", None)
    published = int(stamp * 1000) if stamp else None
    return Origin(message.topic, message.partition, message.offset, published)


def _crashed(origin: Origin, exc: Exception, now: Any) -> IngestResult:
    result = IngestResult(events=1)
    result.dead.append(
        DeadLetter(
            reason=Reason.PROCESSING_ERROR,
            detail=f"the worker could not process this message ({type(exc).__name__}); "
            "it was set aside so that later events are still processed",
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
            received_at=now(),
            payload_excerpt="",
        )
    )
    return result


class IngestAgent:
    """One raw topic's agent: decode each batch, then write signals, identities, dead letters."""

    def __init__(self, ctx: Context, store: EngagementStore, ingestor: Ingestor) -> None:
        self.ctx = ctx
        self.store = store
        self.ingestor = ingestor
        self.source = ingestor.source.value
        self.metrics = ctx.metrics
        self.partitions = ctx.settings.partitions
        self.identity_ttl = ctx.settings.state_ttl_days * 86_400
        self.signals_topic = ctx.topics["signals"]
        self.dead_topic = ctx.topics["deadletter"]

    async def decode(self, events: Sequence[Any]) -> IngestResult:
        """Decode every message of a batch; a message that breaks the decoder is set aside."""
        batch = IngestResult()
        yielded = 0
        for event in events:
            origin = _origin(event.message)
            try:
                result = self.ingestor.decode(event.message.value, origin)
            except Exception as exc:  # a bug must not stop the feed; the input is kept
                log.exception("ingest failed on %s[%s]@%s", *origin.__dict__.values())
                result = _crashed(origin, exc, self.ingestor._clock)
            batch.events += result.events
            batch.signals.extend(result.signals)
            batch.identities.update(result.identities)
            batch.dead.extend(result.dead)
            if batch.events - yielded >= YIELD_EVERY_EVENTS:
                # Decoding is CPU work; let the engagement agent and the fetcher run between
                # envelopes so that one large batch does not stall the pipeline behind it.
                yielded = batch.events
                await asyncio.sleep(0)
        return batch

    async def handle(self, events: Sequence[Any]) -> None:
        """Decode a batch and write what it became."""
        started = time.perf_counter()
        batch = await self.decode(events)

        async def remember() -> None:
            await self.store.remember_identities(batch.identities, self.identity_ttl)

        await self.ctx.until_redis_answers("ingest", remember)
        by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for signal in batch.signals:
            by_partition[signal_partition(signal["pseudonym"], self.partitions)].append(signal)
        # Sends are not awaited one by one: Faust flushes the producer before it commits the
        # raw offsets, so a crash before that flush replays the batch (at-least-once) and the
        # state's event-id check counts each event once. Waiting per batch cost ~4x.
        for partition, signals in by_partition.items():
            for payload in pack_signals(signals):
                await self.signals_topic.send(
                    key=str(partition).encode(), value=payload, partition=partition, force=True
                )
        self.metrics.signals_emitted.labels(self.source).inc(len(batch.signals))
        for letter in batch.dead:
            await self.dead_topic.send(value=letter.model_dump_json().encode(), force=True)
            self.metrics.dead_lettered.labels(letter.reason.value).inc()
        self.metrics.events_received.labels(self.source).inc(batch.events)
        self.metrics.batch_seconds.labels("ingest").observe(time.perf_counter() - started)

    def register(self) -> None:
        """Attach the agent to its raw topic (concurrency 1: partitions give parallelism)."""
        settings = self.ctx.settings
        topic = self.ctx.app.topic(settings.topics.raw(self.source), partitions=self.partitions)

        async def ingest(stream: Any) -> None:
            async for events in stream.take_events(settings.batch_max, settings.batch_within_s):
                await self.handle(events)

        self.ctx.app.agent(topic, name=f"ingest_{self.source}", concurrency=1)(ingest)


def register_ingest(ctx: Context, store: EngagementStore) -> None:
    """Register one ingest agent per raw topic on the context's app."""
    settings = ctx.settings
    ctx.topics.update(
        signals=ctx.app.topic(settings.topics.signals, partitions=settings.partitions),
        deadletter=ctx.app.topic(settings.topics.deadletter, partitions=settings.partitions),
    )
    pseudonymise = Pseudonymiser(settings.pseudonym_key)
    for source in Source:
        ingestor = Ingestor(
            source,
            pseudonymise,
            settings.zone,
            max_message_bytes=settings.max_message_bytes,
            max_event_bytes=settings.max_event_bytes,
        )
        IngestAgent(ctx, store, ingestor).register()
