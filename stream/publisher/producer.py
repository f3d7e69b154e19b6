"""The Kafka side of publishing: one idempotent producer sending checked, packed events."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self

from kafka import KafkaProducer

from schemas.sources import SOURCES
from schemas.topics import TopicNames
from stream.publisher.checks import MAX_EVENT_BYTES, Checked, check_event, registered_source
from stream.publisher.envelopes import (
    MAX_REQUEST_BYTES,
    RECORD_HEADROOM,
    CheckedRun,
    Message,
    Packer,
    pack_events,
    refusal_at,
)
from stream.publisher.report import PublishError, PublishReport

log = logging.getLogger(__name__)

# Producer batch_size: a batch is one record batch, sent in one request. Room for several
# envelopes (~130 KB for 500 events) or thousands of single events: a large import sends a few
# hundred requests rather than thousands, each costing the client's network thread CPU (it was
# ~30% of an import's). Under the broker's default message.max.bytes (1,048,588), which caps
# a record batch.
BATCH_BYTES: Final = 1_000_000
_RUN_MESSAGES: Final = 1_000
_RUN_BYTES: Final = 2 * MAX_REQUEST_BYTES


class Publisher:
    """Sends raw events to their source's raw topic through one idempotent Kafka producer."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topics: TopicNames,
        envelope_size: int = 500,
        linger_ms: int = 20,
        max_event_bytes: int = MAX_EVENT_BYTES,
        client_id: str = "engagement-publisher",
        feed: str | None = None,
        client_options: Mapping[str, object] | None = None,
        max_message_bytes: int = MAX_REQUEST_BYTES - RECORD_HEADROOM,
    ) -> None:
        if envelope_size < 1:
            msg = f"envelope_size must be at least 1, got {envelope_size}"
            raise ValueError(msg)
        self.topics = topics
        self.envelope_size = envelope_size
        self.feed = feed or client_id
        self.max_event_bytes = max_event_bytes
        # The worker's message limit (Settings.max_message_bytes), never over the producer's.
        self.max_message_bytes = min(max_message_bytes, MAX_REQUEST_BYTES - RECORD_HEADROOM)
        self._run: list[tuple[str, bytes | None, bytes]] = []
        self._run_bytes = 0
        self._failures = 0
        self._first_failure: BaseException | None = None
        # acks="all" + idempotence: broker retries never duplicate or reorder a partition.
        # Record timestamps are left to the producer, i.e. CreateTime = now; the worker reads
        # them as the publish time for latency figures.
        self._producer: Any = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            batch_size=BATCH_BYTES,
            max_request_size=MAX_REQUEST_BYTES,
            **(client_options or {}),  # TLS / SASL login: Settings.kafka_client_options()
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def publish(self, source: str, events: Iterable[Mapping[str, object]]) -> PublishReport:
        """Validate and send ``events`` of one source; refused events are counted, not sent."""
        report = PublishReport()
        self._publish(registered_source(source), events, report)
        self._drain()
        return report

    def publish_stream(
        self, items: Iterable[tuple[str, Mapping[str, object] | bytes]]
    ) -> PublishReport:
        """Send a time-ordered mixed feed: events validated and packed, bytes sent raw."""
        # With envelope_size=1 every item leaves in the order given; otherwise each source's
        # events wait until they fill an envelope (the rest at the end), so order holds within
        # a source. Refusals are numbered by position in ``items``.
        report = PublishReport()
        packers = {
            source: Packer(source, self.envelope_size, self.max_message_bytes) for source in SOURCES
        }
        topic_of = {source: self.topics.raw(source) for source in SOURCES}
        limit = min(self.max_event_bytes, *(packer.event_limit for packer in packers.values()))
        for index, (name, item) in enumerate(items):
            source = registered_source(name)
            report.read += 1
            if isinstance(item, bytes):
                self._queue(topic_of[source], None, item)
                report.raw += 1
                continue
            checked = check_event(source, item, max_event_bytes=limit)
            if not isinstance(checked, Checked):
                report.refuse(refusal_at(index, item, checked))
                continue
            report.sent += 1
            message = packers[source].add(checked)
            if message is not None:
                report.messages += 1
                self._queue(topic_of[source], message[0] or self._feed_key(source), message[1])
        for source, packer in packers.items():
            message = packer.finish()
            if message is not None:
                report.messages += 1
                self._queue(topic_of[source], message[0] or self._feed_key(source), message[1])
        self._drain()
        return report

    def publish_checked(self, source: str, events: Iterable[Checked]) -> int:
        """Send events already checked (``check_event``) in envelopes; returns the messages."""
        source = registered_source(source)
        topic, key = self.topics.raw(source), self._feed_key(source)
        packer = Packer(source, self.envelope_size, self.max_message_bytes)
        messages = 0
        if isinstance(events, CheckedRun):  # a whole batch at once, as one event at a time
            packed: Iterable[Message | None] = packer.add_run(events)
        else:
            packed = map(packer.add, events)
        for full in filter(None, packed):
            messages += 1
            self._queue(topic, full[0] or key, full[1])
        message = packer.finish()
        if message is not None:
            messages += 1
            self._queue(topic, message[0] or key, message[1])
        self._drain()
        return messages

    def publish_raw(self, source: str, payload: bytes, key: bytes | None = None) -> None:
        """Send ``payload`` unchanged and unvalidated (malformed-input drills and tests)."""
        self._queue(self.topics.raw(source), key, payload)
        self._drain()

    def _publish(
        self,
        source: str,
        events: Iterable[Mapping[str, object]],
        report: PublishReport,
    ) -> None:
        topic = self.topics.raw(source)
        for key, value in pack_events(
            source,
            events,
            report,
            envelope_size=self.envelope_size,
            max_event_bytes=self.max_event_bytes,
            max_message_bytes=self.max_message_bytes,
        ):
            self._queue(topic, key if key is not None else self._feed_key(source), value)

    def _feed_key(self, source: str) -> bytes:
        # Envelopes from one feed share a key, so they stay in order on one raw partition and
        # the worker's per-partition watermark follows the feed's own progress.
        return f"{self.feed}/{source!s}".encode()

    # Validating a run of messages and then sending the run costs fewer GIL hand-overs to the
    # producer's I/O thread than alternating per message: ~20% faster for single events.
    def _queue(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._run.append((topic, key, value))
        self._run_bytes += len(value)
        if len(self._run) >= _RUN_MESSAGES or self._run_bytes >= _RUN_BYTES:
            self._drain()

    def _drain(self) -> None:
        run, self._run, self._run_bytes = self._run, [], 0  # never sent twice, even on error
        send = self._producer.send
        on_failure = self._on_failure
        for topic, key, value in run:
            send(topic, value=value, key=key).add_errback(on_failure)

    def _on_failure(self, exc: BaseException) -> None:
        self._failures += 1
        if self._first_failure is None:
            self._first_failure = exc
            log.error("a message could not be delivered: %r", exc)

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every sent message to be acknowledged; raise if any was not."""
        self._drain()
        self._producer.flush(timeout=timeout)
        if self._failures:
            failures, first = self._failures, self._first_failure
            self._failures, self._first_failure = 0, None
            msg = f"{failures} message(s) were not delivered; the first error was {first!r}"
            raise PublishError(msg) from first

    def close(self, timeout: float | None = None) -> None:
        """Flush, then close the producer (even if the flush reported lost messages)."""
        try:
            self.flush(timeout)
        finally:
            self._producer.close(timeout=timeout)
