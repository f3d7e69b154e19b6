"""The rules of the IMS Caliper adapter that read one event: what it is and where it happened.

Split from :mod:`agents.adapters.caliper` to keep each module short; who acted (identity, staff,
system, masquerade) is :mod:`agents.adapters.caliper_actor`. Every function here is pure and
reads a Caliper 1.0 / 1.1 / 1.2 event (a JSON object) without changing it. Sentences returned
for a unit's ``detail`` name fields and vocabulary terms, never values. The choices are
explained in docs/formats/caliper.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

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
PERSON_TYPES = frozenset({"Person"})
COURSE_TYPES = frozenset({"CourseOffering", "CourseSection", "Course"})
"""LIS course types (``Course`` is Caliper 1.0's): a ``group`` or ``isPartOf`` of these types is
the event's course."""
CANVAS = "com.instructure.canvas"
CANVAS_URN = "urn:instructure:canvas:"
CANVAS_PERSONAL = frozenset(
    {"user", "enrollment", "groupMembership", "group_membership", "pseudonym"}
)
"""Canvas URN kinds that name a person or a person's record: never kept as a resource."""
PLACEHOLDER_COURSE = "(platform)"
"""The course of an event that belongs to no course (a login): the platform as a whole."""

_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_ANONYMOUS = re.compile(r"^https?://purl\.imsglobal\.org/caliper/[A-Za-z]+$")
_TERM = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_WALK_LIMIT = 32  # nesting depth the result-field scan follows; deeper is refused
_PART_LIMIT = 8  # isPartOf / subOrganizationOf links followed to find a course
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


def anonymous(iri: str | None) -> bool:
    """Whether an id is a Caliper 1.2 anonymous entity (§4.4: the type's own IRI as its id,
    ``http://purl.imsglobal.org/caliper/Person``): it names nobody and nothing."""
    return iri is not None and _ANONYMOUS.match(iri) is not None


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


def canvas_extension(node: Any) -> Mapping[str, Any]:
    """The ``extensions["com.instructure.canvas"]`` object of an entity or event, or {}."""
    if not isinstance(node, dict):
        return {}
    extensions = node.get("extensions")
    found = extensions.get(CANVAS) if isinstance(extensions, dict) else None
    return found if isinstance(found, dict) else {}


def canvas_kind(iri: str | None) -> str | None:
    """The kind of a Canvas URN (``urn:instructure:canvas:wikiPage:123`` → ``wikiPage``)."""
    if iri is None or not iri.startswith(CANVAS_URN):
        return None
    kind = iri[len(CANVAS_URN) :].split(":", 1)[0]
    return kind if _TERM.match(kind) else None


def vocabulary_term(value: Any) -> str | None:
    """A short identifier-like word (``announcements``, ``outcomes``), or None: safe to keep."""
    return value if isinstance(value, str) and _TERM.match(value) else None


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


# -- where it happened ------------------------------------------------------------------------


def _links(node: Any, *names: str) -> Iterator[Any]:
    """``node`` and the entities reached from it through the properties ``names`` (one link
    followed per step, at most a few steps): ``isPartOf`` chains, ``subOrganizationOf``."""
    for _ in range(_PART_LIMIT):
        if not isinstance(node, dict):
            return
        yield node
        node = next((node[name] for name in names if isinstance(node.get(name), dict)), None)


def _course_in(node: Any, *links: str) -> str | None:
    """The IRI of the first course-typed (CourseOffering, CourseSection) entity reached from
    ``node`` through ``links``; None when there is none (or it is anonymous)."""
    for found in _links(node, *links):
        iri = node_id(found)
        if node_type(found) in COURSE_TYPES and iri is not None and not anonymous(iri):
            return iri
    return None


def _usable_group(value: Any) -> str | None:
    iri = node_id(value)
    return None if iri is None or anonymous(iri) else iri


def course_of(item: Mapping[str, Any]) -> str:
    """The event's course: the IRI of ``group`` (a CourseSection, CourseOffering or Group);
    for a student ``Group`` the course it is a sub-organization of, when given; else
    ``membership.organization``; else the object itself when it is a course, or the course the
    object ``isPartOf`` (also under the object's ``extensions``, as Open edX sends it); else
    the platform placeholder. Anonymous entities (1.2 §4.4) name no course."""
    group = item.get("group")
    membership = item.get("membership")
    organization = membership.get("organization") if isinstance(membership, dict) else None
    obj = item.get("object")
    extensions = obj.get("extensions") if isinstance(obj, dict) else None
    found = (
        (None if node_type(group) == "Group" else _usable_group(group))
        or _course_in(group, "subOrganizationOf")
        or _course_in(organization, "subOrganizationOf")
        or _usable_group(group)
        or _usable_group(organization)
        or _course_in(obj, "isPartOf")
        or (_course_in(extensions.get("isPartOf")) if isinstance(extensions, dict) else None)
    )
    return fit(found, 128) if found else PLACEHOLDER_COURSE


def platform_of(item: Mapping[str, Any], default: str | None) -> str:
    """The platform: ``edApp``'s IRI (or its name when it has none), else the receiver's
    platform for the source, else ``caliper``."""
    app = item.get("edApp")
    found = node_id(app)
    if found is not None and anonymous(found):
        found = None
    if found is None and isinstance(app, dict) and isinstance(app.get("name"), str):
        found = app["name"].strip() or None
    return fit(found or default or "caliper", 128)


def resource_of(item: Mapping[str, Any]) -> str:
    """What was acted on: the object's IRI, or its type when it has no IRI. A Person object
    (or a ``mailto:`` IRI, a Canvas user or enrolment) is given by its type only: another
    person's id is not kept. A Canvas list view keeps its ``asset_subtype``
    (``…:course:1/announcements``), as Canvas's own format does."""
    obj = item.get("object")
    found = node_id(obj)
    kind = node_type(obj)
    if found is None or anonymous(found) or kind in PERSON_TYPES:
        return fit(kind or "", 256)
    if found.lower().startswith("mailto:"):
        return fit(kind or "", 256)
    canvas = canvas_kind(found)
    if canvas in CANVAS_PERSONAL:
        return fit(kind if kind not in (None, "Entity") else canvas, 256)
    subtype = vocabulary_term(canvas_extension(obj).get("asset_subtype"))
    if canvas is not None and subtype is not None:
        found = f"{found}/{subtype}"
    return fit(found, 256)
