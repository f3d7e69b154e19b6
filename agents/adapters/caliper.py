"""IMS Caliper 1.1 and 1.2 events (and Canvas's Caliper form) as the product's VLE activity.

A payload is a Sensor API envelope (``sensor``, ``sendTime``, ``dataVersion``, ``data``: one
unit per item of ``data``), a bare event (one unit) or a JSON array of events (one unit each).
Each unit ends as exactly one outcome (:mod:`agents.adapters.units`):

- an entity described in an envelope is ignored (``entity``);
- a grade, a generated Score or Result, or a result field anywhere is refused
  (``assessment_data``), and nothing of it is kept, not even in the detail;
- survey and questionnaire participation is ignored (``survey``), its answers never read;
- a malformed event is refused with a reason naming the field;
- a system's action (a non-Person actor, a session TimedOut, a Canvas job), a staff member's
  action (a staff role, or administering courses, enrolments, accounts, assignments), a
  masqueraded session and an anonymous actor are ignored (``system_action``,
  ``staff_action``, ``impersonation``, ``unknown_actor``), and so are enrolment and completion
  records (``not_engagement``): :mod:`agents.adapters.caliper_actor`;
- every other event of a student becomes a ``vle`` event: action = the Caliper action,
  resource = the object's IRI, course = the group's IRI, platform = the edApp's IRI.

Time is ``eventTime`` in UTC, never the envelope's ``sendTime``. The mapping is documented in
docs/formats/caliper.md. Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agents.adapters.caliper_actor import actor_of, not_the_students
from agents.adapters.caliper_rules import (
    TooDeep,
    assessment,
    course_of,
    fit,
    is_event,
    is_iri,
    platform_of,
    prop,
    resource_of,
    survey,
    term,
)
from agents.adapters.units import AdaptContext, Ignored, Unit, content_id, utc_time
from schemas.common import Reason, Source

ID_PREFIX = "caliper"
"""Prefix of the content-hash event id of an event that has no usable ``id``."""
_ENVELOPE_KEYS = ("data", "sensor", "sendTime", "dataVersion")
_MAX_EVENT_ID = 128  # schemas.fields.EventId
_SPACE = re.compile(r"\s")
Problem = tuple[Reason, str]


def adapt(payload: Any, ctx: AdaptContext) -> list[Unit]:
    """One outcome per unit of ``payload`` (already-parsed JSON), in order; never raises."""
    if isinstance(payload, list):
        return [_one(index, item, ctx) for index, item in enumerate(payload)]
    if isinstance(payload, dict) and _is_envelope(payload):
        data = payload.get("data")
        if not isinstance(data, list):
            reason = Reason.MISSING_FIELD if data is None else Reason.WRONG_TYPE
            detail = "the envelope's 'data' must be a list of events and entities"
            return [Unit.refused(0, reason, detail)]
        return [_one(index, item, ctx) for index, item in enumerate(data)]
    return [_one(0, payload, ctx)]


def _is_envelope(node: Mapping[str, Any]) -> bool:
    """A Sensor API envelope: it has an envelope property and is not itself an event."""
    return any(key in node for key in _ENVELOPE_KEYS) and not is_event(node)


def _one(index: int, item: Any, ctx: AdaptContext) -> Unit:
    """The outcome of one unit; anything unexpected refuses that unit alone."""
    try:
        return _unit(index, item, ctx)
    except TooDeep:
        detail = "the event nests too deeply to be checked for assessment data"
        return Unit.refused(index, Reason.INVALID_VALUE, detail)
    except Exception:  # a unit never takes the batch down with it
        return Unit.refused(index, Reason.INVALID_VALUE, "the event could not be read")


def _unit(index: int, item: Any, ctx: AdaptContext) -> Unit:
    if not isinstance(item, dict):
        return Unit.refused(index, Reason.NOT_AN_OBJECT, "a Caliper event must be a JSON object")
    if _is_envelope(item):
        detail = "an envelope inside an array or an envelope's 'data': send envelopes one by one"
        return Unit.refused(index, Reason.INVALID_VALUE, detail)
    if not is_event(item):
        if prop(item, "type") is None and prop(item, "id") is None:
            detail = "required field 'type' is missing (neither an event nor an entity)"
            return Unit.refused(index, Reason.MISSING_FIELD, detail)
        return Unit.ignored(index, Ignored.ENTITY, "a Caliper entity is described, not an event")
    why = assessment(item)
    if why is not None:
        detail = f"{why}: assessment results are out of scope and are not kept"
        return Unit.refused(index, Reason.ASSESSMENT_DATA, detail)
    if survey(item):
        detail = "survey or questionnaire participation is not counted; answers are not kept"
        return Unit.ignored(index, Ignored.SURVEY, detail)
    problem = _problem(item)
    if problem is not None:
        return Unit.refused(index, *problem)
    ignored = not_the_students(item)
    if ignored is not None:
        return Unit.ignored(index, *ignored)
    return _accepted(index, item, ctx)


# -- validation -------------------------------------------------------------------------------


def _problem(item: Mapping[str, Any]) -> Problem | None:
    """The first malformed required or reference field of an event, or None."""
    return (
        _check_type(item)
        or _check_actor(item.get("actor"))
        or _check_action(item)
        or _check_object(item)
        or _check_time(item)
        or _check_id(item)
        or _check_reference(item, "group")
        or _check_reference(item, "edApp")
        or _check_membership(item)
    )


def _check_type(item: Mapping[str, Any]) -> Problem | None:
    kind = prop(item, "type")
    if kind is None:
        return Reason.MISSING_FIELD, "required field 'type' is missing"
    if term(kind) is None:
        return Reason.WRONG_TYPE, "field 'type' must be a non-empty string"
    return None


def _check_actor(actor: Any) -> Problem | None:
    if actor is None:
        return Reason.MISSING_FIELD, "required field 'actor' is missing"
    if isinstance(actor, dict):
        ident = prop(actor, "id")
        if ident is None:
            return Reason.MISSING_FIELD, "required field 'actor.id' is missing"
        if not isinstance(ident, str):
            return Reason.WRONG_TYPE, "field 'actor.id' must be an IRI string"
        where = "actor.id"
    elif isinstance(actor, str):
        ident, where = actor, "actor"
    else:
        return Reason.WRONG_TYPE, "field 'actor' must be an object or an IRI string"
    if not is_iri(ident.strip()) and not ident.strip().startswith("_:"):
        return Reason.INVALID_VALUE, f"field '{where}' is not an IRI"
    return None


def _check_action(item: Mapping[str, Any]) -> Problem | None:
    action = item.get("action")
    if action is None:
        return Reason.MISSING_FIELD, "required field 'action' is missing"
    if term(action) is None:
        return Reason.WRONG_TYPE, "field 'action' must be a non-empty string"
    return None


def _check_object(item: Mapping[str, Any]) -> Problem | None:
    obj = item.get("object")
    if obj is None:
        return Reason.MISSING_FIELD, "required field 'object' is missing"
    if not isinstance(obj, str | dict):
        return Reason.WRONG_TYPE, "field 'object' must be an object or an IRI string"
    return None


def _check_time(item: Mapping[str, Any]) -> Problem | None:
    when = item.get("eventTime")
    if when is None:
        return Reason.MISSING_FIELD, "required field 'eventTime' is missing"
    if not isinstance(when, str):
        return Reason.WRONG_TYPE, "field 'eventTime' must be an ISO 8601 string"
    if utc_time(when) is None:
        return Reason.INVALID_VALUE, "field 'eventTime' is not an ISO 8601 time with a UTC offset"
    return None


def _check_id(item: Mapping[str, Any]) -> Problem | None:
    ident = prop(item, "id")
    if ident is not None and not isinstance(ident, str):
        return Reason.WRONG_TYPE, "field 'id' must be a string (urn:uuid:…)"
    return None


def _check_reference(item: Mapping[str, Any], name: str) -> Problem | None:
    """``group`` and ``edApp``: optional; an entity object or an IRI when given."""
    value = item.get(name)
    if value is None or isinstance(value, dict):
        return None
    if not isinstance(value, str):
        return Reason.WRONG_TYPE, f"field '{name}' must be an object or an IRI string"
    if not is_iri(value.strip()):
        return Reason.INVALID_VALUE, f"field '{name}' is not an IRI"
    return None


def _check_membership(item: Mapping[str, Any]) -> Problem | None:
    value = item.get("membership")
    if value is None or isinstance(value, str | dict):
        return None
    return Reason.WRONG_TYPE, "field 'membership' must be an object or an IRI string"


# -- the product event ------------------------------------------------------------------------


def _event_id(item: Mapping[str, Any]) -> str:
    """The event's own ``id`` (a urn:uuid); an id too long for the product or with spaces is
    hashed (so a resend still matches); no id at all: a hash of the whole event."""
    ident = prop(item, "id")
    if not isinstance(ident, str) or not ident.strip():
        return content_id(ID_PREFIX, item)
    ident = ident.strip()
    if len(ident) > _MAX_EVENT_ID or _SPACE.search(ident):
        return content_id(ID_PREFIX, ident)
    return ident


def _accepted(index: int, item: Mapping[str, Any], ctx: AdaptContext) -> Unit:
    event = {
        "event_id": _event_id(item),
        "occurred_at": utc_time(item["eventTime"]),
        "platform": platform_of(item, ctx.platform),
        "course": course_of(item),
        "action": fit(term(item["action"]) or "", 128),
        "resource": resource_of(item),
    }
    return Unit.accepted(index, Source.VLE, event, actor_of(item["actor"]))
