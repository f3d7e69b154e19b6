"""Ingest as a pure function: raw message bytes in, signals and dead letters out.

decode → unpack envelope → refuse forbidden fields → validate → minimise → pseudonymise.
No I/O here; the ingest agent wires this to topics and Redis.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from agents.model.eventtime import to_epoch_ms
from agents.model.pseudonym import Pseudonymiser
from schemas.common import SCHEMA_VERSION, Reason, classify_validation_error, find_forbidden
from schemas.deadletter import DeadLetter
from schemas.feeds import RawEvent
from schemas.sources import SOURCES, SourceRegistry

_EXCERPT_CHARS = 512
# Keys whose values identify a person; redacted in every dead-letter excerpt.
_IDENTIFYING = re.compile(
    r'("(?:student_?id|studentid|user_?name|user_?id|email|name|actor|mbox)"\s*:\s*)'
    r'(?:"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false|null)',
    re.IGNORECASE,
)
_TYPE_ERRORS = frozenset({"wrong_type", "model_type", "model_attributes_type", "dict_type"})


@dataclass
class IngestResult:
    """What one raw message became."""

    signals: list[dict[str, Any]] = field(default_factory=list)
    identities: dict[str, str] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    events: int = 0


@dataclass(frozen=True)
class Origin:
    """Where a raw message came from, for dead letters and latency figures."""

    topic: str
    partition: int
    offset: int
    published_at_ms: int | None = None


def redact(text: str) -> str:
    """Remove identifying values from a payload excerpt and shorten it."""
    return _IDENTIFYING.sub(r'\1"[redacted]"', text)[:_EXCERPT_CHARS]


def approximate_size(event: Any) -> int:
    """Cheap size in bytes of an event inside an envelope (UTF-8 strings; JSON for nesting)."""
    if not isinstance(event, dict):
        return len(json.dumps(event, default=str))
    size = 0
    for key, value in event.items():
        if isinstance(value, str):
            size += len(key) + (len(value) if value.isascii() else len(value.encode())) + 6
        elif isinstance(value, dict | list):
            size += len(key) + len(json.dumps(value, default=str)) + 4
        else:
            size += len(key) + 24
    return size


def classify(error: ValidationError) -> tuple[Reason, str]:
    """Map a validation error to a refusal reason and a sentence (shared with the publisher)."""
    return classify_validation_error(error)


class Ingestor:
    """Turns raw messages of one source into canonical signals."""

    def __init__(
        self,
        source: str,
        pseudonymise: Pseudonymiser,
        zone: ZoneInfo,
        *,
        max_message_bytes: int,
        max_event_bytes: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_skew_s: int = 300,
        sources: SourceRegistry = SOURCES,
    ) -> None:
        self.kind = sources[source]
        self.source = str(self.kind.name)  # a plain str: it is every signal's "source"
        self._model = self.kind.model
        # Which fields of the event become the signal's ``kind`` and ``context``.
        self._kind_and_context = attrgetter(self.kind.signal_kind, self.kind.signal_context)
        self._list: TypeAdapter[list[Any]] = TypeAdapter(list[self._model])  # type: ignore[name-defined]  # a model chosen at run time
        self._fields = frozenset(self._model.model_fields)
        self._pseudonymise = pseudonymise
        self._zone = zone
        self._max_message = max_message_bytes
        self._max_event = max_event_bytes
        self._clock = clock
        self._max_skew_ms = max_skew_s * 1000
        self._days: dict[int, tuple[int, int]] = {}

    def _day(self, ms: int) -> tuple[int, int]:
        """Local day and hour of an instant, cached per quarter hour (UTC offsets are multiples)."""
        quarter = ms // 900_000
        found = self._days.get(quarter)
        if found is None:
            if len(self._days) > 100_000:
                self._days.clear()
            local = datetime.fromtimestamp(quarter * 900, self._zone)
            found = self._days[quarter] = (local.date().toordinal(), local.hour)
        return found

    def decode(self, raw: bytes | None, origin: Origin) -> IngestResult:
        """Decode one message: a single event object or an envelope of events."""
        result = IngestResult()
        if raw is None:
            self._refuse(result, origin, Reason.NOT_AN_OBJECT, "the message has no value", b"")
            return result
        if len(raw) > self._max_message:
            detail = (
                f"the message is {len(raw)} bytes, over the {self._max_message}-byte limit; "
                "split it into smaller envelopes"
            )
            self._refuse(result, origin, Reason.OVERSIZED, detail, raw)
            return result
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            self._refuse(result, origin, Reason.MALFORMED_JSON, f"not valid JSON: {exc}", raw)
            return result
        if not isinstance(payload, dict):
            detail = f"expected a JSON object, got {type(payload).__name__}"
            self._refuse(result, origin, Reason.NOT_AN_OBJECT, detail, raw)
            return result
        events = payload.get("events")
        # An event that happens to carry an "events" field is still one event (the field is
        # dropped); only an object without an event_id is read as an envelope.
        if isinstance(events, list) and "event_id" not in payload:
            if not events:
                detail = "the envelope has an empty 'events' list; send at least one event"
                self._refuse(result, origin, Reason.INVALID_VALUE, detail, raw)
                return result
            self._unpack(result, origin, payload, events, check_sizes=len(raw) > self._max_event)
        else:
            self._one(result, origin, payload, None, len(raw))
        return result

    def decode_events(self, events: list[Any], origin: Origin) -> IngestResult:
        """Decode already-parsed events as one envelope (replay reads files, not messages)."""
        result = IngestResult()
        if events and not self._fast(result, origin, events):
            for index, event in enumerate(events):
                size = approximate_size(event) if isinstance(event, dict) else 0
                self._one(result, origin, event, index, size)
        return result

    def _unpack(
        self,
        result: IngestResult,
        origin: Origin,
        envelope: dict[str, Any],
        events: list[Any],
        *,
        check_sizes: bool,
    ) -> None:
        version = envelope.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            detail = (
                f"envelope schema_version {version!r} is not supported; this worker reads "
                f"version {SCHEMA_VERSION}: upgrade the worker or publish version {SCHEMA_VERSION}"
            )
            excerpt = json.dumps({k: v for k, v in envelope.items() if k != "events"}).encode()
            self._refuse(result, origin, Reason.UNKNOWN_SCHEMA_VERSION, detail, excerpt)
            return
        if self._fast(result, origin, events):
            return
        for index, event in enumerate(events):
            size = approximate_size(event) if check_sizes else 0
            self._one(result, origin, event, index, size)

    def _fast(self, result: IngestResult, origin: Origin, events: list[Any]) -> bool:
        """Validate a clean envelope in one call; False sends it through the per-event path.

        An envelope whose events carry only the schema's own fields (so no forbidden field can
        be present) and fit the size limit is validated as a list in pydantic's core, several
        times faster than one call per event. Any failure falls back to the exact path, which
        finds the bad events and dead-letters each with its reason.
        """
        # No size check is needed here: every schema field has a length bound far below the
        # per-event limit, and an event with any other field takes the exact path.
        allowed = self._fields
        for event in events:
            if not isinstance(event, dict) or not allowed.issuperset(event):
                return False
        try:
            valid = self._list.validate_python(events)
        except ValidationError:
            return False
        for event in valid:
            result.events += 1
            self._emit(result, origin, event)
        return True

    def _one(
        self, result: IngestResult, origin: Origin, event: Any, index: int | None, size: int
    ) -> None:
        result.events += 1
        if not isinstance(event, dict):
            detail = f"expected a JSON object, got {type(event).__name__}"
            self._refuse(result, origin, Reason.NOT_AN_OBJECT, detail, event, index)
            return
        if size > self._max_event:
            detail = f"the event is {size} bytes, over the {self._max_event}-byte limit"
            self._refuse(result, origin, Reason.OVERSIZED, detail, event, index)
            return
        forbidden = find_forbidden(event)
        if forbidden is not None:
            reason, where = forbidden
            what = (
                "an assessment result"
                if reason is Reason.ASSESSMENT_DATA
                else ("special-category personal data")
            )
            detail = (
                f"field '{where}' carries {what}, which the learning-analytics policy "
                "forbids; remove it at the source"
            )
            self._refuse(result, origin, reason, detail, event, index)
            return
        try:
            valid = self._model.model_validate(event)
        except ValidationError as exc:
            reason, detail = classify(exc)
            if reason is Reason.INVALID_VALUE and "assessment result" in detail:
                reason = Reason.ASSESSMENT_DATA
            self._refuse(result, origin, reason, detail, event, index)
            return
        self._emit(result, origin, valid)

    def _emit(
        self,
        result: IngestResult,
        origin: Origin,
        valid: RawEvent,
    ) -> None:
        pseudonym = self._pseudonymise(valid.student_id)
        kind, context = self._kind_and_context(valid)
        occurred_ms = to_epoch_ms(valid.occurred_at)
        ahead_ms = occurred_ms - to_epoch_ms(self._clock())
        if ahead_ms > self._max_skew_ms:
            detail = (
                f"occurred_at is {ahead_ms / 60_000:.0f} minutes in the future, more than the "
                f"{self._max_skew_ms // 60_000}-minute clock skew allowed "
                "(ENGAGEMENT_MAX_CLOCK_SKEW_S): check the source's clock or time zone"
            )
            self._refuse(result, origin, Reason.FUTURE_DATED, detail, valid.model_dump(mode="json"))
            return
        day, hour = self._day(occurred_ms)
        result.identities[pseudonym] = valid.student_id
        result.signals.append(
            {
                "schema_version": SCHEMA_VERSION,
                "event_id": valid.event_id,
                "pseudonym": pseudonym,
                "source": self.source,
                "occurred_at_ms": occurred_ms,
                "day": day,
                "hour": hour,
                "kind": kind,
                "context": context,
                "published_at_ms": origin.published_at_ms,
                "raw_partition": origin.partition,
            }
        )

    def _refuse(
        self,
        result: IngestResult,
        origin: Origin,
        reason: Reason,
        detail: str,
        payload: Any,
        index: int | None = None,
    ) -> None:
        if isinstance(payload, bytes):
            text = payload[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
        else:
            text = json.dumps(payload, default=str)[: _EXCERPT_CHARS * 4]
        event_id = payload.get("event_id") if isinstance(payload, dict) else None
        result.dead.append(
            DeadLetter(
                reason=reason,
                detail=detail,
                topic=origin.topic,
                partition=origin.partition,
                offset=origin.offset,
                index=index,
                event_id=event_id if isinstance(event_id, str) else None,
                received_at=self._clock(),
                payload_excerpt=redact(text),
            )
        )
