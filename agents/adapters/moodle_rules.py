"""Which Moodle events are whose: the tables the Moodle log adapter decides with.

Moodle names every event by its class, ``\\<component>\\event\\<target>_<action>``
(lib/classes/event/base.php), and gives it an *educational level* (``edulevel``):
0 = other, 1 = teaching (a teacher's action on the course), 2 = participating (a user's own
learning activity). The level alone does not say everything: a grade is "teaching", a
submitted quiz attempt is "participating" but is assessed on submission, and Moodle logs a
few actions on one user by another at level 0 (enrolments, role assignments, notes). These
tables hold the exceptions; docs/formats/moodle.md explains each one.

Everything here is a pure function of the event's component and class name, except
:func:`forbidden_in_other`, which reads the ``other`` column's keys.
"""

from __future__ import annotations

import json
import re
from typing import Final

from schemas.common import (
    ASSESSMENT_FIELDS,
    SPECIAL_CATEGORY_FIELDS,
    Reason,
    find_forbidden,
    normalise_name,
)

SURVEY_COMPONENTS: Final = frozenset(
    {"mod_feedback", "mod_survey", "mod_questionnaire", "mod_choice", "mod_surveypro"}
)
"""Surveys, questionnaires and polls: participation is ignored and answers never kept.
A choice is a poll (an opinion or a preference), so it counts as a survey."""

_ASSESSMENT_CLASSES: Final = frozenset(
    {
        # Quiz and quiz-like activities: assessed on submission, reviews show the marks.
        "attempt_submitted", "attempt_reviewed", "attempt_regraded",
        "attempt_manual_grading_completed", "attempt_graded",
        # Workshop (peer and teacher assessment), SCORM and H5P results, lesson essays.
        "assessment_evaluations_reset", "assessments_reset", "scoreraw_submitted",
        "statement_received",
        # Ratings (forum, glossary, database ratings aggregate into grades).
        "rating_created", "rating_updated", "rating_deleted",
    }
)  # fmt: skip
"""Event classes that report an assessment or a result, whatever their component."""

_ASSESSMENT_WORDS: Final = frozenset(
    {"graded", "regraded", "assessed", "reassessed", "evaluated", "reevaluated", "rated", "scored"}
)
"""A class name with one of these words (``user_graded``, ``essay_assessed``,
``assessment_evaluated``, ``user_competency_rated_in_course``) reports a result."""

_ASSESSMENT_PAIRS: Final = frozenset({("mod_scorm", "status_submitted")})
"""Component-specific result events (a SCORM status is passed, failed or completed)."""

_ASSESSMENT_PREFIXES: Final = (
    "gradingform_",
    "gradeimport_",
    "gradeexport_",
    "gradepenalty_",
    "assignfeedback_",
)
"""Components that exist to grade: rubrics, grade import and export, penalties, feedback."""

_RESULT_VIEW_CLASSES: Final = frozenset(
    {
        "grade_report_viewed", "feedback_viewed", "competency_user_competency_viewed",
        "competency_user_competency_viewed_in_course", "competency_user_competency_viewed_in_plan",
    }
)  # fmt: skip
_RESULT_VIEW_PAIRS: Final = frozenset({("mod_h5pactivity", "report_viewed")})
_RESULT_VIEW_PREFIX: Final = "gradereport_"
"""Looking at a gradebook report, at one's feedback, at a competency rating (participating
level, ``lib/classes/event/competency_user_competency_viewed_in_course.php``) or at one's H5P
attempts and their scores: about results, not learning."""

TEACHER_EDITS: Final = frozenset({"quiz_repaginated", "quiz_grade_updated", "slot_mark_updated"})
"""Quiz editing that Moodle logs at the participating level although only a teacher can do it
(``mod/quiz/classes/event/quiz_repaginated.php``, ``quiz_grade_updated.php``,
``slot_mark_updated.php``); their ``other`` holds the quiz's maximum grade or mark, a property
of the task, not a result."""

DERIVED_CLASSES: Final = frozenset(
    {
        "course_module_completion_updated", "course_completion_updated", "course_completed",
        "course_module_completion_override",
    }
)  # fmt: skip
"""Completion records: Moodle derives them from another logged action (a view, a
submission, a grade), and a completion state can be "passed" or "failed"."""

STAFF_ON_STUDENT: Final = frozenset(
    {
        "role_assigned", "role_unassigned", "user_enrolment_created", "user_enrolment_updated",
        "user_enrolment_deleted", "note_created", "note_updated", "note_deleted",
        "group_member_added", "group_member_removed", "user_created", "user_updated",
        "user_deleted", "user_password_updated", "badge_awarded", "badge_revoked",
        "extension_granted", "user_override_created", "user_override_updated",
        "user_override_deleted", "submission_locked", "submission_unlocked",
        "cohort_member_added", "cohort_member_removed",
    }
)  # fmt: skip
"""Actions Moodle logs on a user (``relateduserid``) by someone else (``userid``), some of
them at level 0: enrolling, assigning roles, notes, groups, accounts, badges, extensions."""

IMPERSONATION_CLASSES: Final = frozenset({"user_loggedinas"})
"""An administrator starting "log in as" another user."""

PLATFORM_CLASSES: Final = frozenset({"user_loggedin", "user_loggedout"})
"""Level-0 events that still are the student's engagement: signing in and out."""

_OTHER_KEYS: Final = re.compile(r's:\d+:"([^"]{1,64})"|"([^"\\]{1,64})"\s*:')
"""Keys in ``other`` when it is not valid JSON: PHP ``serialize()`` strings (Moodle before
the JSON format setting) and ``"key":`` pairs of broken JSON."""

SYSTEM_ORIGINS: Final = frozenset({"cli", "restore"})
"""``origin`` of rows written by a command-line script or scheduled task, and of rows
replayed from a course backup (restore): never a student's own click."""


def is_assessment(component: str, classname: str) -> bool:
    """Whether an event reports a grade, an assessment or a result (refused)."""
    if classname in _ASSESSMENT_CLASSES or (component, classname) in _ASSESSMENT_PAIRS:
        return True
    if classname.startswith("grade_") and classname not in _RESULT_VIEW_CLASSES:
        return True
    if component.startswith(_ASSESSMENT_PREFIXES):
        return True
    return not _ASSESSMENT_WORDS.isdisjoint(classname.split("_"))


def is_result_view(component: str, classname: str) -> bool:
    """Whether an event is someone looking at a gradebook report or at assessment feedback."""
    return (
        classname in _RESULT_VIEW_CLASSES
        or (component, classname) in _RESULT_VIEW_PAIRS
        or component.startswith(_RESULT_VIEW_PREFIX)
    )


def forbidden_in_other(text: str) -> tuple[Reason, str] | None:
    """(reason, ``other.<key>``) of the first key of the ``other`` column that is on the core's
    forbidden lists, or None. ``other`` is JSON on current sites; when it does not parse, its
    keys are read as PHP ``serialize()`` strings (older sites) or ``"key":`` pairs."""
    text = text.strip()
    if len(text) < 4:  # "N;", "[]", "{}", "null": nothing to look at
        return None
    if text[0] in "{[":
        try:
            return find_forbidden(json.loads(text), "other")
        except ValueError:
            pass  # broken JSON: look at its keys below
    for php, quoted in _OTHER_KEYS.findall(text):
        key = php or quoted
        name = normalise_name(key)
        if name in ASSESSMENT_FIELDS:
            return Reason.ASSESSMENT_DATA, f"other.{key}"
        if name in SPECIAL_CATEGORY_FIELDS:
            return Reason.FORBIDDEN_FIELD, f"other.{key}"
    return None
