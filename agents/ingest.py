"""Ingest agents: one per raw topic. Decode, refuse, minimise, pseudonymise, batch signals.

Signals are grouped by their target partition of the signals topic (a hash of the
pseudonym), so one Kafka message carries many signals and each student's signals stay in
order on one partition. The batch is acknowledged only after every output was written.
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


def register_ingest(ctx: Context, store: EngagementStore) -> None:
    """Register one ingest agent per raw topic on the context's app."""
    settings = ctx.settings
    app = ctx.app
    names = settings.topics
    partitions = settings.partitions
    signals_topic = app.topic(names.signals, partitions=partitions)
    dead_topic = app.topic(names.deadletter, partitions=partitions)
    ctx.topics.update(signals=signals_topic, deadletter=dead_topic)
    pseudonymise = Pseudonymiser(settings.pseudonym_key)
    identity_ttl = settings.state_ttl_days * 86_400
    metrics = ctx.metrics

    def make_agent(ingestor: Ingestor) -> Any:
        source = ingestor.source.value

        async def handle(events: Sequence[Any]) -> None:
            started = time.perf_counter()
            by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
            identities: dict[str, str] = {}
            dead: list[DeadLetter] = []
            received = 0
            for event in events:
                origin = _origin(event.message)
                try:
                    result = ingestor.decode(event.message.value, origin)
                except Exception as exc:  # a bug must not stop the feed; the input is kept
                    log.exception("ingest failed on %s[%s]@%s", *origin.__dict__.values())
                    result = _crashed(origin, exc, ingestor._clock)
                received += result.events
                for signal in result.signals:
                    by_partition[signal_partition(signal["pseudonym"], partitions)].append(signal)
                identities.update(result.identities)
                dead.extend(result.dead)
            await ctx.until_redis_answers(
                "ingest", lambda: store.remember_identities(identities, identity_ttl)
            )
            pending = []
            for partition, signals in by_partition.items():
                for payload in pack_signals(signals):
                    pending.append(
                        await signals_topic.send(
                            key=str(partition).encode(),
                            value=payload,
                            partition=partition,
                            force=True,
                        )
                    )
                metrics.signals_emitted.labels(source).inc(len(signals))
            for letter in dead:
                pending.append(
                    await dead_topic.send(value=letter.model_dump_json().encode(), force=True)
                )
                metrics.dead_lettered.labels(letter.reason.value).inc()
            await asyncio.gather(*pending)
            metrics.events_received.labels(source).inc(received)
            metrics.batch_seconds.labels("ingest").observe(time.perf_counter() - started)

        async def ingest(stream: Any) -> None:
            async for events in stream.take_events(settings.batch_max, settings.batch_within_s):
                await handle(events)

        ingest.__name__ = f"ingest_{source}"
        return ingest

    for source in Source:
        ingestor = Ingestor(
            source,
            pseudonymise,
            settings.zone,
            max_message_bytes=settings.max_message_bytes,
            max_event_bytes=settings.max_event_bytes,
        )
        topic = app.topic(names.raw(source), partitions=partitions)
        app.agent(topic, name=f"ingest_{source.value}", concurrency=1)(make_agent(ingestor))
