"""Ingest: read the raw topics in batches; decode, refuse, minimise, pseudonymise; emit signals.

Raw topics are read by a batch consumer (aiokafka) running inside the worker, not by a Faust
agent: a feed that sends one event per message would otherwise pay Faust's per-message
dispatch (measured here: a Faust agent that does nothing handles ~4-4.6k messages/s), which
alone is below the 5k events/s a single worker must sustain. Everything downstream — the
engagement state agent and the notifier — are Faust agents; their messages carry batches.

Signals are grouped by their target partition of the signals topic (a hash of the
pseudonym), so one Kafka message carries many signals and each student's signals stay in
order on one partition. Raw offsets are committed only after every output of the batch has
been acknowledged (at-least-once); the state's event-id check makes a replay count once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from mode import Service

from agents.context import Context
from agents.decode import Ingestor, IngestResult, Origin
from agents.model.pseudonym import Pseudonymiser
from agents.store.state import EngagementStore, FeedState
from ops.health import PartitionLag
from schemas.common import SCHEMA_VERSION, Reason, Source
from schemas.deadletter import DeadLetter

log = logging.getLogger("engagement.ingest")
AGE_SAMPLES = 8

# Signals per message on the signals topic: ~250 bytes each keeps a message well under 1 MiB.
SIGNALS_PER_MESSAGE = 2000
YIELD_EVERY_EVENTS = 1000


def signal_partition(pseudonym: str, partitions: int) -> int:
    """The signals partition of a student: stable for the life of the topic."""
    return int(pseudonym[2:10], 16) % partitions


def pack_signals(
    signals: Sequence[dict[str, Any]],
    watermark_ms: int | None = None,
    published_at_ms: int | None = None,
) -> list[bytes]:
    """Encode signals as SignalBatch messages of at most SIGNALS_PER_MESSAGE each.

    Every message carries the ingest's watermark and the newest raw publish time of its round
    (for latency figures); with no signals it is a single watermark tick, which moves on a
    partition whose students are all silent.
    """
    head: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "published_at_ms": published_at_ms}
    if not signals:
        tick: dict[str, Any] = {**head, "signals": [], "watermark_ms": watermark_ms}
        return [json.dumps(tick, separators=(",", ":")).encode()]
    out = []
    for start in range(0, len(signals), SIGNALS_PER_MESSAGE):
        chunk = signals[start : start + SIGNALS_PER_MESSAGE]
        # Only the round's last message moves the watermark: its earlier messages belong to
        # the same round and must be judged against the watermark before it.
        last = start + SIGNALS_PER_MESSAGE >= len(signals)
        batch = {**head, "signals": chunk, "watermark_ms": watermark_ms if last else None}
        out.append(json.dumps(batch, separators=(",", ":")).encode())
    return out


Feed = tuple[str, int]
"""A raw feed partition: (source, raw-topic partition)."""


class SignalRouter:
    """Groups signals into messages per signals partition, stamped with the ingest watermark.

    Each raw feed partition (source, raw partition) progresses on its own: after downtime one
    is read days ahead of another, and live feeds arrive seconds apart. The watermark is the
    *lowest* progress among the feed partitions that are active (sent something in the last
    ``idle_s`` wall-clock seconds), as Flink combines input watermarks with idleness; when
    every feed is idle it is the highest progress. It never moves back. Only these stamps move
    the state's watermark, so a fast feed never makes a slow one's events look late, and a feed
    that stopped does not hold decisions back for longer than ``idle_s``.

    A partition that got no signals in a round still gets a tick when the watermark moved, so
    its days close even when all its students are silent (which is when absence rules matter).
    Replay uses the same router, with every feed active until the input ends.
    """

    def __init__(self, partitions: int, idle_s: float = 60.0) -> None:
        self.partitions = partitions
        self.idle_s = idle_s
        self.watermark_ms = 0
        self.progress: dict[Feed, tuple[int, float]] = {}
        self._told: dict[int, int] = {}

    def observe(self, signals: Sequence[dict[str, Any]], now: float) -> dict[Feed, int]:
        """Record each feed partition's progress; returns the feeds this round touched."""
        touched: dict[Feed, int] = {}
        for signal in signals:
            feed = (signal["source"], signal["raw_partition"])
            ts = signal["occurred_at_ms"]
            if ts > touched.get(feed, -1):
                touched[feed] = ts
        for feed, ts in touched.items():
            before = self.progress.get(feed, (-1, now))[0]
            self.progress[feed] = (max(before, ts), now)
            touched[feed] = max(before, ts)
        return touched

    def advance(
        self,
        now: float,
        shared: Mapping[Feed, FeedState] | None = None,
        expected: Iterable[Feed] = (),
    ) -> int:
        """The watermark from every feed's state; ``expected`` feeds must have reported."""
        if shared is None:
            shared = {f: FeedState(ts, wall, True) for f, (ts, wall) in self.progress.items()}
        if any(feed not in shared for feed in expected):
            return self.watermark_ms  # a feed nobody has reported on yet may hold old events
        active = [
            state.progress
            for state in shared.values()
            if not state.caught_up or now - state.wall <= self.idle_s
        ]
        if any(progress < 0 for progress in active):
            candidate = self.watermark_ms  # records waiting that nobody has read yet
        elif active:
            candidate = min(active)
        else:
            candidate = max((state.progress for state in shared.values()), default=0)
        self.watermark_ms = max(self.watermark_ms, candidate)
        return self.watermark_ms

    def route(
        self,
        signals: Sequence[dict[str, Any]],
        now: float,
        shared: Mapping[Feed, FeedState] | None = None,
        expected: Iterable[Feed] = (),
    ) -> list[tuple[int, bytes]]:
        """(partition, SignalBatch message) pairs for one round of signals."""
        by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for signal in signals:
            by_partition[signal_partition(signal["pseudonym"], self.partitions)].append(signal)
        self.observe(signals, now)
        watermark = self.advance(now, shared, expected)
        published = max((s["published_at_ms"] or 0 for s in signals), default=0) or None
        out = []
        for partition in range(self.partitions):
            chunk = by_partition.get(partition, [])
            if not chunk and self._told.get(partition, -1) >= watermark:
                continue
            self._told[partition] = watermark
            for payload in pack_signals(chunk, watermark or None, published):
                out.append((partition, payload))
        return out


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


class RawIngest(Service):
    """The worker's batch consumer of every raw topic (one consumer group for all workers)."""

    def __init__(self, ctx: Context, store: EngagementStore, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        settings = ctx.settings
        self.ctx = ctx
        self.store = store
        self.metrics = ctx.metrics
        self.partitions = settings.partitions
        self.identity_ttl = settings.state_ttl_days * 86_400
        self.group = f"{settings.topic_prefix}engagement-ingest"
        pseudonymise = Pseudonymiser(settings.pseudonym_key)
        self.ingestors: dict[str, Ingestor] = {
            settings.topics.raw(source): Ingestor(
                source,
                pseudonymise,
                settings.zone,
                max_message_bytes=settings.max_message_bytes,
                max_event_bytes=settings.max_event_bytes,
                max_skew_s=settings.max_clock_skew_s,
            )
            for source in Source
        }
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.router = SignalRouter(settings.partitions, settings.feed_idle_s)
        self._last_tick = 0.0
        self._committed: dict[Feed, int] = {}  # progress of the last committed round
        # Reading raw topics waits until the worker's Faust agents have their partitions, so
        # a starting worker does not build a backlog of signals that nobody applies yet.
        self.downstream_ready = asyncio.Event()
        ctx.app.on_rebalance_complete.connect(self._on_rebalance_complete)
        self.committed_offsets: dict[TopicPartition, int] = {}
        ctx.lag_sources.append(self.lag)

    def lag(self) -> list[PartitionLag]:
        """The raw partitions this worker reads: high watermark and committed offset."""
        if self.consumer is None:
            return []
        rows = []
        for tp in sorted(self.consumer.assignment()):
            rows.append(
                PartitionLag(
                    self.group,
                    tp.topic,
                    tp.partition,
                    self.consumer.highwater(tp),
                    self.committed_offsets.get(tp),
                )
            )
        return rows

    async def _on_rebalance_complete(self, sender: Any, **kwargs: Any) -> None:
        self.downstream_ready.set()

    async def on_start(self) -> None:
        """Join the ingest consumer group and open the producer."""
        settings = self.ctx.settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.ctx.kafka_bootstrap,
            acks="all",
            # aiokafka's idempotent producer fails on the embedded broker (InitProducerId
            # answers UnknownError); a retried send can then repeat a signal batch, which
            # the state's event-id check counts once.
            enable_idempotence=False,
            linger_ms=5,
            max_request_size=4 * 1024 * 1024,
        )
        self.consumer = AIOKafkaConsumer(
            *self.ingestors,
            bootstrap_servers=self.ctx.kafka_bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.batch_max,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            # The embedded broker answers JoinGroup after about half the session timeout.
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )
        await self.producer.start()
        await self.consumer.start()

    async def on_stop(self) -> None:
        """Leave the group and flush what was produced."""
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    @Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None  # noqa: S101  # started in on_start
        await self.wait_for_stopped(self.downstream_ready.wait())
        while not self.should_stop:
            batch = await self.consumer.getmany(timeout_ms=200)
            if not batch:
                await self.tick()
                continue
            try:
                await self.handle(batch)
            except (KafkaError, OSError) as exc:
                # Nothing was committed: rewind so the whole batch is read again.
                log.warning("ingest batch failed (%s); it will be read again", exc)
                for tp, records in batch.items():
                    self.consumer.seek(tp, records[0].offset)
                await asyncio.sleep(1.0)

    async def decode(self, batch: Mapping[TopicPartition, Sequence[Any]]) -> IngestResult:
        """Decode every record of a batch; a record that breaks the decoder is set aside."""
        out = IngestResult()
        yielded = 0
        for tp, records in batch.items():
            ingestor = self.ingestors[tp.topic]
            for record in records:
                origin = Origin(tp.topic, tp.partition, record.offset, record.timestamp)
                try:
                    result = ingestor.decode(record.value, origin)
                except Exception as exc:  # a bug must not stop the feed; the input is kept
                    log.exception(
                        "ingest failed on %s[%s]@%s", tp.topic, tp.partition, record.offset
                    )
                    result = _crashed(origin, exc, ingestor._clock)
                out.events += result.events
                out.signals.extend(result.signals)
                out.identities.update(result.identities)
                out.dead.extend(result.dead)
                self.metrics.events_received.labels(ingestor.source.value).inc(result.events)
                if out.events - yielded >= YIELD_EVERY_EVENTS:
                    # Decoding is CPU work; let the engagement agent run between envelopes.
                    yielded = out.events
                    await asyncio.sleep(0)
        return out

    async def _report(self, touched: Mapping[Feed, int], now: float) -> dict[Feed, FeedState]:
        """Tell every worker how this worker's feeds stand; learn how every feed stands.

        A feed counts as idle only when its owner has read everything waiting in it (position
        at the high watermark of the last fetch) and it has sent nothing for ``feed_idle_s``;
        a feed whose records are merely queued behind another's keeps holding the watermark.
        """
        assert self.consumer is not None  # noqa: S101  # started in on_start
        report: dict[Feed, tuple[int, float | None, bool]] = {}
        for tp in self.consumer.assignment():
            feed = (self.ingestors[tp.topic].source.value, tp.partition)
            highwater = self.consumer.highwater(tp)
            caught_up = highwater is not None and await self.consumer.position(tp) >= highwater
            sent = feed in touched
            report[feed] = (touched.get(feed, -1), now if sent else None, caught_up)

        async def share() -> dict[Feed, FeedState]:
            return await self.store.share_progress(report)

        return await self.ctx.until_redis_answers("ingest", share)

    def _expected(self) -> list[Feed]:
        """Every raw feed partition that exists, whoever reads it."""
        assert self.consumer is not None  # noqa: S101  # started in on_start
        feeds = []
        for topic, ingestor in self.ingestors.items():
            for partition in self.consumer.partitions_for_topic(topic) or ():
                feeds.append((ingestor.source.value, partition))
        return feeds

    async def tick(self) -> None:
        """While no records arrive, move the watermark as feeds go idle, at most once a second."""
        assert self.producer is not None  # noqa: S101  # started in on_start
        now = time.time()
        if now - self._last_tick < 1.0:
            return
        self._last_tick = now

        shared = await self._report(self._committed, now)
        self._committed = {}
        topic = self.ctx.settings.topics.signals
        pending = [
            await self.producer.send(
                topic, payload, key=str(partition).encode(), partition=partition
            )
            for partition, payload in self.router.route([], now, shared, self._expected())
        ]
        await asyncio.gather(*pending)

    async def handle(self, batch: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """Decode a batch, write what it became, then commit the raw offsets."""
        assert self.producer is not None and self.consumer is not None  # noqa: S101
        started = time.perf_counter()
        result = await self.decode(batch)

        async def remember() -> None:
            await self.store.remember_identities(result.identities, self.identity_ttl)

        await self.ctx.until_redis_answers("ingest", remember)
        topics = self.ctx.settings.topics
        pending = []
        now = time.time()

        # Other workers learn a feed's progress only once the records behind it are committed:
        # a worker that dies mid-round must not leave progress its successor has to re-read.
        shared = await self._report(self._committed, now)
        touched = self.router.observe(result.signals, now)
        expected = self._expected()
        for partition, payload in self.router.route(result.signals, now, shared, expected):
            pending.append(
                await self.producer.send(
                    topics.signals, payload, key=str(partition).encode(), partition=partition
                )
            )
        emitted: dict[str, int] = defaultdict(int)
        newest: dict[str, list[int]] = defaultdict(list)
        for signal in result.signals:
            emitted[signal["source"]] += 1
            newest[signal["source"]].append(signal["occurred_at_ms"])
        for source, stamps in newest.items():
            # An evenly spaced sample of at most AGE_SAMPLES events per batch and source:
            # the percentiles stay true over many batches, at a few microseconds a batch.
            observe = self.metrics.event_to_processed_seconds.labels(source).observe
            step = max(1, len(stamps) // AGE_SAMPLES)
            for stamp in stamps[::step]:
                observe(max(0.0, now - stamp / 1000))
        for source, count in emitted.items():
            self.metrics.signals_emitted.labels(source).inc(count)
        for letter in result.dead:
            pending.append(
                await self.producer.send(topics.deadletter, letter.model_dump_json().encode())
            )
            self.metrics.dead_lettered.labels(letter.reason.value).inc()
        sent = time.perf_counter()
        await asyncio.gather(*pending)  # every output acknowledged before the offsets move
        self.metrics.broker_seconds.labels("ingest").observe(time.perf_counter() - sent)
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced under us; the new owner reads these records again and the
            # state's event-id check keeps them from counting twice.
            log.info("raw offsets not committed after a rebalance; the batch will be replayed")
        else:
            self._committed = touched
            self.committed_offsets.update(offsets)
        self.metrics.batch_seconds.labels("ingest").observe(time.perf_counter() - started)
