"""The rules of the IMS Caliper adapter that read one event: what it is and who did it.

Split from :mod:`agents.adapters.caliper` to keep each module short. Every function here is pure
and reads a Caliper 1.1 / 1.2 event (a JSON object) without changing it. Sentences returned for
a unit's ``detail`` name fields and vocabulary terms, never values. The choices are explained in
docs/formats/caliper.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from agents.adapters.units import Actor
from schemas.common import ASSESSMENT_ACTIONS, ASSESSMENT_FIELDS, normalise_name
from schemas.errors import EngagementError

# -- vocabulary -------------------------------------------------------------------------------

ASSESSMENT_TYPES = frozenset({"GradeEvent", "OutcomeEvent"})
"""Events that report a grade (1.1/1.2 Grading profile; OutcomeEvent is 1.0's, deprecated)."""
RESULT_TYPES = frozenset({"Score", "Result"})
"""Entities that hold a result: an event that generates one is assessment data."""
RESULT_FIELDS = frozenset(
    {
        # Caliper 1.0 Result, and 1.1/1.2 Score and Result (also in the core's ASSESSMENT_FIELDS,
        # repeated here so the adapter does not depend on that list keeping them).
        "normalscore", "totalscore", "penaltyscore", "extracreditscore", "curvedtotalscore",
        "curvefactor", "scoregiven", "resultscore",
    }
)  # fmt: skip
ACHIEVEMENT_METRICS = frozenset(
    {"AssessmentsPassed", "SkillsMastered", "StandardsMastered", "UnitsPassed"}
)
"""Caliper 1.2 AggregateMeasure metrics that report passing or mastery, i.e. results."""
SURVEY_TYPES = frozenset(
    {"SurveyEvent", "SurveyInvitationEvent", "QuestionnaireEvent", "QuestionnaireItemEvent"}
)
SURVEY_OBJECTS = frozenset({"Survey", "SurveyInvitation", "Questionnaire", "QuestionnaireItem"})
STAFF_ROLES = frozenset(
    {"Instructor", "TeachingAssistant", "Administrator", "ContentDeveloper", "Manager", "Mentor"}
)
"""LIS context roles (and the TeachingAssistant sub-role) of people who are not acting as a
learner: teaching staff, administrators, content developers, managers and mentors/observers."""
STAFF_ONLY_ACTIONS = frozenset({"Activated", "Deactivated", "Published", "Unpublished"})
"""Actions only staff perform on a course's content (making an assignable available)."""
SYSTEM_ACTIONS = frozenset({"TimedOut"})
PERSON_TYPES = frozenset({"Person"})
CANVAS = "com.instructure.canvas"
PLACEHOLDER_COURSE = "(platform)"
"""The course of an event that belongs to no course (a login): the platform as a whole."""

_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_SPACE = re.compile(r"\s")
_WALK_LIMIT = 32  # nesting depth the result-field scan follows; deeper is refused
_RESULT_NAMES = ASSESSMENT_FIELDS | RESULT_FIELDS


class TooDeep(EngagementError, ValueError):
    """The event nests deeper than the result-field scan follows: it cannot be cleared."""


def prop(node: Mapping[str, Any], name: str) -> Any:
    """A property, also under its Caliper 1.0 JSON-LD spelling (``@id``, ``@type``)."""
    value = node.get(name)
    if value is None and name in ("id", "type"):
        value = node.get("@" + name)
    return value


def term(value: Any) -> str | None:
    """A vocabulary term without its namespace: ``…/action#NavigatedTo`` → ``NavigatedTo``.

    Caliper 1.1 and 1.2 send bare terms; 1.0 sent full IRIs. None when not a non-empty string.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if "/" in text or "#" in text:
        text = re.split(r"[/#]", text)[-1]
    return text or None


def is_iri(value: Any) -> bool:
    """Whether a string looks like an IRI (``scheme:rest``, no spaces)."""
    return isinstance(value, str) and len(value) <= 2048 and _IRI.match(value) is not None


def node_id(value: Any) -> str | None:
    """The IRI of an entity given in full (an object with ``id``) or thinned (the IRI itself)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        found = prop(value, "id")
        if isinstance(found, str) and found.strip():
            return found.strip()
    return None


def node_type(value: Any) -> str | None:
    """The type term of an entity given in full; None when thinned or untyped."""
    return term(prop(value, "type")) if isinstance(value, dict) else None


def fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters; a longer one keeps a hash of the whole, so two
    long IRIs that share a beginning stay apart."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{text[: limit - 25]}~{digest}"


# -- what the event is ----------------------------------------------------------------------


def is_event(item: Mapping[str, Any]) -> bool:
    """An event has an ``Event``/``*Event`` type, or at least an ``action`` or ``eventTime``;
    anything else in an envelope is an entity being described."""
    kind = term(prop(item, "type"))
    if kind is not None and kind.endswith("Event"):
        return True
    return "action" in item or "eventTime" in item


def _result_field(root: Any) -> str | None:
    """The name of the first result field with a value anywhere under ``root`` (the core's
    ASSESSMENT_FIELDS and the Caliper names of a Score or Result), or None; a field that is
    null or empty holds no result. Raises :class:`TooDeep` past the limit.
    Iterative, with a stack: it runs on every event."""
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > _WALK_LIMIT:
            raise TooDeep
        if isinstance(node, dict):
            for key, value in node.items():
                if value is not None and value != "" and normalise_name(str(key)) in _RESULT_NAMES:
                    return str(key)  # a null or empty result field holds no result
                if isinstance(value, dict | list):
                    stack.append((value, depth + 1))
        else:
            stack.extend((value, depth + 1) for value in node if isinstance(value, dict | list))
    return None


def _measures(generated: Any) -> list[Any]:
    if not isinstance(generated, dict):
        return []
    items = generated.get("items")
    return [generated, *items] if isinstance(items, list) else [generated]


def assessment(item: Mapping[str, Any]) -> str | None:
    """Why the event is assessment data (a sentence naming the field or term), or None."""
    kind = term(prop(item, "type"))
    if kind in ASSESSMENT_TYPES:
        return f"a {kind} reports a grade"
    action = term(item.get("action"))
    if action is not None and normalise_name(action) in ASSESSMENT_ACTIONS:
        return "the action reports a grade"
    generated = item.get("generated")
    if node_type(generated) in RESULT_TYPES:
        return f"the event generates a {node_type(generated)}"
    for measure in _measures(generated):
        if isinstance(measure, dict) and term(measure.get("metric")) in ACHIEVEMENT_METRICS:
            return f"the generated measure '{term(measure.get('metric'))}' reports results"
    field = _result_field(item)
    if field is not None:
        # The key's letters are a result field's name, so naming it shows no value.
        return f"field '{field[:40]}' carries an assessment result"
    return None


def survey(item: Mapping[str, Any]) -> bool:
    """Survey or questionnaire participation (Caliper 1.2 Survey profile), also navigating to
    or viewing a questionnaire."""
    kind = term(prop(item, "type"))
    return kind in SURVEY_TYPES or node_type(item.get("object")) in SURVEY_OBJECTS


def _role_words(role: Any) -> set[str]:
    """``http://…/membership#Instructor`` and ``Instructor#TeachingAssistant`` → their words."""
    return set(re.split(r"[/#]", role)) if isinstance(role, str) else set()


def staff(item: Mapping[str, Any]) -> bool:
    """The actor acts in a staff role: a staff LIS role in ``membership.roles`` (whatever other
    roles they hold there), or an action only staff perform."""
    membership = item.get("membership")
    if isinstance(membership, dict):
        roles = membership.get("roles")
        if isinstance(roles, str):
            roles = [roles]
        if isinstance(roles, list) and any(_role_words(r) & STAFF_ROLES for r in roles):
            return True
    return term(item.get("action")) in STAFF_ONLY_ACTIONS


def system(item: Mapping[str, Any]) -> bool:
    """The system acted: the actor is typed and is not a Person (a SoftwareApplication, an
    Organization), or the action is one only a system performs (a session TimedOut)."""
    kind = node_type(item.get("actor"))
    if kind is not None and kind not in PERSON_TYPES:
        return True
    return term(item.get("action")) in SYSTEM_ACTIONS


def _canvas(node: Any) -> Mapping[str, Any]:
    """The ``extensions["com.instructure.canvas"]`` object of an entity or event, or {}."""
    if not isinstance(node, dict):
        return {}
    extensions = node.get("extensions")
    found = extensions.get(CANVAS) if isinstance(extensions, dict) else None
    return found if isinstance(found, dict) else {}


def impersonated(item: Mapping[str, Any]) -> bool:
    """Someone acted as the student: Canvas names the real user (``real_user_id``) when a
    session is masqueraded; found in the event's ``extensions`` (or a vendor object in them)
    and not the actor's own id, the event is not the student's."""
    extensions = item.get("extensions")
    if not isinstance(extensions, dict):
        return False
    places = [extensions, *(v for v in extensions.values() if isinstance(v, dict))]
    actor = item.get("actor")
    iri = node_id(actor) or ""
    own = str(_canvas(actor).get("entity_id", ""))
    for place in places:
        real = place.get("real_user_id")
        if real in (None, "") or isinstance(real, dict | list):
            continue
        real = str(real)
        if real not in (own, iri) and not iri.endswith((f":{real}", f"/{real}")):
            return True
    return False


def _short_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= 256 and not _SPACE.search(text) else None


def _system_identifiers(actor: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(identifierType, identifier) of a Caliper 1.2 Person's ``otherIdentifiers``."""
    found: list[tuple[str, str]] = []
    others = actor.get("otherIdentifiers")
    for other in others if isinstance(others, list) else []:
        if isinstance(other, dict):
            kind, ident = term(other.get("identifierType")), _short_id(other.get("identifier"))
            if kind is not None and ident is not None:
                found.append((kind, ident))
    return found


_KEY_PREFIX = {"SisSourcedId": "sis", "LisSourcedId": "lis", "OneRosterSourcedId": "oneroster"}


def actor_of(actor: Any) -> Actor:
    """The identity-map keys and the as-is id of a valid actor (an IRI or an object with one).

    Most specific first: Canvas's SIS id (``canvas-sis:``) and Canvas user id (``canvas:``)
    from ``extensions["com.instructure.canvas"]``; a Caliper 1.2 SIS, LIS or OneRoster sourced
    id from ``otherIdentifiers``; then the actor's IRI. The as-is id is the SIS id when there is
    one, else the IRI (never a ``mailto:`` IRI). Logins, e-mail addresses and names are never
    read.
    """
    iri = node_id(actor) or ""
    keys: list[str] = []
    sis: str | None = None
    if isinstance(actor, dict):
        canvas = _canvas(actor)
        sis = _short_id(canvas.get("user_sis_id")) or _short_id(canvas.get("sis_id"))
        if sis is not None:
            keys.append(f"canvas-sis:{sis}")
        user = _short_id(canvas.get("entity_id"))
        if user is not None:
            keys.append(f"canvas:{user}")
        for kind, ident in _system_identifiers(actor):
            if kind in _KEY_PREFIX:
                keys.append(f"{_KEY_PREFIX[kind]}:{ident}")
                if kind == "SisSourcedId" and sis is None:
                    sis = ident
    keys.append(iri)
    as_is = sis if sis is not None else (None if iri.lower().startswith("mailto:") else iri)
    return Actor(keys=tuple(dict.fromkeys(keys)), as_is=as_is)


# -- where it happened ------------------------------------------------------------------------


def course_of(item: Mapping[str, Any]) -> str:
    """The event's course: the IRI of ``group`` (a CourseSection, CourseOffering or Group),
    else of ``membership.organization``, else the platform placeholder."""
    group = node_id(item.get("group"))
    if group is None:
        membership = item.get("membership")
        if isinstance(membership, dict):
            group = node_id(membership.get("organization"))
    return fit(group, 128) if group else PLACEHOLDER_COURSE


def platform_of(item: Mapping[str, Any], default: str | None) -> str:
    """The platform: ``edApp``'s IRI (or its name when it has none), else the receiver's
    platform for the source, else ``caliper``."""
    app = item.get("edApp")
    found = node_id(app)
    if found is None and isinstance(app, dict) and isinstance(app.get("name"), str):
        found = app["name"].strip() or None
    return fit(found or default or "caliper", 128)


def resource_of(item: Mapping[str, Any]) -> str:
    """What was acted on: the object's IRI, or its type when it has no IRI. A Person object
    (or a ``mailto:`` IRI) is given by its type only: another person's id is not kept."""
    obj = item.get("object")
    found = node_id(obj)
    kind = node_type(obj)
    if found is None or kind in PERSON_TYPES or found.lower().startswith("mailto:"):
        return fit(kind or "", 256)
    return fit(found, 256)
