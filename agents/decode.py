"""Ingest as a pure function: raw message bytes in, signals and dead letters out.

decode → unpack envelope → check shape → refuse forbidden fields → validate → check the time →
minimise → pseudonymise. No I/O here; the ingest agent wires this to topics and Redis.

Every unit gets exactly one outcome. A message that cannot be read as events is one dead
letter; each event of an envelope (or of a replayed batch) becomes a signal or a dead letter
carrying its index, whatever is wrong with its neighbours: a lone surrogate, a date in year 1,
a 10 MB string, NaN, nesting too deep for Python's parser. Nothing here raises: an unexpected
failure on one event is that event's ``processing_error``. Dead letters are built by
:mod:`agents.letters` with :mod:`agents.redact`, and never carry a student's identity.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from agents.letters import IngestResult, Letters, Origin, unicode_detail, version_detail
from agents.model.eventtime import to_epoch_ms
from agents.model.pseudonym import Pseudonymiser
from agents.plausible import TimeBounds
from agents.rawjson import (
    MAX_DEPTH,
    Scan,
    approximate_size,
    forbidden_keys,
    scan,
    shape,
    too_deep,
)
from agents.redact import Redactor, identities, redact
from schemas.common import SCHEMA_VERSION, Reason, classify_validation_error
from schemas.feeds import RawEvent
from schemas.sources import SOURCES, SourceRegistry

__all__ = ["IngestResult", "Ingestor", "Origin", "approximate_size", "classify", "redact"]

OPEN_OVERSIZED = 16
"""An envelope over the message limit, but within this many times it, is still opened: when
the events that make it too big are over the event limit, only they are refused."""


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
        times: TimeBounds | None = None,
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
        self._redactor = Redactor(self._model, pseudonymise)
        self._letters = Letters(self._redactor, clock)
        self._zone = zone
        self._max_message = max_message_bytes
        self._max_event = max_event_bytes
        self._clock = clock
        self._max_skew_ms = max_skew_s * 1000
        self._times = times if times is not None else TimeBounds()
        self._days: dict[int, tuple[int, int]] = {}
        self._now_ms = 0  # the clock, read once per message or envelope (decode sets it)

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
        """Decode one message: a single event object or an envelope of events. Never raises."""
        result = IngestResult()
        self._now_ms = to_epoch_ms(self._clock())  # once a message: its events share the read
        try:
            self._message(result, raw, origin)
        except Exception as exc:  # a bug must not lose the message: it is set aside, counted
            self._letters.failed(result, origin, exc, raw or b"", None)
        return result

    def decode_events(self, events: list[Any], origin: Origin) -> IngestResult:
        """Decode already-parsed events as one envelope (replay reads files, not messages)."""
        result = IngestResult()
        self._now_ms = to_epoch_ms(self._clock())
        try:
            if events and not self._fast(result, origin, events):
                for index, event in enumerate(events):
                    self._one(result, origin, event, index, None)
        except Exception as exc:  # a bug in the loop itself; every event has its own guard
            self._letters.failed(result, origin, exc, b"", None)
        return result

    def _message(self, result: IngestResult, raw: bytes | None, origin: Origin) -> None:
        if raw is None:
            self._letters.refuse(
                result, origin, Reason.NOT_AN_OBJECT, "the message has no value", b""
            )
            return
        size = len(raw)
        if size > self._max_message * OPEN_OVERSIZED:
            self._letters.refuse(result, origin, Reason.OVERSIZED, self._oversized(size), raw)
            return
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            self._unreadable(result, origin, raw, exc)
            return
        events = payload.get("events") if isinstance(payload, dict) else None
        # An event that happens to carry an "events" field is still one event (the field is
        # dropped); only an object without an event_id is read as an envelope.
        if isinstance(events, list) and "event_id" not in payload:
            if not events:
                detail = "the envelope has an empty 'events' list; send at least one event"
                self._letters.refuse(
                    result, origin, Reason.INVALID_VALUE, detail, payload, envelope=True
                )
            elif size > self._max_message and not self._fits(payload, events):
                self._letters.refuse(
                    result, origin, Reason.OVERSIZED, self._oversized(size), payload, envelope=True
                )
            else:
                self._unpack(result, origin, payload, events, check_sizes=size > self._max_event)
        elif size > self._max_message:
            self._letters.refuse(result, origin, Reason.OVERSIZED, self._oversized(size), raw)
        elif not isinstance(payload, dict):
            detail = f"expected a JSON object, got {type(payload).__name__}"
            self._letters.refuse(result, origin, Reason.NOT_AN_OBJECT, detail, payload)
        else:
            self._one(result, origin, payload, None, size)

    def _oversized(self, size: int) -> str:
        return (
            f"the message is {size} bytes, over the {self._max_message}-byte limit; "
            "split it into smaller envelopes"
        )

    def _fits(self, envelope: dict[str, Any], events: list[Any]) -> bool:
        """Whether an oversized envelope is within the limit once its oversized events go."""
        try:
            total = len(json.dumps({k: v for k, v in envelope.items() if k != "events"}))
        except (ValueError, TypeError, RecursionError):
            return False
        for event in events:
            size, problem = shape(event, self._max_event)
            if problem is None or size <= self._max_event:
                total += size
        return total <= self._max_message

    def _unreadable(
        self, result: IngestResult, origin: Origin, raw: bytes, error: Exception
    ) -> None:
        """A message the parser refused: still open an envelope whose events can be found."""
        found = scan(raw[: self._max_message * OPEN_OVERSIZED])
        if found.skeleton is not None and self._split(result, origin, raw, found):
            return
        if found.balanced and found.depth > MAX_DEPTH:
            self._letters.refuse(result, origin, Reason.OVERSIZED, too_deep(found.depth), raw)
        else:
            detail = f"not valid JSON: {error}"
            self._letters.refuse(result, origin, Reason.MALFORMED_JSON, detail, raw)

    def _split(self, result: IngestResult, origin: Origin, raw: bytes, found: Scan) -> bool:
        """Decode an envelope's events one by one; False if it is not a readable envelope."""
        assert found.skeleton is not None  # noqa: S101  # checked by the caller
        try:
            envelope = json.loads(found.skeleton)
        except (ValueError, RecursionError):
            return False
        if not isinstance(envelope, dict) or "event_id" in envelope or not found.items:
            return False
        if self._unknown_version(result, origin, envelope):
            return True
        sizes = len(found.skeleton) + sum(
            len(i.text) for i in found.items if len(i.text) <= self._max_event
        )
        if len(raw) > self._max_message and sizes > self._max_message:
            detail = self._oversized(len(raw))
            self._letters.refuse(result, origin, Reason.OVERSIZED, detail, envelope, envelope=True)
            return True
        check_sizes = len(raw) > self._max_event
        for index, item in enumerate(found.items):
            if item.depth > MAX_DEPTH:
                self._letters.refuse(
                    result, origin, Reason.OVERSIZED, too_deep(item.depth), item.text, index
                )
                continue
            try:
                # As json.loads reads bytes: a surrogate's bytes pass, to be refused by field.
                event = json.loads(item.text.decode("utf-8", "surrogatepass"))
            except UnicodeDecodeError as exc:
                detail = (
                    f"the event is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                    "JSON must be sent as UTF-8"
                )
                self._letters.refuse(
                    result, origin, Reason.MALFORMED_JSON, detail, item.text, index
                )
                continue
            except (ValueError, RecursionError) as exc:
                detail = f"the event is not valid JSON: {exc}"
                self._letters.refuse(
                    result, origin, Reason.MALFORMED_JSON, detail, item.text, index
                )
                continue
            self._one(result, origin, event, index, None if check_sizes else 0)
        return True

    def _unknown_version(
        self, result: IngestResult, origin: Origin, envelope: dict[str, Any]
    ) -> bool:
        version = envelope.get("schema_version", SCHEMA_VERSION)
        if version == SCHEMA_VERSION:
            return False
        detail = version_detail("envelope schema_version", version)
        self._letters.refuse(
            result, origin, Reason.UNKNOWN_SCHEMA_VERSION, detail, envelope, envelope=True
        )
        return True

    def _unpack(
        self,
        result: IngestResult,
        origin: Origin,
        envelope: dict[str, Any],
        events: list[Any],
        *,
        check_sizes: bool,
    ) -> None:
        if self._unknown_version(result, origin, envelope):
            return
        if self._fast(result, origin, events):
            return
        for index, event in enumerate(events):
            self._one(result, origin, event, index, None if check_sizes else 0)

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
        except Exception:  # anything wrong: the exact path says what, per event
            return False
        for index, event in enumerate(valid):
            try:
                self._emit(result, origin, event, index)
            except Exception as exc:  # one event's bug costs that event only
                self._letters.failed(result, origin, exc, events[index], index)
        return True

    def _one(
        self, result: IngestResult, origin: Origin, event: Any, index: int | None, size: int | None
    ) -> None:
        """One event: ``size`` is its bytes when known, None to measure it, 0 not to check."""
        try:
            self._check(result, origin, event, index, size)
        except Exception as exc:  # one event's bug costs that event only
            self._letters.failed(result, origin, exc, event, index)

    def _check(
        self, result: IngestResult, origin: Origin, event: Any, index: int | None, size: int | None
    ) -> None:
        if not isinstance(event, dict):
            detail = f"expected a JSON object, got {type(event).__name__}"
            self._letters.refuse(result, origin, Reason.NOT_AN_OBJECT, detail, event, index)
            return
        if size:
            if size > self._max_event:
                detail = f"the event is {size} bytes, over the {self._max_event}-byte limit"
                self._letters.refuse(result, origin, Reason.OVERSIZED, detail, event, index)
                return
            size = 0
        _, problem = shape(event, self._max_event if size is None else None, self._fields)
        if problem is not None:
            self._letters.refuse(result, origin, problem[0], problem[1], event, index)
            return
        forbidden = forbidden_keys(event)
        if forbidden is not None:
            reason, keys = forbidden
            what = (
                "an assessment result"
                if reason is Reason.ASSESSMENT_DATA
                else ("special-category personal data")
            )
            where = self._redactor.key_path(keys, identities(event))
            detail = (
                f"field '{where}' carries {what}, which the learning-analytics policy "
                "forbids; remove it at the source"
            )
            self._letters.refuse(result, origin, reason, detail, event, index)
            return
        try:
            valid = self._model.model_validate(event)
        except ValidationError as exc:
            reason, detail = classify(exc)
            if reason is Reason.INVALID_VALUE and "assessment result" in detail:
                reason = Reason.ASSESSMENT_DATA
            if reason is Reason.UNKNOWN_SCHEMA_VERSION:  # its sentence quotes the input
                detail = version_detail("schema_version", event.get("schema_version"))
            elif reason is Reason.INVALID_VALUE:
                detail = unicode_detail(exc) or detail
            self._letters.refuse(result, origin, reason, detail, event, index)
            return
        self._emit(result, origin, valid, index)

    def _emit(
        self, result: IngestResult, origin: Origin, valid: RawEvent, index: int | None
    ) -> None:
        try:
            occurred_ms: int | None = to_epoch_ms(valid.occurred_at)
        except (OverflowError, ValueError):
            occurred_ms = None
        now_ms = self._now_ms
        implausible = self._times.problem(valid.occurred_at, occurred_ms, now_ms)
        if implausible is not None or occurred_ms is None:
            detail = implausible or "occurred_at is out of range"
            dump = valid.model_dump(mode="json")
            self._letters.refuse(result, origin, Reason.IMPLAUSIBLE_TIME, detail, dump, index)
            return
        ahead_ms = occurred_ms - now_ms
        if ahead_ms > self._max_skew_ms:
            detail = (
                f"occurred_at is {ahead_ms / 60_000:.0f} minutes in the future, more than the "
                f"{self._max_skew_ms // 60_000}-minute clock skew allowed "
                "(ENGAGEMENT_MAX_CLOCK_SKEW_S): check the source's clock or time zone"
            )
            dump = valid.model_dump(mode="json")
            self._letters.refuse(result, origin, Reason.FUTURE_DATED, detail, dump, index)
            return
        pseudonym = self._pseudonymise(valid.student_id)
        kind, context = self._kind_and_context(valid)
        day, hour = self._day(occurred_ms)
        # Post-ingest topics carry no student identifier: an event id that holds one (or looks
        # like a person's number, address or IRI) travels as the keyed hash a dead letter
        # shows, the same for every copy of the event, so de-duplication is unchanged.
        event_id = self._redactor.event_id(valid.event_id, (valid.student_id.casefold(),))
        signal = {
            "schema_version": SCHEMA_VERSION,
            "event_id": event_id,
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
        if session := getattr(valid, "session_id", None):
            signal["session"] = session  # attendance: a later mark for it replaces this one
        result.identities[pseudonym] = valid.student_id
        result.signals.append(signal)
        result.events += 1
