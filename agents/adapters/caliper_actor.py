"""Who acted in a Caliper event, and whether it is the student's own engagement.

Split from :mod:`agents.adapters.caliper_rules`. Pure functions of one event (a JSON object):

- :func:`not_the_students`: why a valid event is not a student's own engagement (a system
  acted, a member of staff acted, a masqueraded session, an anonymous actor, an enrolment or
  completion record), or None;
- :func:`actor_of`: the identity-map keys and the ``as-is`` id of the actor, matching the keys
  the Canvas-format adapter gives the same Canvas user (``canvas-sis:``, ``canvas:``,
  ``canvas-login:``), so one identity-map entry serves both Canvas formats.

Sentences name fields and vocabulary terms, never values. docs/formats/caliper.md explains every
choice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agents.adapters.caliper_rules import (
    CANVAS_URN,
    COURSE_TYPES,
    PERSON_TYPES,
    anonymous,
    canvas_extension,
    canvas_kind,
    node_id,
    node_type,
    term,
)
from agents.adapters.canvas import local_id, same_user
from agents.adapters.units import Actor, Ignored

STAFF_ROLES = frozenset(
    {"Instructor", "TeachingAssistant", "Administrator", "ContentDeveloper", "Manager", "Mentor"}
)
"""LIS context roles (and the TeachingAssistant sub-role) of people who are not acting as a
learner: teaching staff, administrators, content developers, managers and mentors/observers."""
STAFF_ONLY_ACTIONS = frozenset({"Activated", "Deactivated", "Published", "Unpublished"})
"""Actions only staff perform on a course's content (making an assignable available)."""
SYSTEM_ACTIONS = frozenset({"TimedOut"})
AUTHORING_ACTIONS = frozenset(
    {"Created", "Modified", "Deleted", "Archived", "Restored", "Added", "Removed", "Copied"}
)
"""Actions that create or change a thing (Caliper's general and Resource Management actions)."""
ADMINISTERED_TYPES = frozenset(
    {
        *COURSE_TYPES, "Organization", "Group", "Membership", "Person", "AssignableDigitalResource",
        "Assessment", "AssessmentItem",
    }
)  # fmt: skip
"""Things whose creation or change is course administration: courses, groups, enrolments,
accounts, assignments and tests (a student creates documents, pages, posts, not these)."""
CANVAS_ADMINISTERED = frozenset(
    {
        "account", "course", "enrollment", "assignment", "assignment_override",
        "assignmentOverride", "assignment_group", "assignmentGroup", "quiz", "group",
        "groupCategory", "group_category", "groupMembership", "group_membership", "user",
        "pseudonym", "module", "context_module", "contextModule", "course_section",
        "courseSection", "learning_outcome", "learningOutcome", "rubric", "syllabus",
    }
)  # fmt: skip
"""Canvas URN kinds whose creation or change is administration (the Canvas format's
``STAFF_EVENTS``: course_created, enrollment_created, assignment_created, syllabus_updated,
user_account_association_created, group_membership_created, …)."""
ENROLMENT_ACTIONS = frozenset({"Activated", "Deactivated"})
ORGANIZATION_TYPES = COURSE_TYPES | {"Organization", "Group", "Membership"}
_SPACE = re.compile(r"\s")
_CANVAS_USER = re.compile(r"^urn:instructure:canvas:user:(\d{1,30})$")
"""Canvas global id = shard id * 10^13 + local id (Canvas Data Services, identifiers)."""
_KEY_PREFIX = {"SisSourcedId": "sis", "LisSourcedId": "lis", "OneRosterSourcedId": "oneroster"}
_BB_SIS, _BB_ID = "bb:user.externalId", "bb:user.id"


# -- whose action it is -----------------------------------------------------------------------


def not_the_students(item: Mapping[str, Any]) -> tuple[Ignored, str] | None:
    """Why a valid event is not the student's own engagement, or None; first that applies."""
    if system(item):
        return Ignored.SYSTEM_ACTION, "the actor is a system, a session timed out, or a job acted"
    if _staff_roles(item):
        return Ignored.STAFF_ACTION, "the actor acts in a staff role (membership.roles)"
    if impersonated(item):
        return Ignored.IMPERSONATION, "the session is masqueraded (real_user_id)"
    iri = node_id(item.get("actor")) or ""
    if iri.startswith("_:") or anonymous(iri):
        return Ignored.UNKNOWN_ACTOR, "the actor is anonymous (a blank node or 1.2 anonymous id)"
    record = _record(item)
    if record is not None:
        return Ignored.NOT_ENGAGEMENT, record
    administration = staff_action(item)
    if administration is not None:
        return Ignored.STAFF_ACTION, administration
    return None


def system(item: Mapping[str, Any]) -> bool:
    """The system acted: the actor is typed and is not a Person (a SoftwareApplication, an
    Organization), the action is one only a system performs (a session TimedOut), or Canvas
    says an asynchronous job emitted the event (``job_id`` / ``job_tag`` in its extensions)."""
    kind = node_type(item.get("actor"))
    if kind is not None and kind not in PERSON_TYPES:
        return True
    if term(item.get("action")) in SYSTEM_ACTIONS:
        return True
    canvas = canvas_extension(item)
    return any(canvas.get(key) not in (None, "") for key in ("job_id", "job_tag"))


def _role_words(role: Any) -> set[str]:
    """``http://…/membership#Instructor`` and ``Instructor#TeachingAssistant`` → their words;
    a role given as an object is read by its id or name."""
    if isinstance(role, dict):
        role = node_id(role) or role.get("name")
    return set(re.split(r"[/#]", role)) if isinstance(role, str) else set()


def _staff_roles(item: Mapping[str, Any]) -> bool:
    """A staff LIS role in ``membership.roles``, whatever other roles the actor holds there."""
    membership = item.get("membership")
    if not isinstance(membership, dict):
        return False
    roles = membership.get("roles")
    if isinstance(roles, str | dict):
        roles = [roles]
    return isinstance(roles, list) and any(_role_words(r) & STAFF_ROLES for r in roles)


def staff_action(item: Mapping[str, Any]) -> str | None:
    """Why the action is one only staff perform, whoever is named, or None: making content
    available (Activated, Published, …), posting a Canvas announcement (``is_announcement``),
    creating or changing a course, a group, an enrolment, an account, an assignment or a
    test."""
    action = term(item.get("action"))
    if action in STAFF_ONLY_ACTIONS:
        return "the action makes content available or withdraws it: staff do that"
    obj = item.get("object")
    if canvas_extension(obj).get("is_announcement") is True:
        return "the object is an announcement (is_announcement): staff post those"
    if action in AUTHORING_ACTIONS and (
        node_type(obj) in ADMINISTERED_TYPES or canvas_kind(node_id(obj)) in CANVAS_ADMINISTERED
    ):
        return "the action administers a course, its members, accounts or tasks"
    return None


def _record(item: Mapping[str, Any]) -> str | None:
    """An enrolment or completion record rather than activity: a course or membership
    Activated / Deactivated (Open edX sends a learner's enrolment so), one's own membership
    created or changed (joining a self-signup group), or a course Completed (derived from
    other events, and may mean "passed")."""
    obj = item.get("object")
    action, kind = term(item.get("action")), node_type(obj)
    if action in ENROLMENT_ACTIONS and kind in ORGANIZATION_TYPES:
        return "an enrolment was activated or deactivated: a status, not activity"
    member = node_id(obj.get("member")) if isinstance(obj, dict) else None
    if kind == "Membership" and member is not None and member == node_id(item.get("actor")):
        return "the actor joined or left a group themselves: a membership, not activity"
    if action == "Completed" and kind in COURSE_TYPES:
        return "a course completion record: derived from other events, not activity"
    return None


def _canvas_user(value: Any) -> str | None:
    """A Canvas user id (``entity_id``, ``real_user_id``) or the id in a Canvas user URN."""
    text = _short_id(value)
    if text is None:
        return None
    found = _CANVAS_USER.match(text)
    return found.group(1) if found else text


def impersonated(item: Mapping[str, Any]) -> bool:
    """Someone acted as the student: Canvas names the real user (``real_user_id``) when a
    session is masqueraded, in the actor's Canvas extensions or the event's (or any vendor
    object in the event's extensions); a real user other than the actor is impersonation."""
    actor = item.get("actor")
    iri = node_id(actor) or ""
    own = _canvas_user(canvas_extension(actor).get("entity_id")) or _canvas_user(iri)
    extensions = item.get("extensions")
    places: list[Any] = [canvas_extension(actor)]
    if isinstance(extensions, dict):
        places += [extensions, *(v for v in extensions.values() if isinstance(v, dict))]
    for place in places:
        real = place.get("real_user_id") if isinstance(place, dict) else None
        if real in (None, "") or isinstance(real, dict | list):
            continue
        text = _canvas_user(real) or str(real)
        if text == iri or iri.endswith((f":{text}", f"/{text}")):
            continue
        if own is None or not same_user(text, own):
            return True
    return False


# -- who it is --------------------------------------------------------------------------------


def _short_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= 256 and not _SPACE.search(text) else None


def _not_email(value: Any) -> str | None:
    """An id that may identify a student: never one that looks like an e-mail address (the
    Canvas-format adapter's rule for logins and SIS ids)."""
    text = _short_id(value)
    return None if text is None or "@" in text else text


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


def _canvas_keys(actor: Any, iri: str) -> tuple[list[str], str | None]:
    """Canvas's keys, as the Canvas-format adapter gives them for ``metadata.user_id``,
    ``user_sis_id`` and ``user_login``; and the as-is id (the SIS id, else the login)."""
    canvas = canvas_extension(actor)
    if not canvas and not iri.startswith(CANVAS_URN):
        return [], None
    sis = _not_email(canvas.get("user_sis_id")) or _not_email(canvas.get("sis_id"))
    user = _canvas_user(canvas.get("entity_id")) or _canvas_user(iri)
    login = None if sis is not None else _not_email(canvas.get("user_login"))
    keys = [f"canvas-sis:{sis}"] if sis is not None else []
    if user is not None and user.isdigit():
        keys.append(f"canvas:{user}")
        local = local_id(user)
        keys += [f"canvas:{local}"] if local is not None else []
    keys += [f"canvas-login:{login}"] if login is not None else []
    return keys, sis or login


def actor_of(actor: Any) -> Actor:
    """The identity-map keys and the as-is id of a valid actor (an IRI or an object with one).

    Most specific first: Canvas's SIS id, user id (and its local id) and, without a SIS id, its
    login (never an e-mail address); a Caliper 1.2 SIS, LIS or OneRoster sourced id from
    ``otherIdentifiers``; Blackboard Learn's ``bb:user.externalId`` (the batch_uid) and
    ``bb:user.id``; then the actor's IRI. The as-is id is the first of the Canvas SIS id or
    login, the 1.2 SIS id, the Blackboard batch_uid, the IRI (never a ``mailto:`` or anonymous
    IRI). Names and e-mail addresses are never read.
    """
    iri = node_id(actor) or ""
    keys, as_is = _canvas_keys(actor, iri)
    if isinstance(actor, dict):
        for kind, ident in _system_identifiers(actor):
            if kind in _KEY_PREFIX:
                keys.append(f"{_KEY_PREFIX[kind]}:{ident}")
                if kind == "SisSourcedId" and as_is is None:
                    as_is = ident
        extensions = actor.get("extensions")
        if isinstance(extensions, dict):
            batch_uid, pk = _not_email(extensions.get(_BB_SIS)), _short_id(extensions.get(_BB_ID))
            keys += [f"blackboard-sis:{batch_uid}"] if batch_uid is not None else []
            keys += [f"blackboard:{pk}"] if pk is not None else []
            as_is = as_is or batch_uid
    keys.append(iri)
    if as_is is None and not iri.lower().startswith("mailto:") and not anonymous(iri):
        as_is = iri
    return Actor(keys=tuple(dict.fromkeys(keys)), as_is=as_is)
