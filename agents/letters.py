"""What decoding produces (``IngestResult``) and how a refused unit becomes a dead letter.

Every refusal goes through :meth:`Letters.refuse`, which makes the excerpt, the event id and
the sentence safe to show (:mod:`agents.redact`) and counts the unit, so that a result always
holds one outcome per unit: ``events == len(signals) + len(dead)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agents.redact import Redactor, identities, text_identities
from schemas.common import SCHEMA_VERSION, Reason
from schemas.deadletter import DeadLetter

log = logging.getLogger("engagement.decode")
_TEXT_BYTES = 65_536  # how much of an unreadable message or event is read for its excerpt


@dataclass
class IngestResult:
    """What one raw message became: one signal or one dead letter per unit."""

    signals: list[dict[str, Any]] = field(default_factory=list)
    identities: dict[str, str] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    events: int = 0
    """Units with an outcome: events read, or one for a message that holds none readable."""


@dataclass(frozen=True)
class Origin:
    """Where a raw message came from, for dead letters and latency figures."""

    topic: str
    partition: int
    offset: int
    published_at_ms: int | None = None


class Letters:
    """Dead letters of one source: a refused unit in, a safe record added to the result."""

    def __init__(self, redactor: Redactor, clock: Callable[[], datetime]) -> None:
        self.redactor = redactor
        self.clock = clock

    def refuse(
        self,
        result: IngestResult,
        origin: Origin,
        reason: Reason,
        detail: str,
        payload: Any,
        index: int | None = None,
        *,
        envelope: bool = False,
    ) -> None:
        """Add one dead letter, its excerpt, event id and sentence made safe to show.

        ``payload`` is the unit as parsed (an event, or an envelope's own fields when
        ``envelope``), or bytes when it could not be parsed.
        """
        redactor = self.redactor
        try:
            if isinstance(payload, bytes):
                text = payload[:_TEXT_BYTES].decode("utf-8", errors="replace")
                known = text_identities(text)
                excerpt = redactor.excerpt_text(text, known)
                event_id = redactor.text_event_id(text, known)
            else:
                known = identities(payload)
                excerpt = redactor.excerpt(payload, known, envelope=envelope)
                raw_id = payload.get("event_id") if isinstance(payload, dict) else None
                event_id = None if envelope else redactor.event_id(raw_id, known)
            detail = redactor.sentence(detail, known)
        except Exception as exc:  # the input defeated the redaction: show nothing of it
            log.error("redacting a dead letter failed: %s", type(exc).__name__)
            excerpt, event_id = "", None
            detail = f"refused as {reason.value}; nothing of the input can be shown safely"
        letter = DeadLetter(
            reason=reason,
            detail=detail,
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
            index=index,
            event_id=event_id,
            received_at=self.clock(),
            payload_excerpt=excerpt,
        )
        result.dead.append(letter)
        result.events += 1

    def failed(
        self, result: IngestResult, origin: Origin, exc: Exception, payload: Any, index: int | None
    ) -> None:
        """Set aside a unit the decoder failed on; the log names the code, never the input."""
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        where = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame else "?"
        at = f" event {index}" if index is not None else ""
        log.error(
            "decoding failed on %s[%s]@%s%s: %s at %s",
            origin.topic, origin.partition, origin.offset, at, type(exc).__name__, where,
        )  # fmt: skip
        unit = "event" if index is not None else "message"
        detail = (
            f"the worker could not process this {unit} ({type(exc).__name__}); it was set "
            "aside so that the rest is still processed"
        )
        self.refuse(result, origin, Reason.PROCESSING_ERROR, detail, payload, index)


def version_detail(what: str, version: object) -> str:
    """The sentence for an unsupported schema version, quoting it only if it is a number."""
    shown = "that is given"  # anything but a number could be anything, an identifier too
    if isinstance(version, int | float) and not isinstance(version, bool) and abs(version) < 1e6:
        shown = repr(version)
    return (
        f"{what} {shown} is not supported; this worker reads version {SCHEMA_VERSION}: "
        f"upgrade the worker or publish version {SCHEMA_VERSION}"
    )


def unicode_detail(error: ValidationError) -> str | None:
    """The sentence for a string that is not Unicode (a lone surrogate), if that is the error."""
    for problem in error.errors(include_url=False):
        if problem["type"] == "string_unicode":
            loc = ".".join(str(part) for part in problem["loc"])
            return (
                f"field '{loc}' is not valid Unicode text: it holds a lone surrogate (half of "
                "a UTF-16 pair, written \\ud800 to \\udfff in JSON); send the text as UTF-8"
            )
    return None
