"""What an adapter makes of a native payload: one outcome per unit, nothing in between.

A *unit* is one statement, event, live event, log row or envelope item of the sender's format.
Every unit ends as exactly one :class:`Unit`:

- ``accepted``: it became one product event (``vle``, ``attendance``, ``swipe`` or ``library``),
  held in ``event`` as the JSON the raw topic carries, without ``student_id`` until the
  identity step (:mod:`agents.adapters.identity`) resolves ``actor`` to one;
- ``ignored``: it is not a student's own engagement (a staff or system action, an entity, a
  survey, an unknown actor), with a reason from :class:`Ignored`; counted, never stored;
- ``refused``: it is wrong or forbidden (malformed, assessment data), with a
  :class:`schemas.common.Reason`; it becomes a dead letter.

An envelope of seven items gives seven units, in order. Adapters are pure functions of the
payload and an :class:`AdaptContext`: no clock, no network, no Redis.

Sentences in ``detail`` name fields and formats, never values: a unit's detail can end in a
dead letter or an HTTP reply, and values can be identifiers or results.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from schemas.common import Reason
from schemas.errors import EngagementError


class Outcome(StrEnum):
    """What became of one unit."""

    ACCEPTED = "accepted"
    IGNORED = "ignored"
    REFUSED = "refused"


class Ignored(StrEnum):
    """Why a unit is not a student's own engagement (counted, never stored)."""

    UNKNOWN_ACTOR = "unknown_actor"
    """The actor is not in the identity map (or has no id the policy can use)."""
    STAFF_ACTION = "staff_action"
    """Someone acted on a student (grading, enrolling, a note): not the student's activity."""
    SYSTEM_ACTION = "system_action"
    """The system acted (a timeout, an autograder, a scheduled task)."""
    IMPERSONATION = "impersonation"
    """Someone acted as the student ("log in as", masquerade)."""
    SURVEY = "survey"
    """Survey or questionnaire participation: its answers are never stored."""
    ENTITY = "entity"
    """A description of a thing (Caliper entity), not an event."""
    NOT_ENGAGEMENT = "not_engagement"
    """An event that says nothing about engagement (a statement voided, a setting changed)."""
    VOIDED = "voided"
    """An xAPI statement that voids another (its target is not counted again either)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it, as the sender's format names them.

    ``keys`` are the identity-map keys to try, most specific first (docs/formats.md, "Identity"):
    an IRI (``https://…``, ``mailto:…``), an xAPI account as ``<homePage>|<name>``, or a
    platform-scoped id such as ``canvas:<user_id>``, ``canvas-sis:<sis_user_id>`` or
    ``moodle:<userid>``. ``as_is`` is the id the ``as-is`` policy takes (the account name, the
    SIS id, the IRI), or None when the format gives none that could be a student id.
    """

    keys: tuple[str, ...]
    as_is: str | None = None


@dataclass(frozen=True, slots=True)
class Unit:
    """The outcome of one unit. Build with :meth:`accepted`, :meth:`ignored`, :meth:`refused`."""

    index: int
    outcome: Outcome
    source: str | None = None
    """The product source an accepted unit became (``vle``, ``attendance``, ``swipe``, …)."""
    event: Mapping[str, Any] | None = None
    """The product event (JSON values), without ``student_id`` until identity is resolved."""
    actor: Actor | None = None
    reason: str | None = None
    detail: str = ""

    @classmethod
    def accepted(
        cls,
        index: int,
        source: str,
        event: Mapping[str, Any],
        actor: Actor | None,
        detail: str = "",
    ) -> Unit:
        """``actor`` None: the event names its student itself (the product's own schema)."""
        return cls(index, Outcome.ACCEPTED, source, event, actor, None, detail)

    @classmethod
    def ignored(cls, index: int, reason: Ignored, detail: str) -> Unit:
        return cls(index, Outcome.IGNORED, None, None, None, str(reason), detail)

    @classmethod
    def refused(cls, index: int, reason: Reason, detail: str) -> Unit:
        return cls(index, Outcome.REFUSED, None, None, None, str(reason), detail)

    def report(self) -> dict[str, Any]:
        """The unit as ``?report=units`` and ``--report-json`` show it."""
        out: dict[str, Any] = {"index": self.index, "outcome": str(self.outcome)}
        if self.source is not None:
            out["as"] = self.source
        if self.reason is not None:
            out["reason"] = self.reason
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class AdaptContext:
    """What an adapter may know besides the payload."""

    received_at: datetime = field(default_factory=lambda: datetime(1970, 1, 1, tzinfo=UTC))
    """When the receiver got the payload (UTC): an xAPI statement with neither ``timestamp``
    nor ``stored`` is dated by it, as an LRS would store it."""
    platform: str | None = None
    """The platform name for events whose payload does not say (``moodle``, ``canvas``)."""


# -- helpers every adapter uses ---------------------------------------------------------------
class Stop(EngagementError):
    """Raised while reading a unit when its outcome is decided: refused (a ``Reason``) or
    ignored (an ``Ignored``), with a sentence naming fields, never values."""

    def __init__(self, reason: Reason | Ignored, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def unit(self, index: int) -> Unit:
        """The outcome this stop decides for the unit at ``index``."""
        if isinstance(self.reason, Ignored):
            return Unit.ignored(index, self.reason, self.detail)
        return Unit.refused(index, self.reason, self.detail)


def guarded(index: int, read: Callable[[], Unit], what: str) -> Unit:
    """``read()``'s unit; a :class:`Stop` gives its outcome, and any other failure refuses the
    unit as not readable as ``what``: an adapter never raises, whatever the input."""
    try:
        return read()
    except Stop as stop:
        return stop.unit(index)
    except Exception:
        return Unit.refused(index, Reason.INVALID_VALUE, f"the unit could not be read as {what}")


_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
)


def utc_time(value: Any) -> str | None:
    """An ISO 8601 timestamp with an offset, as UTC ISO text; None when it is not one.

    A timestamp without an offset is refused by the caller: guessing a zone would move every
    event of a feed by hours.
    """
    if not isinstance(value, str) or len(value) > 64 or not _ISO.match(value):
        return None
    text = value.replace(",", ".")
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    # Python takes at most 6 fractional digits; xAPI allows more.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    try:
        return parsed.astimezone(UTC).isoformat()
    except (OverflowError, ValueError):
        return None


def epoch_time(value: Any) -> str | None:
    """Whole or fractional epoch seconds (Moodle's ``timecreated``) as UTC ISO text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int | float) or value != value:  # NaN
        return None
    try:
        return datetime.fromtimestamp(value, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def content_id(prefix: str, payload: Any) -> str:
    """An event id for a unit whose format has none: a hash of its canonical JSON, so a resend
    of the same content gets the same id and is counted once."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}-{digest[:32]}"


def short(value: Any, limit: int = 128) -> str | None:
    """A non-empty string of at most ``limit`` characters, or None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text[:limit] or None
