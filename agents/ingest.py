"""Ingest: read the raw topics in batches; decode, refuse, minimise, pseudonymise; emit signals.

Raw topics are read by a batch consumer (aiokafka) running inside the worker, not by a Faust
agent: a feed that sends one event per message would otherwise pay Faust's per-message
dispatch (measured here: a Faust agent that does nothing handles ~4-4.6k messages/s), which
alone is below the 5k events/s a single worker must sustain. Everything downstream — the
engagement state agent and the notifier — are Faust agents; their messages carry batches.

Signals are grouped by their target partition of the signals topic (a hash of the
pseudonym; :mod:`agents.router`), so one Kafka message carries many signals and each student's
signals stay in order on one partition. Every registered source kind has its raw topic read
here (:mod:`schemas.sources`). Raw offsets are committed only after every output of the batch has
been acknowledged (at-least-once); the state's event-id check makes a replay count once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from mode import Service

from agents.context import Context
from agents.decode import Ingestor, IngestResult, Origin
from agents.model.pseudonym import Pseudonymiser
from agents.plausible import TimeBounds
from agents.router import Feed, SignalRouter
from agents.store.state import EngagementStore, FeedState
from ops.health import PartitionLag
from schemas.common import Reason
from schemas.deadletter import DeadLetter
from schemas.settings import Settings
from schemas.sources import SOURCES, SourceRegistry
from schemas.topics import TopicNames

log = logging.getLogger("engagement.ingest")
AGE_SAMPLES = 8
YIELD_EVERY_EVENTS = 1000

__all__ = ["RawIngest", "raw_ingestors"]


def raw_ingestors(settings: Settings, sources: SourceRegistry = SOURCES) -> dict[str, Ingestor]:
    """One ingestor per registered source, by the name of its raw topic."""
    pseudonymise = Pseudonymiser(settings.pseudonym_key)
    topics = TopicNames(settings.topic_prefix, sources)
    return {
        topics.raw(source): Ingestor(
            source,
            pseudonymise,
            settings.zone,
            max_message_bytes=settings.max_message_bytes,
            max_event_bytes=settings.max_event_bytes,
            max_skew_s=settings.max_clock_skew_s,
            times=TimeBounds.of(settings.term_start, settings.zone, settings.late_grace_hours),
            sources=sources,
        )
        for source in sources
    }


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
        self.ingestors = raw_ingestors(settings)
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
        for topic in self.ingestors:  # at zero, so that `increase` sees the first regression
            for partition in range(settings.partitions):
                self.metrics.offset_regressions.labels(self.group, topic, str(partition))

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
            **settings.kafka_client_options(),  # TLS / SASL login, as every Kafka client
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
            **settings.kafka_client_options(),
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
                self.metrics.events_received.labels(ingestor.source).inc(result.events)
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
            feed = (self.ingestors[tp.topic].source, tp.partition)
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
                feeds.append((ingestor.source, partition))
        return feeds

    async def tick(self) -> None:
        """While no records arrive, move the watermark as feeds go idle, at most once a second."""
        assert self.producer is not None  # noqa: S101  # started in on_start
        now = time.time()
        if now - self._last_tick < 1.0:
            return
        self._last_tick = now
        await self.rewind_past_end()

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

    def _regressed(self, tp: TopicPartition, next_offset: int, highwater: int | None) -> None:
        """Say that a raw partition's log is behind where this ingest had read it to."""
        log.warning(
            "offset regression on %s partition %s (group %s): this ingest had read up to "
            "offset %s, but the log now ends at %s. The broker lost its log or the topic was "
            "created again; events published before that and not yet read are gone. Reading "
            "the new log from its start (an event read twice counts once)",
            tp.topic, tp.partition, self.group, next_offset - 1,
            "an unknown offset" if highwater is None else highwater,
        )  # fmt: skip
        self.metrics.offset_regressions.labels(self.group, tp.topic, str(tp.partition)).inc()
        self.committed_offsets.pop(tp, None)  # said once; the next commit is on the new log

    def notice_regressions(self, batch: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """A batch that starts below what this ingest committed, or a log that ends before it,
        means a new log: nothing was undone (raw offsets only say where to read), so say so."""
        assert self.consumer is not None  # noqa: S101  # started in on_start
        for tp, records in batch.items():
            committed = self.committed_offsets.get(tp)
            if committed is None or not records:
                continue
            highwater = self.consumer.highwater(tp)
            if records[0].offset < committed or (highwater is not None and highwater < committed):
                self._regressed(tp, committed, highwater)

    async def rewind_past_end(self) -> None:
        """While idle: a partition whose log ends before this ingest's position or commit was
        emptied or created again. The embedded broker answers a fetch past the end with nothing
        (not an out-of-range error), so the consumer would wait there for the new log to catch
        up, skipping it: read it from its start instead."""
        assert self.consumer is not None  # noqa: S101  # started in on_start
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await self.consumer.position(tp)
                committed = self.committed_offsets.get(tp)
                if position > highwater or (committed is not None and committed > highwater):
                    self._regressed(tp, max(position, committed or 0), highwater)
                    if position > highwater:
                        await self.consumer.seek_to_beginning(tp)
            except KafkaError:  # revoked meanwhile: its next owner looks at it
                continue

    async def handle(self, batch: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """Decode a batch, write what it became, then commit the raw offsets."""
        assert self.producer is not None and self.consumer is not None  # noqa: S101
        started = time.perf_counter()
        self.notice_regressions(batch)
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
