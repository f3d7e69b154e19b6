"""What an xAPI statement is: assessment (refused), not the student's own engagement (ignored),
or an attendance mark, a presence swipe, library use or VLE activity (docs/formats/xapi.md).

Verbs and activity types are compared without their scheme and lower-cased
(:func:`agents.adapters.xapi_parts.bare`), so ``http``/``https`` spellings are one term.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from agents.adapters.units import Ignored, Stop
from agents.adapters.xapi_moodle import check_moodle_assessment, check_moodle_ignored
from agents.adapters.xapi_parts import (
    Statement,
    bare,
    clean_iri,
    extensions,
    fit,
    jisc,
    refuse,
    segment,
    someone_else,
    text_of,
)
from schemas.common import (
    ASSESSMENT_ACTIONS,
    ASSESSMENT_FIELDS,
    SPECIAL_CATEGORY_FIELDS,
    Reason,
    normalise_name,
)

VOIDED = "adlnet.gov/expapi/verbs/voided"
ATTENDED = frozenset({"adlnet.gov/expapi/verbs/attended", "xapi.jisc.ac.uk/attended"})
PRESENT_AT = frozenset(
    {"activitystrea.ms/schema/1.0/at", "activitystrea.ms/at", "xapi.jisc.ac.uk/at"}
)
LEFT = frozenset({"activitystrea.ms/schema/1.0/leave", "activitystrea.ms/leave"})
ACCESSED = frozenset({"activitystrea.ms/schema/1.0/access", "activitystrea.ms/access"})
FACILITY_TYPES = frozenset(
    {
        "xapi.jisc.ac.uk/activities/learning_space",
        "xapi.jisc.ac.uk/activities/library",
        "xapi.jisc.ac.uk/activities/facility",
        "activitystrea.ms/schema/1.0/place",
    }
)
LIBRARY_VERBS = {
    "activitystrea.ms/schema/1.0/borrowed": "loan",
    "activitystrea.ms/schema/1.0/borrow": "loan",
    "xapi.jisc.ac.uk/renewed": "renewal",
    "xapi.jisc.ac.uk/verbs/renewed": "renewal",
    "activitystrea.ms/schema/1.0/return": "return",
    "activitystrea.ms/schema/1.0/returned": "return",
}
# Verbs whose statement reports a judgement of the learner's work.
GRADING_VERBS = (
    frozenset({"scored", "graded", "passed", "failed", "mastered", "marked", "assessed"})
    | ASSESSMENT_ACTIONS
)
# Statements the system makes about a learner (cmi5's LMS verbs, Jisc's session timeout, the
# Jisc learning-analytics processor's predictions).
SYSTEM_VERBS = frozenset({"abandoned", "satisfied", "waived", "predicted"})
STAFF_TYPES = frozenset(
    {
        "xapi.jisc.ac.uk/case",
        "xapi.jisc.ac.uk/note",
        "xapi.jisc.ac.uk/intervention",
        "xapi.jisc.ac.uk/intervention/note",
        "xapi.jisc.ac.uk/activities/intervention",
    }
)
STAFF_CATEGORIES = frozenset({"case", "intervention", "note"})
SURVEY_WORDS = ("survey", "questionnaire")
# H5P's Questionnaire and the question types that exist only inside one, as category
# activities name them (http://h5p.org/libraries/H5P.OpenEndedQuestion-1.0).
H5P_SURVEY_LIBRARIES = ("h5p.questionnaire-", "h5p.openendedquestion-", "h5p.simplemultichoice-")
SURVEY_PATHS = ("/mod/questionnaire/", "/mod/survey/", "/mod/feedback/")
# Path parts of an object id that make it a survey or a self-report check-in (Jisc Study
# Goal's "How are you feeling today?" is http://app/sentiment/quiz1/question1).
SURVEY_PARTS = frozenset(
    {"survey", "surveys", "questionnaire", "questionnaires", "poll", "polls", "sentiment", "mood",
     "wellbeing"}
)  # fmt: skip
COURSE_TYPES = frozenset({"course", "coursearea"})
_LMS = "w3id.org/learning-analytics/learning-management-system/"
# A course's own codes, best first: the institution's id (Moodle's idnumber, the student
# record's code), then the LMS short name.
COURSE_IDS = (_LMS + "external-id", _LMS + "short-id")
MOODLE_SITE_COURSE = "/course/view.php?id=1"
# Verbs that record something done to the learner's enrolment, membership or record (Moodle's
# enrolments, group memberships, badges, certificates, programme assignments, attempt reviews):
# when context.instructor is someone else, that person did it.
ACTED_ON_VERBS = frozenset(
    {
        "enrolled", "unenrolled", "join", "joined", "leave", "left", "suspended", "resumed",
        "achieved", "earned", "awarded", "forfeited", "revoked", "assign", "assigned",
        "receive", "received", "registered", "unregistered",
    }
)  # fmt: skip
# The prepositions profile's context extensions (logstore_xapi): "as" names the user someone
# logged in as; "for" the learner whose work the actor handled.
_PREPOSITIONS = "yetanalytics.com/profiles/prepositions/concepts/context-extensions/"
AS_EXTENSION, FOR_EXTENSION = _PREPOSITIONS + "as", _PREPOSITIONS + "for"
# A note about a learner (logstore_xapi's notes): the object's subject, the context's scope.
NOTE_SUBJECTS = ("note-subject", "note-subject-scope")
# Where the Jisc courseArea extension names the module or course, best first.
MODULE_KEYS = (
    "uddmodinstanceid",
    "modinstanceid",
    "vle_mod_id",
    "uddcourseinstanceid",
    "udddcourseinstanceid",
    "courseinstanceid",
)


# -- refused: assessment and special-category data --------------------------------------------


@lru_cache(maxsize=8192)
def _forbidden(key: str) -> Reason | None:
    name = normalise_name(segment(key))
    if name in ASSESSMENT_FIELDS:
        return Reason.ASSESSMENT_DATA
    return Reason.FORBIDDEN_FIELD if name in SPECIAL_CATEGORY_FIELDS else None


def _forbidden_keys(ext: dict[str, Any], where: str, depth: int = 0) -> None:
    """Refuse an extension (or one nested in it) named like a result or special-category data."""
    for key, value in ext.items():
        found = _forbidden(key)
        if found is Reason.ASSESSMENT_DATA:
            raise refuse(found, f"{where} names a result ({segment(key)})")
        if found is not None:
            raise refuse(found, f"{where} has a special-category extension")
        if isinstance(value, dict) and depth < 2:
            _forbidden_keys(extensions(value, where), where, depth + 1)


def check_assessment(st: Statement, attendance: bool) -> None:
    """Refuse a statement that reports a result: a score, a pass/fail, a grading verb, or an
    extension named like a grade. An attendance statement's ``result`` (completion, lateness,
    category) is attendance, not a result; a score there is still refused."""
    result = st.result
    if result is not None:
        if "score" in result:
            raise refuse(Reason.ASSESSMENT_DATA, "result.score reports an assessment result")
        if "success" in result and not attendance:
            raise refuse(Reason.ASSESSMENT_DATA, "result.success reports an assessment result")
        _forbidden_keys(
            extensions(result.get("extensions"), "result.extensions"), "result.extensions"
        )
    if normalise_name(st.action) in GRADING_VERBS:
        raise refuse(Reason.ASSESSMENT_DATA, "verb.id is a grading verb: an assessment result")
    _forbidden_keys(st.object_ext, "object.definition.extensions")
    _forbidden_keys(st.context_ext, "context.extensions")
    check_moodle_assessment(st)


# -- ignored: not the student's own engagement -------------------------------------------------


def _types_and_ids(st: Statement) -> tuple[list[str], list[str]]:
    """The activity types and ids of the object and of every context activity."""
    types, ids = [st.definition_type], [st.object_id.lower()]
    for activity in st.context_activities():
        definition = activity.get("definition")
        if isinstance(definition, dict) and isinstance(definition.get("type"), str):
            types.append(definition["type"].lower())
        if isinstance(activity.get("id"), str):
            ids.append(activity["id"].lower())
    return types, ids


def _is_staff(st: Statement, ids: list[str]) -> bool:
    return (
        st.category in STAFF_CATEGORIES
        or st.definition_type in STAFF_TYPES
        or st.definition_type.startswith("xapi.jisc.ac.uk/intervention")
        or any(i.endswith("xapi.jisc.ac.uk/activities/intervention") for i in ids)
        or jisc(st.context_ext, "case-target") is not None
    )


def _about_someone_else(st: Statement) -> bool:
    """Someone acted on a learner: a note about them, their work handled ``for`` them, or
    their enrolment, membership or award changed by a ``context.instructor`` who is not the
    actor."""
    for ext in (st.object_ext, st.context_ext):
        if any(segment(k) in NOTE_SUBJECTS and someone_else(v, st.raw) for k, v in ext.items()):
            return True
    if someone_else(st.context_ext.get(FOR_EXTENSION), st.raw):
        return True
    return st.action in ACTED_ON_VERBS and someone_else(st.context.get("instructor"), st.raw)


def _is_survey(st: Statement, types: list[str], ids: list[str]) -> bool:
    """A survey or questionnaire: by activity type, by Moodle path, by a category activity
    naming one (H5P's ``H5P.Questionnaire`` library and the question types inside it), or by
    a part of the object's path (``/sentiment/``, ``/survey/``, ``/poll/``)."""
    categories = [segment(a["id"]) for a in st.context_activities(("category",)) if _iri(a)]
    return (
        any(word in segment(t) for t in types for word in SURVEY_WORDS)
        or any(path in i for i in ids for path in SURVEY_PATHS)
        or any(word in c for c in categories for word in SURVEY_WORDS)
        or any(c.startswith(H5P_SURVEY_LIBRARIES) for c in categories)
        or not SURVEY_PARTS.isdisjoint(_path_parts(st.object_id))
    )


def _path_parts(iri: str) -> list[str]:
    """The lower-cased path segments of an IRI (no scheme, host, query or fragment)."""
    path = bare(iri).partition("?")[0].partition("#")[0]
    return path.split("/")[1:]


def _iri(activity: dict[str, Any]) -> bool:
    return isinstance(activity.get("id"), str)


def check_ignored(st: Statement) -> None:
    """Ignore impersonation, staff interventions and actions on a learner, system statements,
    surveys and statements about people."""
    if someone_else(st.context_ext.get(AS_EXTENSION), st.raw):
        raise Stop(Ignored.IMPERSONATION, "the actor acted as another user (context extension as)")
    types, ids = _types_and_ids(st)
    if _is_staff(st, ids):
        raise Stop(Ignored.STAFF_ACTION, "a case, note or intervention recorded by staff")
    if _about_someone_else(st):
        raise Stop(Ignored.STAFF_ACTION, "someone acted on a learner (instructor, for, a note)")
    check_moodle_ignored(st)
    # logstore_xapi names the awarder of an automatic badge as the string "System".
    awarded_by_system = st.action in ACTED_ON_VERBS and isinstance(
        st.context.get("instructor"), str
    )
    if st.action in SYSTEM_VERBS or awarded_by_system:
        raise Stop(Ignored.SYSTEM_ACTION, "a statement the system makes (verb.id, instructor)")
    if _is_survey(st, types, ids):
        raise Stop(Ignored.SURVEY, "survey or questionnaire participation: answers are not kept")
    if st.object_kind in ("Agent", "Group"):
        raise Stop(Ignored.NOT_ENGAGEMENT, "the object is a person, not an activity")
    if st.object_kind == "SubStatement":
        raise Stop(Ignored.NOT_ENGAGEMENT, "the object is a sub-statement, not an activity")


# -- what it becomes ---------------------------------------------------------------------------


def kind_of(st: Statement) -> str:
    """``attendance``, ``swipe``, ``library`` or ``vle``."""
    verb = st.verb
    if verb in ATTENDED:
        return "attendance"
    at_place = st.definition_type in FACILITY_TYPES or st.category == "access"
    if verb in PRESENT_AT or ((verb in LEFT or verb in ACCESSED) and at_place):
        return "swipe"
    if verb in LIBRARY_VERBS or st.category == "library":
        return "library"
    return "vle"


def course_area(st: Statement) -> str | None:
    """The module or course the Jisc ``courseArea`` extension names (context, then object)."""
    for ext in (st.context_ext, st.object_ext):
        area = jisc(ext, "coursearea")
        if not isinstance(area, dict):
            continue
        keys = extensions(area, "courseArea")
        for name in MODULE_KEYS:
            found = text_of(jisc(keys, name))
            if found is not None:
                return found
    return None


def _course_code(activity: dict[str, Any]) -> str | None:
    """A course activity's code: its institution id, else its LMS short id, else its IRI
    cleaned like a resource (a longer one hashed); None when it is not a course."""
    definition = activity.get("definition")
    if not isinstance(definition, dict) or not isinstance(definition.get("type"), str):
        return None
    if segment(definition["type"]) not in COURSE_TYPES:
        return None
    ext = definition.get("extensions")
    codes = extensions(ext, "extensions") if ext else {}
    for name in COURSE_IDS:
        code = text_of(codes.get(name))
        if code is not None:
            return code
    iri = clean_iri(activity["id"]) if isinstance(activity.get("id"), str) else ""
    # Moodle's course 1 is the site's front page (SITEID): the first plug-in versions named
    # the site as a course activity beside the real one.
    if iri and not iri.endswith(MOODLE_SITE_COURSE):
        return fit(iri, 128, "xapi-course")
    return None


def course_activity(st: Statement) -> str | None:
    """The first course-type context activity's code; else the object's, when the statement
    is about a course itself (viewing, completing or enrolling in it)."""
    for activity in st.context_activities():
        code = _course_code(activity)
        if code is not None:
            return code
    if st.object_kind == "Activity" and isinstance(st.raw.get("object"), dict):
        return _course_code(st.raw["object"])
    return None
