"""Publisher library: validate raw events, pack them into envelopes and send them to Kafka.

Validation and packing (:func:`check_event`, :func:`pack_events`) are pure, so they are tested
without a broker; :class:`Publisher` only hands the resulting payloads to kafka-python.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from uuid import UUID

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import TopicAlreadyExistsError
from pydantic import ValidationError

from schemas.common import (
    ASSESSMENT_ACTIONS,
    SCHEMA_VERSION,
    Reason,
    Source,
    classify_validation_error,
    find_forbidden,
)
from schemas.common import normalise_name as _normalise_name
from schemas.errors import EngagementError
from schemas.events import MODEL_BY_SOURCE
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES: Final = 1_048_576  # producer max_request_size; the broker default allows it
MAX_EVENT_BYTES: Final = 16_384  # same default as Settings.max_event_bytes (the worker's limit)
RECORD_HEADROOM: Final = 1_024  # record and batch framing kept free under MAX_REQUEST_BYTES
BATCH_BYTES: Final = 262_144  # producer batch_size: many single events, or one envelope, a batch
EXAMPLES_KEPT: Final = 10
_TOPIC_TIMEOUT_MS: Final = 30_000
_RUN_MESSAGES: Final = 1_000
_RUN_BYTES: Final = 2 * MAX_REQUEST_BYTES

Message = tuple[bytes | None, bytes]
"""One Kafka message as (key, value)."""


class PublishError(EngagementError):
    """Kafka refused or lost messages, or topics could not be created; the message says which."""


@dataclass(frozen=True)
class Refusal:
    """Why one event was not sent, where it was, and a sentence a data owner can act on."""

    index: int
    reason: Reason
    detail: str
    line: int | None = None

    def sentence(self) -> str:
        """The refusal as one readable sentence naming its position."""
        where = f"line {self.line}" if self.line is not None else f"event {self.index}"
        return f"{where} refused ({self.reason.value}): {self.detail}"


@dataclass
class PublishReport:
    """What one publish call did: events sent, messages used, events refused and why."""

    sent: int = 0
    messages: int = 0
    raw: int = 0
    refused: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[Refusal] = field(default_factory=list)

    def refuse(self, refusal: Refusal) -> None:
        """Count a refusal, keeping the first few for the report."""
        self.refused += 1
        self.reasons[refusal.reason.value] += 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(refusal)

    def merge(self, other: PublishReport) -> None:
        """Add another report's figures to this one."""
        self.sent += other.sent
        self.messages += other.messages
        self.raw += other.raw
        self.refused += other.refused
        self.reasons.update(other.reasons)
        room = EXAMPLES_KEPT - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])

    @property
    def sentences(self) -> list[str]:
        """The kept refusals as sentences."""
        return [refusal.sentence() for refusal in self.examples]

    def summary(self) -> str:
        """A few lines for a terminal: totals, then refusals by reason with examples."""
        lines = [
            f"sent {self.sent} events in {self.messages} messages"
            + (f" (+{self.raw} raw payloads)" if self.raw else "")
            + f"; refused {self.refused}"
        ]
        lines += [f"  {reason}: {count}" for reason, count in self.reasons.most_common()]
        lines += [f"  - {sentence}" for sentence in self.sentences]
        return "\n".join(lines)


class Unreadable(dict[str, object]):
    """Stands in for an input line that is not a JSON object, so it is counted as refused."""

    def __init__(self, line: int, reason: Reason, detail: str) -> None:
        super().__init__()
        self.line = line
        self.reason = reason
        self.detail = detail


class _Row(dict[str, object]):
    """An event read from a file, remembering its line so refusals can name it."""

    __slots__ = ("line",)

    def __init__(self, data: dict[str, object], line: int) -> None:
        super().__init__(data)
        self.line = line


def _json_default(value: object) -> object:
    """Write datetimes as ISO-8601 and enums, UUIDs and mappings in their JSON form."""
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    msg = f"{type(value).__name__} cannot be written as JSON"
    raise TypeError(msg)


_encode = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
).encode


@dataclass(frozen=True)
class Checked:
    """An event that passed every check: its JSON text and the key that keeps it in order."""

    text: str
    size: int
    student_id: str


_KNOWN_FIELDS: Final = {
    source: frozenset(model.model_fields) for source, model in MODEL_BY_SOURCE.items()
}


def _policy_refusal(source: Source, event: Mapping[str, object]) -> tuple[Reason, str] | None:
    """Refuse assessment results and special-category data, wherever they appear."""
    forbidden = find_forbidden(event)
    if forbidden is not None:
        reason, where = forbidden
        what = "an assessment result" if reason is Reason.ASSESSMENT_DATA else "special-category"
        return reason, f"field '{where}' carries {what} data, which is never taken in; remove it"
    action = event.get("action")
    if (
        source is Source.VLE
        and isinstance(action, str)
        and _normalise_name(action) in ASSESSMENT_ACTIONS
    ):
        return Reason.ASSESSMENT_DATA, f"action {action!r} reports an assessment result"
    return None


def check_event(
    source: Source, event: object, *, max_event_bytes: int = MAX_EVENT_BYTES
) -> Checked | tuple[Reason, str]:
    """Validate one event as the worker will: JSON form, size, forbidden fields, then schema."""
    if isinstance(event, Unreadable):
        return event.reason, event.detail
    if type(event) is not dict and not isinstance(event, Mapping):
        return Reason.NOT_AN_OBJECT, f"expected a JSON object, got {type(event).__name__}"
    try:
        text = _encode(event)
    except TypeError as exc:
        return Reason.WRONG_TYPE, f"cannot be written as JSON: {exc}"
    except ValueError as exc:  # NaN or infinity, or a circular reference
        return Reason.INVALID_VALUE, f"cannot be written as JSON: {exc}"
    size = len(text) if text.isascii() else len(text.encode())
    if size > max_event_bytes:
        return Reason.OVERSIZED, f"{size} bytes, over the {max_event_bytes}-byte limit per event"
    try:
        model = MODEL_BY_SOURCE[source].model_validate_json(text)
    except ValidationError as exc:
        return _policy_refusal(source, event) or classify_validation_error(exc)
    # A valid event holding only schema fields has only scalar values, none of them forbidden,
    # so the (comparatively slow) forbidden-field walk is needed only for extra fields.
    if not event.keys() <= _KNOWN_FIELDS[source]:
        refusal = _policy_refusal(source, event)
        if refusal is not None:
            return refusal
    return Checked(text, size, model.student_id)


def pack_events(
    source: Source | str,
    events: Iterable[object],
    report: PublishReport,
    *,
    envelope_size: int = 500,
    max_event_bytes: int = MAX_EVENT_BYTES,
    max_message_bytes: int = MAX_REQUEST_BYTES - RECORD_HEADROOM,
) -> Iterator[Message]:
    """Turn events into (key, value) messages, counting refusals in ``report``; no Kafka needed."""
    # Envelopes hold up to envelope_size events, cut early rather than exceed max_message_bytes;
    # envelope_size=1 yields each event alone, keyed by student id.
    if envelope_size < 1:
        msg = f"envelope_size must be at least 1, got {envelope_size}"
        raise ValueError(msg)
    source = Source(source)
    packer = _Packer(source, envelope_size, max_message_bytes)
    for index, event in enumerate(events):
        checked = check_event(source, event, max_event_bytes=max_event_bytes)
        if not isinstance(checked, Checked):
            report.refuse(_refusal(index, event, checked))
            continue
        report.sent += 1
        message = packer.add(checked)
        if message is not None:
            report.messages += 1
            yield message
    message = packer.finish()
    if message is not None:
        report.messages += 1
        yield message


class _Packer:
    """Collects checked events of one source into envelopes (or single keyed messages)."""

    def __init__(self, source: Source, envelope_size: int, max_message_bytes: int) -> None:
        self.source = source
        self.envelope_size = envelope_size
        self.limit = max_message_bytes - 128  # room for the envelope's own fields
        self.pending: list[str] = []
        self.pending_bytes = 0

    def add(self, checked: Checked) -> Message | None:
        """Take one event; return a message when one is complete."""
        if self.envelope_size == 1:
            return checked.student_id.encode(), checked.text.encode()
        message = None
        if self.pending and self.pending_bytes + checked.size + 1 > self.limit:
            message = self.finish()
        self.pending.append(checked.text)
        self.pending_bytes += checked.size + 1
        if len(self.pending) >= self.envelope_size:
            message = self.finish()  # only one of the two can happen when envelope_size > 1
        return message

    def finish(self) -> Message | None:
        """Return the partly filled envelope, if any, and start a new one."""
        if not self.pending:
            return None
        message = None, _envelope(self.source, self.pending)
        self.pending, self.pending_bytes = [], 0
        return message


def _refusal(index: int, event: object, problem: tuple[Reason, str]) -> Refusal:
    """A refusal of the event at ``index``, naming its file line when it came from a file."""
    line = getattr(event, "line", None) if isinstance(event, dict) else None
    return Refusal(index, problem[0], problem[1], line)


def _envelope(source: Source, texts: list[str]) -> bytes:
    """Wrap already-encoded events in a v1 envelope without re-encoding them."""
    sent_at = datetime.now(UTC).isoformat()
    head = (
        f'{{"schema_version":{SCHEMA_VERSION},"source":"{source.value}",'
        f'"sent_at":"{sent_at}","events":['
    )
    return (head + ",".join(texts) + "]}").encode()


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
    ) -> None:
        if envelope_size < 1:
            msg = f"envelope_size must be at least 1, got {envelope_size}"
            raise ValueError(msg)
        self.topics = topics
        self.envelope_size = envelope_size
        self.feed = feed or client_id
        self.max_event_bytes = max_event_bytes
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

    def publish(
        self, source: Source | str, events: Iterable[Mapping[str, object]]
    ) -> PublishReport:
        """Validate and send ``events`` of one source; refused events are counted, not sent."""
        report = PublishReport()
        self._publish(Source(source), events, report)
        self._drain()
        return report

    def publish_stream(
        self, items: Iterable[tuple[Source | str, Mapping[str, object] | bytes]]
    ) -> PublishReport:
        """Send a time-ordered mixed feed: events validated and packed, bytes sent raw."""
        # With envelope_size=1 every item leaves in the order given; otherwise each source's
        # events wait until they fill an envelope (the rest at the end), so order holds within
        # a source. Refusals are numbered by position in ``items``.
        report = PublishReport()
        packers = {
            source: _Packer(source, self.envelope_size, MAX_REQUEST_BYTES - RECORD_HEADROOM)
            for source in Source
        }
        topic_of = {source: self.topics.raw(source) for source in Source}
        for index, (name, item) in enumerate(items):
            source = Source(name)
            if isinstance(item, bytes):
                self._queue(topic_of[source], None, item)
                report.raw += 1
                continue
            checked = check_event(source, item, max_event_bytes=self.max_event_bytes)
            if not isinstance(checked, Checked):
                report.refuse(_refusal(index, item, checked))
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

    def publish_raw(self, source: Source | str, payload: bytes, key: bytes | None = None) -> None:
        """Send ``payload`` unchanged and unvalidated (malformed-input drills and tests)."""
        self._queue(self.topics.raw(source), key, payload)
        self._drain()

    def _publish(
        self,
        source: Source,
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
        ):
            self._queue(topic, key if key is not None else self._feed_key(source), value)

    def _feed_key(self, source: Source) -> bytes:
        # Envelopes from one feed share a key, so they stay in order on one raw partition and
        # the worker's per-partition watermark follows the feed's own progress.
        return f"{self.feed}/{source.value}".encode()

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


def ensure_topics(bootstrap_servers: str, topics: TopicNames, partitions: int) -> None:
    """Create every missing product topic, tolerating ones another process created meanwhile."""
    # Replication factor 1 suits the embedded broker and tests. Production clusters create
    # the topics themselves, with their own replication, partitions and retention.
    admin: Any = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="engagement-admin")
    try:
        existing = set(admin.list_topics())
        missing = [name for name in topics.all if name not in existing]
        if missing:
            spec = {
                name: {"num_partitions": partitions, "replication_factor": 1} for name in missing
            }
            result = admin.create_topics(spec, timeout_ms=_TOPIC_TIMEOUT_MS, raise_errors=False)
            problems = [
                f"{topic['name']}: error {topic['error_code']} {topic.get('error_message') or ''}"
                for topic in result.get("topics", [])
                if topic["error_code"] not in (0, TopicAlreadyExistsError.errno)
            ]
            if problems:
                msg = "could not create topics: " + "; ".join(problems)
                raise PublishError(msg)
        admin.wait_for_topics(list(topics.all), timeout_ms=_TOPIC_TIMEOUT_MS)
    finally:
        admin.close()


def read_file(path: Path) -> Iterator[dict[str, object]]:
    """Read events from .jsonl/.ndjson or .csv/.tsv; bad lines become :class:`Unreadable`."""
    # A marker instead of an exception: one bad line is counted as refused, not fatal.
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return _read_jsonl(path)
    if suffix in {".csv", ".tsv"}:
        return _read_csv(path, "\t" if suffix == ".tsv" else ",")
    msg = f"{path}: unknown file type {suffix!r}; use .jsonl, .ndjson, .csv or .tsv"
    raise ValueError(msg)


def _read_jsonl(path: Path) -> Iterator[dict[str, object]]:
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                yield Unreadable(number, Reason.MALFORMED_JSON, f"not valid JSON ({exc})")
                continue
            if isinstance(data, dict):
                yield _Row(data, number)
            else:
                detail = f"expected a JSON object, got {type(data).__name__}"
                yield Unreadable(number, Reason.NOT_AN_OBJECT, detail)


def _read_csv(path: Path, delimiter: str) -> Iterator[dict[str, object]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        for row in reader:
            number = reader.line_num
            if None in row:
                cells = len(row) - 1 + len(row[None])
                detail = f"{cells} cells but the header names {len(reader.fieldnames or ())}"
                yield Unreadable(number, Reason.INVALID_VALUE, detail)
                continue
            # Empty cells mean "not given", so model defaults apply.
            event: dict[str, object] = {k: v for k, v in row.items() if v not in ("", None)}
            version = event.get("schema_version")
            if isinstance(version, str) and version.strip().isdigit():
                event["schema_version"] = int(version)
            yield _Row(event, number)


def publish_file(path: Path, source: Source | str, publisher: Publisher) -> PublishReport:
    """Publish every event in one file to ``source``'s raw topic and wait until it is sent."""
    report = publisher.publish(source, read_file(path))
    publisher.flush()
    return report
