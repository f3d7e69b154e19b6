"""Canvas Live Events in Canvas's own format, as VLE activity.

A live event is ``{"metadata": {...}, "body": {...}}`` (Canvas Data Services, "Live Events",
"Canvas" format and its "Metadata" page); a JSON array is a batch, one unit per event. The
mapping, in short (docs/formats/canvas.md has every choice and why):

- time: ``metadata.event_time`` (ISO 8601 with ``Z``) in UTC. ``metadata.time_zone`` is the
  user's profile zone, not the event's: never applied;
- event id: Canvas gives none per event (``request_id`` is shared by every event of one HTTP
  request), so a hash of the whole live event: a resend is counted once;
- actor: ``metadata.user_id`` (``canvas:<id>``, plus the local id when it is a global one),
  ``metadata.user_sis_id`` (``canvas-sis:<id>``, first, and the ``as-is`` id), else
  ``metadata.user_login`` (``canvas-login:<login>``); a value that looks like an e-mail address
  is never used. Names, e-mails, IPs, user agents, URLs are dropped;
- course: the context when it is a Course (its SIS id, else its Canvas id), else "(platform)";
- grades, scores and outcome results are refused; staff, system and masqueraded ("act as")
  events are ignored.

Canvas's Caliper form (an envelope with ``data``, or events with ``@context``/``type``/
``action``) belongs to the Caliper adapter: :func:`is_caliper` tells the ingest service which.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from agents.adapters.canvas_events import (
    STUDENT_EVENTS,
    SYSTEM_EVENTS,
    Role,
    grading_field,
    is_assessment_event,
    is_staff_event,
    resource,
    role_kind,
)
from agents.adapters.units import (
    Actor,
    AdaptContext,
    Ignored,
    Stop,
    Unit,
    content_id,
    guarded,
    utc_time,
)
from schemas.common import SCHEMA_VERSION, Reason

PLATFORM: Final = "canvas"
NO_COURSE: Final = "(platform)"
"""The course of an event outside a course (logins, the inbox, groups, user files)."""
_MAX_ID: Final = 128
_GLOBAL_ID_BASE: Final = 10_000_000_000_000
"""Canvas global id = shard id * 10^13 + local id (Data Services, "Metadata": identifiers)."""
_RUBY_TIME: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?) ?(UTC|GMT|[+-]\d{2}:?\d{2})"
)
"""Ruby's ``Time#to_s`` (``2019-11-05 07:38:00 -0800``, ``… UTC``): some documented Canvas
events carry ``event_time`` in this form rather than ISO 8601."""
_SELF_SERVICE: Final = frozenset({"group_membership_created", "group_membership_updated"})
"""Staff events that a user may also do to themselves (joining or leaving a self-signup
group): then they are not staff's, and not learning activity either."""


def adapt(payload: Any, ctx: AdaptContext) -> list[Unit]:
    """One outcome per live event: a lone object is one unit, an array one unit per item."""
    items = payload if isinstance(payload, list) else [payload]
    return [_safe_unit(index, item, ctx) for index, item in enumerate(items)]


def is_caliper(payload: Any) -> bool:
    """Whether a payload is Canvas's Caliper form (a Caliper envelope, a Caliper event, or an
    array of them) rather than its Canvas form: the ingest service routes it to the Caliper
    adapter."""
    if isinstance(payload, list):
        return bool(payload) and all(_caliper_item(item) for item in payload)
    return _caliper_item(payload)


def _caliper_item(item: Any) -> bool:
    if not isinstance(item, dict) or "metadata" in item:
        return False
    if "@context" in item or ("type" in item and "action" in item):
        return True
    data = item.get("data")
    return isinstance(data, list) and ("sensor" in item or "dataVersion" in item or bool(data))


def _safe_unit(index: int, item: Any, ctx: AdaptContext) -> Unit:
    return guarded(index, lambda: _unit(index, item, ctx), "a Canvas live event")


def _unit(index: int, item: Any, ctx: AdaptContext) -> Unit:
    """The outcome of one live event, checks in the order docs/formats/canvas.md gives:
    assessment data first (so a result never reaches a dead letter under another reason),
    then the shape, then whose action it is."""
    if not isinstance(item, dict):
        return Unit.refused(index, Reason.NOT_AN_OBJECT, "a live event must be a JSON object")
    if _caliper_item(item):
        detail = "a Caliper event or envelope (Canvas's Caliper form): use the Caliper adapter"
        return Unit.refused(index, Reason.INVALID_VALUE, detail)
    refused = _assessment(index, item)
    if refused is not None:
        return refused
    metadata = _object(item, _envelope(item))
    name = _name(metadata)
    body = _object(item, "body")
    occurred_at = _time(metadata)
    ignored = _ignored_by_name(index, name) or _ignored_by_actor(index, name, metadata, body)
    if ignored is not None:
        return ignored
    event = {
        "schema_version": SCHEMA_VERSION,
        "source": "vle",
        "event_id": content_id(PLATFORM, item),
        "occurred_at": occurred_at,
        "platform": ctx.platform or PLATFORM,
        "course": _course(metadata),
        "action": name,
        "resource": resource(name, body),
    }
    return Unit.accepted(index, "vle", event, _actor(metadata))


def _assessment(index: int, item: Mapping[str, Any]) -> Unit | None:
    """Refuse an event that reports a result: by its name (grade_change, course_grade_change,
    outcome results...) or by a body field holding a grade or a score (a graded submission)."""
    metadata = item.get(_envelope(item))
    name = metadata.get("event_name") if isinstance(metadata, dict) else None
    if isinstance(name, str) and is_assessment_event(name):
        detail = "metadata.event_name reports a grade, a score or an outcome result"
        return Unit.refused(index, Reason.ASSESSMENT_DATA, detail)
    graded = grading_field(item.get("body"))
    if graded is not None:
        detail = f"field '{graded}' holds a grade, a score or a graded state"
        return Unit.refused(index, Reason.ASSESSMENT_DATA, detail)
    return None


def _ignored_by_name(index: int, name: str) -> Unit | None:
    if name in _SELF_SERVICE:
        return None  # whose membership it is decides (_ignored_by_actor)
    if is_staff_event(name):
        detail = f"event '{name}' is course or account administration, not a student's activity"
        return Unit.ignored(index, Ignored.STAFF_ACTION, detail)
    if name in SYSTEM_EVENTS:
        detail = f"event '{name}' is emitted by a Canvas job, not by the student"
        return Unit.ignored(index, Ignored.SYSTEM_ACTION, detail)
    if name not in STUDENT_EVENTS:
        detail = "metadata.event_name is not an event this adapter counts as engagement"
        return Unit.ignored(index, Ignored.NOT_ENGAGEMENT, detail)
    return None


def _ignored_by_actor(
    index: int, name: str, metadata: Mapping[str, Any], body: Mapping[str, Any]
) -> Unit | None:
    """System events (no user, or a job), masquerade, and events by a non-student role."""
    user = _text(metadata, "user_id")
    if user is None or metadata.get("job_id") is not None:
        detail = "metadata.user_id is absent or metadata.job_id is set: a Canvas job acted"
        return Unit.ignored(index, Ignored.SYSTEM_ACTION, detail)
    real = _text(metadata, "real_user_id")
    if real is not None and not same_user(real, user):
        detail = "metadata.real_user_id differs from metadata.user_id: someone acted as the user"
        return Unit.ignored(index, Ignored.IMPERSONATION, detail)
    kinds = {role_kind(_text(metadata, "context_role")), role_kind(_text(body, "role", "body"))}
    if Role.STAFF in kinds or Role.TEST_STUDENT in kinds:
        detail = "metadata.context_role or body.role is a staff role (or Student View)"
        return Unit.ignored(index, Ignored.STAFF_ACTION, detail)
    if Role.OBSERVER in kinds:
        detail = "metadata.context_role or body.role is an observer's: not the student's activity"
        return Unit.ignored(index, Ignored.NOT_ENGAGEMENT, detail)
    if name == "discussion_topic_created" and body.get("is_announcement") is True:
        detail = "body.is_announcement: an announcement is posted by staff"
        return Unit.ignored(index, Ignored.STAFF_ACTION, detail)
    if name in _SELF_SERVICE:
        member = _text(body, "user_id", "body")
        if member is not None and same_user(member, user):
            detail = "body.user_id is the acting user: joining or leaving a group oneself"
            return Unit.ignored(index, Ignored.NOT_ENGAGEMENT, detail)
        detail = f"event '{name}' is course or account administration, not a student's activity"
        return Unit.ignored(index, Ignored.STAFF_ACTION, detail)
    return None


def _actor(metadata: Mapping[str, Any]) -> Actor:
    """Identity keys, most specific first: SIS id, Canvas id (as sent, then local), login."""
    user = _text(metadata, "user_id")
    sis = _usable(_text(metadata, "user_sis_id"))
    login = None if sis is not None else _usable(_text(metadata, "user_login"))
    keys: list[str] = []
    if sis is not None:
        keys.append(f"canvas-sis:{sis}")
    if user is not None:
        keys.append(f"canvas:{user}")
        local = local_id(user)
        if local is not None:
            keys.append(f"canvas:{local}")
    if login is not None:
        keys.append(f"canvas-login:{login}")
    return Actor(keys=tuple(keys), as_is=sis if sis is not None else login)


def _course(metadata: Mapping[str, Any]) -> str:
    """A Course context's SIS id (the institution's code), else its Canvas id; any other
    context (User, Account, Group, CourseSection, none) is the platform placeholder."""
    if _text(metadata, "context_type") != "Course":
        return NO_COURSE
    sis = _text(metadata, "context_sis_source_id")
    if sis is not None:
        return sis
    course = _text(metadata, "context_id")
    if course is None:
        raise Stop(Reason.MISSING_FIELD, "required field 'metadata.context_id' is missing (Course)")
    return course


def _envelope(item: Mapping[str, Any]) -> str:
    """The key of the envelope fields: ``metadata``, or ``attributes`` when only it is there."""
    if "metadata" not in item and isinstance(item.get("attributes"), dict):
        return "attributes"
    return "metadata"


def _object(item: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = item.get(name)
    if value is None:
        raise Stop(Reason.MISSING_FIELD, f"required field '{name}' is missing")
    if not isinstance(value, dict):
        raise Stop(Reason.WRONG_TYPE, f"field '{name}' must be a JSON object")
    return value


def _text(where: Mapping[str, Any], name: str, part: str = "metadata") -> str | None:
    """A string or integer field as text (Canvas sends ids as either); None when absent, null
    or blank. Refuses other types and over-long values, naming the field."""
    value = where.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Stop(Reason.WRONG_TYPE, f"field '{part}.{name}' must be a string")
    text = str(value).strip()
    if len(text) > _MAX_ID:
        raise Stop(Reason.INVALID_VALUE, f"field '{part}.{name}' is too long")
    return text or None


def _name(metadata: Mapping[str, Any]) -> str:
    name = _text(metadata, "event_name")
    if name is None:
        raise Stop(Reason.MISSING_FIELD, "required field 'metadata.event_name' is missing")
    return name


def _time(metadata: Mapping[str, Any]) -> str:
    value = metadata.get("event_time")
    if value is None:
        raise Stop(Reason.MISSING_FIELD, "required field 'metadata.event_time' is missing")
    if not isinstance(value, str):
        raise Stop(Reason.WRONG_TYPE, "field 'metadata.event_time' must be an ISO 8601 string")
    ruby = _RUBY_TIME.fullmatch(value.strip())
    if ruby is not None:
        date, clock, zone = ruby.groups()
        value = f"{date}T{clock}{'Z' if zone in ('UTC', 'GMT') else zone}"
    occurred_at = utc_time(value)
    if occurred_at is None:
        detail = "field 'metadata.event_time' is not an ISO 8601 time with a UTC offset"
        raise Stop(Reason.INVALID_VALUE, detail)
    return occurred_at


def _usable(value: str | None) -> str | None:
    """An id that may become a student id: never one that looks like an e-mail address, and
    never one with spaces (the identity step could not use it either)."""
    if value is None or "@" in value or any(c.isspace() for c in value):
        return None
    return value


def local_id(user: str) -> str | None:
    """The local id of a Canvas global id (shard * 10^13 + local), or None if ``user`` is not
    a global id. Local ids survive a shard migration; global ids do not."""
    if not user.isdigit() or len(user) > 30:
        return None
    number = int(user)
    return str(number % _GLOBAL_ID_BASE) if number >= _GLOBAL_ID_BASE else None


def same_user(real: str, user: str) -> bool:
    """Whether two Canvas ids name one user: equal, or one is the other's local id. Two global
    ids are compared whole (the same local id on two shards is two people)."""
    if real == user:
        return True
    local_real, local_user = local_id(real), local_id(user)
    if local_real is not None and local_user is not None:
        return False
    return (local_real or real) == (local_user or user)
