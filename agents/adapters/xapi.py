"""xAPI statements (1.0.3 and 2.0, the Jisc learning-data hub recipes) as product events.

``adapt(payload, ctx)`` takes one statement or an array of them (a Learning Locker stored
record, ``{"statement": {...}, ...}``, counts as its statement) and gives one
:class:`~agents.adapters.units.Unit` per statement, in order:

- refused ``assessment_data``: a score, a pass/fail, a grading verb, a grade extension, a
  Moodle assessment event (:mod:`agents.adapters.xapi_moodle`);
- ignored: voiding statements, "log in as", staff cases and notes and someone else acting on
  the learner, system statements, surveys, groups, Moodle events that are not learning;
- accepted: ``attended`` → an attendance mark, ``at``/facility ``access`` → a presence swipe,
  Jisc library loans and e-resources → library use, everything else → VLE activity.

Every mapping choice is in docs/formats/xapi.md. Pure and fast: dict access with type checks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from agents.adapters.units import Actor, AdaptContext, Ignored, Stop, Unit
from agents.adapters.xapi_kinds import (
    LEFT,
    LIBRARY_VERBS,
    PRESENT_AT,
    VOIDED,
    check_assessment,
    check_ignored,
    course_activity,
    course_area,
    kind_of,
)
from agents.adapters.xapi_parts import (
    Statement,
    actor_of,
    clean_iri,
    event_id,
    extensions,
    fit,
    host,
    jisc,
    occurred_at,
    parse,
    refuse,
    segment,
    text_of,
    time_field,
)
from schemas.common import Reason

PLATFORM_PLACEHOLDER = "(platform)"
"""The course of VLE activity that belongs to no course (a login, the dashboard)."""

_STATUS_WORDS = {
    "present": "present",
    "attended": "present",
    "late": "late",
    "absent": "absent",
    "excused": "excused",
    "authorised": "excused",
    "authorized": "excused",
}
_LATE_WORDS = frozenset({"late", "l"})
_EXCUSED_WORDS = frozenset(
    {"excused", "authorised", "authorized", "authorised absence", "authorized absence"}
)
_FLAGS = {"0": False, "1": True, "false": False, "true": True}
_CAPTURE = {
    "ios": "app",
    "android": "app",
    "app": "app",
    "mobile": "app",
    "card": "card",
    "swipe": "card",
    "qr": "qr",
    "register": "register",
    "bluetooth": "bluetooth",
    "manual": "manual",
}
_DIRECTIONS = {"i": "in", "in": "in", "entry": "in", "enter": "in"} | {
    "o": "out",
    "out": "out",
    "exit": "out",
    "leave": "out",
}


def adapt(payload: Any, ctx: AdaptContext) -> list[Unit]:
    """One outcome per statement: an array is a batch, anything else one statement."""
    if isinstance(payload, list):
        return [_unit(index, item, ctx) for index, item in enumerate(payload)]
    return [_unit(0, payload, ctx)]


def _unit(index: int, payload: Any, ctx: AdaptContext) -> Unit:
    try:
        return _adapt_one(index, payload, ctx)
    except Stop as stop:
        return stop.unit(index)
    except Exception:  # never raise, whatever the input
        return Unit.refused(
            index, Reason.INVALID_VALUE, "the statement could not be read as an xAPI statement"
        )


def _statement(payload: Any) -> dict[str, Any]:
    """The statement itself: a Learning Locker record is unwrapped to its ``statement``."""
    if not isinstance(payload, dict):
        raise refuse(Reason.NOT_AN_OBJECT, "an xAPI statement must be a JSON object")
    inner = payload.get("statement")
    if isinstance(inner, dict) and "actor" not in payload and "verb" not in payload:
        return inner
    return payload


def _adapt_one(index: int, payload: Any, ctx: AdaptContext) -> Unit:
    raw = _statement(payload)
    result = raw.get("result")
    if isinstance(result, dict) and "score" in result:
        # Before anything else: a score is refused as such even on an otherwise malformed
        # statement, so that a feed sending grades learns to stop.
        raise refuse(Reason.ASSESSMENT_DATA, "result.score reports an assessment result")
    st = parse(raw)
    if st.verb == VOIDED:
        raise Stop(Ignored.VOIDED, "a voiding statement: neither it nor its target is counted")
    kind = kind_of(st)
    check_assessment(st, attendance=kind == "attendance")
    check_ignored(st)
    actor = actor_of(raw)
    when = occurred_at(raw, ctx.received_at)
    own_id = event_id(raw)
    event = _BUILDERS[kind](st, actor, ctx)
    return Unit.accepted(index, kind, {"event_id": own_id, "occurred_at": when, **event}, actor)


# -- attendance --------------------------------------------------------------------------------


def _flag(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    key = str(value).strip().lower() if isinstance(value, str | int) else None
    if key not in _FLAGS:
        raise refuse(
            Reason.INVALID_VALUE, "result.extensions attendance_late must be 0 or 1 (or a boolean)"
        )
    return _FLAGS[key]


def _status(result: dict[str, Any] | None) -> str:
    """present/late/absent/excused from ``result.completion``, the Jisc ``attendance_late``
    flag and the ``attendance_category`` code when it is one of the words we know; without
    any ``result``, present."""
    if result is None:
        # No result at all: the verb alone says the actor was present (xAPI's "attended").
        return "present"
    ext = extensions(result.get("extensions"), "result.extensions")
    category = jisc(ext, "attendance_category")
    word = category.strip().lower() if isinstance(category, str) else ""
    late = _flag(jisc(ext, "attendance_late"))
    done = result.get("completion")
    if done is None:
        if word in _STATUS_WORDS:
            return _STATUS_WORDS[word]
        raise refuse(Reason.MISSING_FIELD, "required field 'result.completion' is missing")
    if not isinstance(done, bool):
        raise refuse(Reason.WRONG_TYPE, "result.completion must be true or false")
    if done:
        return "late" if late or word in _LATE_WORDS else "present"
    return "excused" if word in _EXCUSED_WORDS else "absent"


def _session_times(st: Statement) -> tuple[str, str]:
    ext = st.object_ext
    start_raw = jisc(ext, "starttime")
    if start_raw is not None:
        start = time_field(start_raw, "object.definition.extensions starttime")
    elif st.raw.get("timestamp") is not None:
        start = time_field(st.raw["timestamp"], "timestamp")
    else:
        raise refuse(
            Reason.MISSING_FIELD,
            "required field 'object.definition.extensions starttime' is missing",
        )
    end_raw = jisc(ext, "endtime")
    end = start if end_raw is None else time_field(end_raw, "object.definition.extensions endtime")
    if datetime.fromisoformat(end) < datetime.fromisoformat(start):
        raise refuse(
            Reason.INVALID_VALUE, "object.definition.extensions endtime is before starttime"
        )
    return start, end


def _timetabled(st: Statement) -> bool:
    """A session the timetable knows, which must name its module: the Jisc timetabled event,
    or a Jisc attendance recipe statement that does not say it is non-timetabled. A meeting
    or webinar "attended" outside any course is not a module's session."""
    if st.definition_type == "xapi.jisc.ac.uk/event_non-timetabled":
        return False
    return st.definition_type == "xapi.jisc.ac.uk/event_timetabled" or st.category == "attendance"


def _attendance(st: Statement, actor: Actor, ctx: AdaptContext) -> dict[str, Any]:
    session = text_of(jisc(st.object_ext, "event_id")) or text_of(st.object_id)
    if session is None:
        raise refuse(
            Reason.INVALID_VALUE,
            "object.id is longer than 128 characters and no event_id extension names the session",
        )
    module = course_area(st) or course_activity(st)
    if module is None:
        if not _timetabled(st):
            raise Stop(Ignored.NOT_ENGAGEMENT, "an event outside any module is not timetabled")
        raise refuse(
            Reason.MISSING_FIELD,
            "no module: context.extensions courseArea (uddModInstanceID) or a course context "
            "activity is required",
        )
    start, end = _session_times(st)
    captured = jisc(st.context_ext, "captured_from")
    capture = _CAPTURE.get(captured.strip().lower(), "other") if isinstance(captured, str) else ""
    return {
        "session_id": session,
        "module": module,
        "expected_start": start,
        "expected_end": end,
        "status": _status(st.result),
        "capture_method": capture or "other",
    }


# -- presence, library, VLE --------------------------------------------------------------------


def _place(st: Statement, actor: Actor) -> str:
    return fit(clean_iri(st.object_id, actor) or "(unknown)", 128, "xapi-place")


def _swipe(st: Statement, actor: Actor, ctx: AdaptContext) -> dict[str, Any]:
    reader = text_of(jisc(st.context_ext, "access_id")) or text_of(jisc(st.object_ext, "access_id"))
    building = (
        text_of(jisc(st.context_ext, "building"))
        or text_of(st.context_ext.get("id.tincanapi.com/extension/location"))
        or _place(st, actor)
    )
    direction = "out" if st.verb in LEFT else "in" if st.verb in PRESENT_AT else "unknown"
    given = jisc(st.context_ext, "direction_of_access")
    if isinstance(given, str) and given.strip().lower() in _DIRECTIONS:
        direction = _DIRECTIONS[given.strip().lower()]
    return {"reader_id": reader or _place(st, actor), "building": building, "direction": direction}


def _item_type(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        return ""
    text = segment(value) if "/" in value else value.strip()
    return text[:64]


def _library(st: Statement, actor: Actor, ctx: AdaptContext) -> dict[str, Any]:
    activity = LIBRARY_VERBS.get(st.verb, "e_resource")
    service = (
        text_of(jisc(st.context_ext, "borrowing_site"))
        or text_of(jisc(st.context_ext, "library_branch"))
        or text_of(st.context.get("platform"))
        or (host(st.object_id) if activity == "e_resource" else None)
        or "library"
    )
    return {
        "activity": activity,
        "service": service,
        "item_type": _item_type(jisc(st.object_ext, "subtype")),
    }


def _platform(st: Statement, ctx: AdaptContext) -> str:
    named = text_of(st.context.get("platform"))
    if named is not None:
        return named.lower()
    if ctx.platform:
        return ctx.platform
    actor = st.raw.get("actor")
    account = actor.get("account") if isinstance(actor, dict) else None
    home = account.get("homePage") if isinstance(account, dict) else None
    return text_of(host(home)) or text_of(host(st.object_id)) or "xapi"


def _vle(st: Statement, actor: Actor, ctx: AdaptContext) -> dict[str, Any]:
    action = text_of(st.action)
    if action is None:
        raise refuse(Reason.INVALID_VALUE, "verb.id has no last path segment to name the action")
    resource = "" if st.object_kind != "Activity" else clean_iri(st.object_id, actor)
    return {
        "platform": _platform(st, ctx),
        "course": course_area(st) or course_activity(st) or PLATFORM_PLACEHOLDER,
        "action": action,
        "resource": fit(resource, 256, "xapi-resource"),
    }


_BUILDERS: dict[str, Callable[[Statement, Actor, AdaptContext], dict[str, Any]]] = {
    "attendance": _attendance,
    "swipe": _swipe,
    "library": _library,
    "vle": _vle,
}

__all__ = ["PLATFORM_PLACEHOLDER", "adapt"]
