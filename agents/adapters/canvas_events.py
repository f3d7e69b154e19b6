"""What each Canvas live event name means to the product, and the body fields it reads.

Canvas names every live event in ``metadata.event_name`` (Canvas Data Services, "Live Events",
Canvas format: one page per event). The tables below sort the documented names into four kinds:

- events that carry a result (a grade, a score, an outcome rating): refused as assessment data;
- course administration (creating courses, assignments, enrolments, outcomes): a member of
  staff acting, ignored as ``staff_action``;
- events emitted by Canvas's own jobs (enrolment states recomputed, SIS imports, module
  progress): ignored as ``system_action``;
- a user's own activity (viewing, logging in, posting, submitting): accepted when the actor is
  a student (see :func:`role_kind`).

Any other name is ignored as ``not_engagement``. Detail sentences name an event only when it is
one of these documented names, never an arbitrary value from the payload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from agents.adapters.units import short
from schemas.common import ASSESSMENT_FIELDS, normalise_name

# Events whose body is a result, whoever sent them (docs: grade_change, course_grade_change,
# grade_override, final_grade_custom_status, submission_custom_grade_status, rubric_assessed,
# learning_outcome_result_created/updated).
ASSESSMENT_EVENTS: Final = frozenset(
    {
        "grade_change", "course_grade_change", "grade_override", "final_grade_custom_status",
        "submission_custom_grade_status", "rubric_assessed", "learning_outcome_result_created",
        "learning_outcome_result_updated", "outcome_result_created", "outcome_result_updated",
    }
)  # fmt: skip

# Course and account administration: someone acting on a course or on students.
STAFF_EVENTS: Final = frozenset(
    {
        "account_created", "account_updated", "account_notification_created",
        "assignment_created", "assignment_updated", "assignment_group_created",
        "assignment_group_updated", "assignment_override_created", "assignment_override_updated",
        "content_migration_started", "content_migration_completed", "master_migration_started",
        "master_migration_completed", "course_created", "course_updated",
        "course_section_created", "course_section_updated", "discussion_topic_updated",
        "enrollment_created", "enrollment_updated", "group_category_created",
        "group_category_updated", "group_created", "group_updated", "group_membership_created",
        "group_membership_updated", "learning_outcome_created", "learning_outcome_updated",
        "learning_outcome_group_created", "learning_outcome_group_updated",
        "learning_outcome_link_created", "learning_outcome_link_updated",
        "lti_resource_link_created", "lti_resource_link_updated", "module_created",
        "module_updated", "module_item_created", "module_item_updated",
        "outcome_calculation_method_created", "outcome_calculation_method_updated",
        "outcome_proficiency_created", "outcome_proficiency_updated", "plagiarism_resubmit",
        "quiz_created", "quiz_updated", "syllabus_updated", "user_created", "user_updated",
        "user_account_association_created", "outcome_friendly_description_created",
        "outcome_friendly_description_updated", "outcomes.retry_outcome_alignment_clone",
        "outcomes_retry_outcome_alignment_clone",
    }
)  # fmt: skip

# Emitted by Canvas's jobs about a user, never by the user's own request.
SYSTEM_EVENTS: Final = frozenset(
    {
        "enrollment_state_created", "enrollment_state_updated", "sis_batch_created",
        "sis_batch_updated", "course_progress", "course_completed", "quiz_export_complete",
        "quizzes_next_quiz_duplicated",
    }
)  # fmt: skip

# New Quizzes (producer "quizzes", ``attributes`` instead of ``metadata``) names its events
# ``quizzes.<thing>_<change>``: authoring a quiz, an item or a bank, by staff.
_AUTHORING_PREFIX: Final = "quizzes."
_AUTHORING_CHANGES: Final = ("_created", "_updated", "_deleted", "_duplicated", "_imported")

# A user's own activity: event name -> (resource kind, body field holding its Canvas id).
# ``asset_accessed`` is handled apart (its body names the asset). Conversations keep no text.
STUDENT_EVENTS: Final[Mapping[str, tuple[str, str]]] = {
    "asset_accessed": ("", ""),
    "logged_in": ("", ""),
    "logged_out": ("", ""),
    "discussion_entry_created": ("discussion_topic", "discussion_topic_id"),
    "discussion_entry_submitted": ("discussion_topic", "discussion_topic_id"),
    "discussion_topic_created": ("discussion_topic", "discussion_topic_id"),
    "submission_created": ("assignment", "assignment_id"),
    "submission_updated": ("assignment", "assignment_id"),
    "submission_comment_created": ("submission", "submission_id"),
    "quiz_submitted": ("quiz", "quiz_id"),
    "wiki_page_created": ("wiki_page", "wiki_page_id"),
    "wiki_page_updated": ("wiki_page", "wiki_page_id"),
    "wiki_page_deleted": ("wiki_page", "wiki_page_id"),
    "attachment_created": ("attachment", "attachment_id"),
    "attachment_updated": ("attachment", "attachment_id"),
    "attachment_deleted": ("attachment", "attachment_id"),
    "conversation_created": ("conversation", "conversation_id"),
    "conversation_message_created": ("conversation", "conversation_id"),
    "conversation_forwarded": ("conversation", "conversation_id"),
}

# Body fields that report a result besides the core list (schemas.common.ASSESSMENT_FIELDS):
# when a submission was graded and by whom, and the previous result.
_GRADING_EXTRA: Final = frozenset({"gradedat", "graderid", "oldscore", "oldgrade"})
_GRADING = ASSESSMENT_FIELDS | _GRADING_EXTRA
# Asset types whose id names a person or a person's record rather than course content.
_PERSONAL_ASSETS: Final = frozenset({"user", "enrollment", "group_membership", "pseudonym"})


def is_assessment_event(name: str) -> bool:
    """Whether an event name reports a result (the documented names, and any name about grades
    or outcome results that Canvas may add)."""
    return (
        name in ASSESSMENT_EVENTS or "grade" in name or "score" in name or "outcome_result" in name
    )


def is_staff_event(name: str) -> bool:
    """Whether an event name is course or account administration: the documented names, and
    New Quizzes authoring (``quizzes.quiz_created``, ``quizzes.item_updated``, …)."""
    if name in STAFF_EVENTS:
        return True
    return name.startswith(_AUTHORING_PREFIX) and name.endswith(_AUTHORING_CHANGES)


def grading_field(body: Any, path: str = "body", depth: int = 0) -> str | None:
    """The dotted path of the first field in ``body`` that holds a result (a grade, a score,
    a graded state), or None. Empty values (null, "", [], {}) are not results: a student's
    fresh submission carries ``"grade": null``."""
    if depth > 8 or not isinstance(body, dict):
        return None
    for key, value in body.items():
        where = f"{path}.{key}"
        name = normalise_name(str(key))
        if name in _GRADING and value not in (None, "", [], {}):
            return where
        if name == "workflowstate" and value == "graded":
            return where
        if isinstance(value, dict):
            found = grading_field(value, where, depth + 1)
            if found is not None:
                return found
    return None


# Custom course roles are named by each institution ("Training Teacher", "Teaching
# Assistant", "Module Leader"): these parts of a role name mark a member of staff.
_STAFF_PARTS: Final = (
    "teach", "designer", "admin", "instructor", "lecturer", "tutor", "grader", "marker",
    "faculty", "staff", "librarian", "leader", "coordinator", "examiner", "moderator",
)  # fmt: skip
_STAFF_WORDS: Final = frozenset({"ta", "tas", "assistant"})
_WORD: Final = re.compile(r"[a-z]+")


class Role(StrEnum):
    """What the actor's Canvas role says about whose activity an event is."""

    STUDENT_OR_UNKNOWN = "student"
    STAFF = "staff"
    TEST_STUDENT = "test_student"
    OBSERVER = "observer"


def role_kind(role: str | None) -> Role:
    """Sort a Canvas role (``metadata.context_role`` or ``body.role``: StudentEnrollment,
    TeacherEnrollment, TaEnrollment, DesignerEnrollment, ObserverEnrollment,
    StudentViewEnrollment, AccountAdmin, AccountUser, GroupMembership, User, …)."""
    if not role:
        return Role.STUDENT_OR_UNKNOWN
    text = role.lower()
    if text == "studentviewenrollment":
        return Role.TEST_STUDENT
    if "observer" in text:
        return Role.OBSERVER
    words = set(_WORD.findall(text))
    if (
        text in ("taenrollment", "accountuser", "accountmembership")
        or any(part in text for part in _STAFF_PARTS)
        or not words.isdisjoint(_STAFF_WORDS)
    ):
        return Role.STAFF
    return Role.STUDENT_OR_UNKNOWN


def resource(name: str, body: Mapping[str, Any]) -> str:
    """The thing acted on, as ``<kind>:<canvas id>`` (``asset_accessed`` adds ``/<subtype>``
    for a list view): never a title, a file name or a person's id."""
    if name == "asset_accessed":
        return _asset(body)
    kind, field = STUDENT_EVENTS.get(name, ("", ""))
    if not kind:
        return ""
    ident = short(body.get(field))
    return f"{kind}:{ident}" if ident else kind


def _asset(body: Mapping[str, Any]) -> str:
    kind = short(body.get("asset_type"), 64)
    if kind is None:
        return ""
    ident = None if kind in _PERSONAL_ASSETS else short(body.get("asset_id"), 64)
    subtype = short(body.get("asset_subtype"), 64)
    text = f"{kind}:{ident}" if ident else kind
    return f"{text}/{subtype}" if subtype else text
