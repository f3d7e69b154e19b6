"""The xAPI adapter: the Jisc samples and recipe templates and hand-written statements give their
expected outcomes, accepted events are valid product events, and the rules of issue 13
(identity, staff/system actions, surveys, assessment data, time, ids, course/platform,
malformed input) hold for any input."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.adapters import xapi
from agents.adapters.identity import Policy, resolve
from agents.adapters.units import AdaptContext, Outcome, Unit, content_id
from schemas.sources import SOURCES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "xapi"
EXPECTED: dict[str, list[dict[str, Any]]] = json.loads(
    (FIXTURES / "expected.json").read_text(encoding="utf-8")
)
RECEIVED = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
CTX = AdaptContext(received_at=RECEIVED)
HOME = "https://vle.poppleton.ac.uk"
# Values planted in statements that must never come out in an event or a detail.
NAME, EMAIL, IP, DISPLAY = "Zebedee Quixote", "zq.planted@example.org", "198.51.100.77", "zeb_q"
LETTER = "A-minus-planted"
PLANTED = (NAME, EMAIL, IP, DISPLAY, "87.5", LETTER)
COURSE_TYPE = "https://w3id.org/xapi/cmi5/activitytype/course"
LMS = "https://w3id.org/learning-analytics/learning-management-system/"
EDLM = "https://xapi.edlm/profiles/edlm-lms/concepts/"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def adapt(payload: Any, ctx: AdaptContext = CTX) -> list[Unit]:
    return xapi.adapt(payload, ctx)


def one(payload: Any, ctx: AdaptContext = CTX) -> Unit:
    units = adapt(payload, ctx)
    assert len(units) == 1
    return units[0]


def statement(**changes: Any) -> dict[str, Any]:
    """A student's valid 'viewed' statement, with ``changes`` applied (None deletes)."""
    base: dict[str, Any] = {
        "id": "5F0C5E4E-3B1A-4C61-9A52-000000000001",
        "actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": "stu1"}},
        "verb": {"id": "http://id.tincanapi.com/verb/viewed", "display": {"en": "viewed"}},
        "object": {
            "objectType": "Activity",
            "id": f"{HOME}/mod/page/view.php?id=21",
            "definition": {"type": "http://xapi.jisc.ac.uk/vle/page"},
        },
        "context": {
            "platform": "Moodle",
            "extensions": {
                "http://xapi.jisc.ac.uk/courseArea": {
                    "http://xapi.jisc.ac.uk/uddModInstanceID": "LA101-2025"
                }
            },
        },
        "timestamp": "2025-10-14T10:15:00+01:00",
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def attended(**result: Any) -> dict[str, Any]:
    """A Jisc attendance statement with the given ``result``."""
    return statement(
        verb={"id": "http://adlnet.gov/expapi/verbs/attended"},
        object={
            "id": f"{HOME}/event/EVT_1",
            "definition": {
                "type": "http://xapi.jisc.ac.uk/event_timetabled",
                "extensions": {
                    "http://xapi.jisc.ac.uk/event_id": "EVT_1",
                    "http://xapi.jisc.ac.uk/starttime": "2025-10-14T09:00:00+01:00",
                    "http://xapi.jisc.ac.uk/endtime": "2025-10-14T11:00:00+01:00",
                },
            },
        },
        result=result,
        timestamp="2025-10-14T09:00:00+01:00",
    )


def valid(unit: Unit) -> dict[str, Any]:
    assert unit.outcome is Outcome.ACCEPTED, unit
    assert unit.source is not None and unit.event is not None
    SOURCES[unit.source].model.model_validate({**unit.event, "student_id": "S1"})
    return dict(unit.event)


def shown(units: list[Unit]) -> str:
    """Everything a unit shows downstream: its report (with detail) and its event."""
    return json.dumps([[u.report(), u.event] for u in units], default=str)


# -- the samples ------------------------------------------------------------------------------


OUTCOME_KEYS = ("outcome", "as", "reason")


def test_every_sample_has_expected_outcomes() -> None:
    names = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.json")}
    assert names - {"expected.json"} == set(EXPECTED)
    assert (FIXTURES / "LICENSE").is_file() and (FIXTURES / "SOURCES.md").is_file()
    real = {name for name in EXPECTED if name.startswith("real/")}
    assert len(real) >= 4
    assert sum(len(EXPECTED[name]) for name in real) >= 30
    for name in real:  # every real sample is cited with its origin
        assert name.removeprefix("real/") in (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_gives_its_expected_outcomes(name: str) -> None:
    """Outcome, product source and reason of every unit; for the real samples also the
    event's fields a university reads (course, action, platform; module and status)."""
    units = adapt(load(name))
    got = [{"outcome": str(u.outcome), "as": u.source, "reason": u.reason} for u in units]
    assert got == [{key: row[key] for key in OUTCOME_KEYS} for row in EXPECTED[name]]
    assert [u.index for u in units] == list(range(len(units)))
    for unit, row in zip(units, EXPECTED[name], strict=True):
        if unit.outcome is Outcome.ACCEPTED:
            event = valid(unit)
            fields = {key: value for key, value in row.items() if key not in OUTCOME_KEYS}
            assert {key: event.get(key) for key in fields} == fields
        else:
            assert unit.event is None and unit.detail


def test_sample_counts() -> None:
    outcomes = [u["outcome"] for units in EXPECTED.values() for u in units]
    assert outcomes.count("accepted") >= 40
    assert {u["as"] for units in EXPECTED.values() for u in units} >= {
        "vle",
        "attendance",
        "swipe",
        "library",
    }


def test_nothing_of_a_graded_sample_is_kept() -> None:
    for name in ("blackboard-assignment_graded.json", "moodle-asssignment_graded.json"):
        unit = one(load(name))
        assert unit.reason == "assessment_data"
        text = shown([unit])
        assert "75" not in text and "20" not in text and "0.75" not in text


# -- identity ---------------------------------------------------------------------------------


def test_account_key_and_as_is() -> None:
    unit = one(statement())
    assert unit.actor is not None
    assert unit.actor.keys == (f"{HOME}|stu1",)
    assert unit.actor.as_is == "stu1"
    slash = one(statement(actor={"account": {"homePage": HOME + "/", "name": " stu1 "}}))
    assert slash.actor is not None
    assert slash.actor.keys == (f"{HOME}/|stu1", f"{HOME}|stu1")


def test_openid_is_key_and_as_is() -> None:
    iri = "https://id.poppleton.ac.uk/u/4711"
    unit = one(statement(actor={"objectType": "Agent", "openid": iri}))
    assert unit.actor is not None and unit.actor.keys == (iri,) and unit.actor.as_is == iri


def test_email_is_a_map_key_never_a_student_id() -> None:
    mbox = "mailto:jo@example.ac.uk"
    unit = one(statement(actor={"mbox": mbox, "name": NAME}))
    digest = hashlib.sha1(mbox.encode(), usedforsecurity=False).hexdigest()
    assert unit.actor is not None
    assert unit.actor.keys == (mbox, f"sha1:{digest}") and unit.actor.as_is is None
    assert NAME not in repr(unit.actor) and "jo@" not in shown([unit])
    [as_is] = resolve([unit], Policy.AS_IS, {})
    assert as_is.outcome is Outcome.IGNORED and as_is.reason == "unknown_actor"
    [mapped] = resolve([unit], Policy.MAP, {f"sha1:{digest}": "S7654321"})
    assert mapped.event is not None and mapped.event["student_id"] == "S7654321"
    sha = one(statement(actor={"mbox_sha1sum": digest.upper()}))
    assert sha.actor is not None and sha.actor.keys == (f"sha1:{digest}",)


def test_names_are_dropped() -> None:
    unit = one(statement(actor={"name": NAME, "account": {"homePage": HOME, "name": "stu1"}}))
    assert NAME not in shown([unit]) and NAME not in repr(unit.actor)
    [resolved] = resolve([unit], Policy.AS_IS, {})
    assert resolved.event is not None and resolved.event["student_id"] == "stu1"


@pytest.mark.parametrize(
    ("actor", "outcome", "reason", "field"),
    [
        ({"objectType": "Group", "member": []}, "ignored", "unknown_actor", ""),
        ({"name": NAME}, "refused", "missing_field", "actor.account"),
        (
            {"mbox": "mailto:a@b.c", "account": {"homePage": HOME, "name": "x"}},
            "refused",
            "invalid_value",
            "actor.mbox",
        ),
        ({"mbox": "a@b.c"}, "refused", "invalid_value", "actor.mbox"),
        ({"mbox_sha1sum": "xyz"}, "refused", "invalid_value", "actor.mbox_sha1sum"),
        ({"account": "stu1"}, "refused", "wrong_type", "actor.account"),
        ({"account": {"homePage": HOME}}, "refused", "missing_field", "actor.account.name"),
        ({"account": {"name": "x"}}, "refused", "missing_field", "actor.account.homePage"),
        ({"objectType": "Person", "openid": "x"}, "refused", "invalid_value", "actor.objectType"),
        ("stu1", "refused", "wrong_type", "actor"),
    ],
)
def test_actor_problems(actor: Any, outcome: str, reason: str, field: str) -> None:
    unit = one(statement(actor=actor))
    assert (str(unit.outcome), unit.reason) == (outcome, reason)
    assert field in unit.detail
    assert NAME not in unit.detail and "a@b.c" not in unit.detail


# -- staff, system, surveys, voided -----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "recipe-case-create-activity-input.json",
        "recipe-case-update-activity-input.json",
        "recipe-case-close-activity-input.json",
        "recipe-note-create-activity-input.json",
    ],
)
def test_staff_cases_and_notes_are_ignored(name: str) -> None:
    unit = one(load(name))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "staff_action")
    assert "Talked about attendance" not in shown([unit])


def test_instructor_or_authority_alone_is_not_a_staff_action() -> None:
    actor = {"objectType": "Agent", "account": {"homePage": HOME, "name": "stu1"}}
    unit = one(statement(context={"instructor": actor}, authority={"mbox": "mailto:lrs@x.y"}))
    assert unit.outcome is Outcome.ACCEPTED


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"verb": {"id": "https://w3id.org/xapi/adl/verbs/abandoned"}}, "system_action"),
        ({"verb": {"id": "https://w3id.org/xapi/adl/verbs/satisfied"}}, "system_action"),
        ({"verb": {"id": "http://xapi.jisc.ac.uk/verbs/predicted"}}, "system_action"),
        ({"object": {"objectType": "Agent", "mbox": "mailto:a@b.c"}}, "not_engagement"),
        ({"object": {"objectType": "SubStatement"}}, "not_engagement"),
        ({"verb": {"id": "http://adlnet.gov/expapi/verbs/voided"}}, "voided"),
    ],
)
def test_not_the_students_own_engagement(changes: dict[str, Any], reason: str) -> None:
    unit = one(statement(**changes))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, reason)


@pytest.mark.parametrize(
    "obj",
    [
        {
            "id": f"{HOME}/q/1",
            "definition": {"type": "http://id.tincanapi.com/activitytype/survey"},
        },
        {"id": f"{HOME}/mod/questionnaire/view.php?id=3"},
        {"id": f"{HOME}/mod/feedback/complete.php?id=3"},
        {"id": f"{HOME}/x", "definition": {"type": "https://example.org/questionnaire-item"}},
        {"id": "http://app/sentiment/quiz1/question1"},  # Jisc Study Goal's mood check-in
        {"id": f"{HOME}/polls/7?id=3"},
    ],
)
def test_surveys_are_ignored_and_answers_not_kept(obj: dict[str, Any]) -> None:
    unit = one(statement(object=obj, result={"response": "planted answer text"}))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "survey")
    assert "planted answer" not in shown([unit])


def test_a_course_named_like_a_survey_is_not_a_survey() -> None:
    grouping = [{"id": f"{HOME}/course/land-surveying", "definition": {"type": "x/course"}}]
    unit = one(statement(context={"contextActivities": {"grouping": grouping}}))
    assert unit.outcome is Outcome.ACCEPTED
    page = {"id": f"{HOME}/land-surveying/moodle-tips?survey=1"}
    assert one(statement(object=page)).outcome is Outcome.ACCEPTED


TUTOR = {"objectType": "Agent", "account": {"homePage": HOME, "name": "tutor9"}}
STUDENT = {"objectType": "Agent", "account": {"homePage": HOME + "/", "name": "stu1"}}  # the actor
OTHER = {"account": {"homePage": HOME, "name": "stu2"}}
PREPOSITION = "https://yetanalytics.com/profiles/prepositions/concepts/context-extensions/"
VIEWED = "http://id.tincanapi.com/verb/viewed"
INFO = "http://lrs.learninglocker.net/define/extensions/info"


def moodle(event: str, **changes: Any) -> dict[str, Any]:
    """``statement(**changes)`` as logstore_xapi writes it for the Moodle event ``event``."""
    base = statement(**changes)
    context = base.setdefault("context", {})
    context.setdefault("extensions", {})[INFO] = {
        "event_name": event,
        "event_function": "\\src\\transformer\\events\\all\\course_module_viewed",
    }
    return base


def test_moodle_log_in_as_is_impersonation() -> None:
    login = {"id": "https://brindlewaye.com/xAPITerms/verbs/loggedin/"}
    unit = one(statement(verb=login, context={"extensions": {PREPOSITION + "as": OTHER}}))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "impersonation")
    assert "stu2" not in unit.detail


@pytest.mark.parametrize(
    ("verb", "context", "obj_ext", "reason"),
    [
        (EDLM + "verbs/enrolled", {"instructor": TUTOR}, {}, "staff_action"),
        ("http://activitystrea.ms/join", {"instructor": TUTOR}, {}, "staff_action"),
        ("http://activitystrea.ms/leave", {"instructor": {"member": []}}, {}, "staff_action"),
        ("https://w3id.org/xapi/tla/verbs/achieved", {"instructor": TUTOR}, {}, "staff_action"),
        ("https://w3id.org/xapi/tla/verbs/achieved", {"instructor": "System"}, {}, "system_action"),
        (VIEWED, {"extensions": {PREPOSITION + "for": OTHER}}, {}, "staff_action"),
        (VIEWED, {}, {EDLM + "activity-extensions/note-subject": OTHER}, "staff_action"),
        (VIEWED, {"extensions": {EDLM + "context-extensions/note-subject-scope": OTHER}}, {},
         "staff_action"),
    ],
)  # fmt: skip
def test_someone_else_acting_on_the_learner_is_not_their_engagement(
    verb: str, context: dict[str, Any], obj_ext: dict[str, Any], reason: str
) -> None:
    obj = {"id": f"{HOME}/course/view.php?id=41", "definition": {"extensions": obj_ext}}
    unit = one(statement(verb={"id": verb}, context=context, object=obj))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, reason)


@pytest.mark.parametrize(
    "context",
    [
        {"instructor": STUDENT},  # the learner enrolled themselves
        {"extensions": {PREPOSITION + "for": STUDENT}},  # ... or handled their own work
        {"instructor": TUTOR, "extensions": {PREPOSITION + "to": TUTOR}},  # a message to a tutor
    ],
)
def test_the_learners_own_actions_with_a_tutor_named_are_theirs(context: dict[str, Any]) -> None:
    enrolled = {"id": EDLM + "verbs/enrolled"}
    verb = enrolled if "instructor" in context and context["instructor"] is STUDENT else None
    unit = one(statement(context=context, **({"verb": verb} if verb else {})))
    assert unit.outcome is Outcome.ACCEPTED


ANSWER = {"result": {"response": LETTER}}


@pytest.mark.parametrize(
    ("event", "changes", "outcome", "reason"),
    [
        # assessment events are refused even without a score in the statement
        ("\\mod_quiz\\event\\attempt_submitted", ANSWER, "refused", "assessment_data"),
        ("\\mod_quiz\\event\\attempt_reviewed", {}, "refused", "assessment_data"),
        ("\\mod_scorm\\event\\status_submitted", {}, "refused", "assessment_data"),
        ("\\core\\event\\user_loggedinas", {}, "ignored", "impersonation"),
        ("\\mod_choice\\event\\answer_created", ANSWER, "ignored", "survey"),
        ("\\mod_questionnaire\\event\\attempt_submitted", {}, "ignored", "survey"),
        ("\\core\\event\\user_enrolment_created", {}, "ignored", "not_engagement"),
        ("\\core\\event\\course_module_completion_updated", {}, "ignored", "not_engagement"),
        ("\\mod_assign\\event\\feedback_viewed", {}, "ignored", "not_engagement"),
        ("\\mod_page\\event\\course_module_viewed", {}, "accepted", None),
        ("\\\\mod_page\\\\event\\\\course_module_viewed", {}, "accepted", None),
        ("not a Moodle event", {}, "accepted", None),
    ],
)  # fmt: skip
def test_moodle_events_are_judged_as_the_moodle_log_adapter_judges_them(
    event: str, changes: dict[str, Any], outcome: str, reason: str | None
) -> None:
    unit = one(moodle(event, **changes))
    assert (str(unit.outcome), unit.reason) == (outcome, reason)
    assert LETTER not in shown([unit]) and "Moodle" not in (unit.event or {}).get("action", "")


def test_moodle_info_extension_as_learning_locker_exports_it() -> None:
    encoded = "http://lrs&46;learninglocker&46;net/define/extensions/info"
    quiz = {"event_name": "\\mod_quiz\\event\\attempt_submitted"}
    unit = one(statement(context={"extensions": {encoded: quiz}}))
    assert unit.reason == "assessment_data"


LOG_ROW = "http://lrs.learninglocker.net/define/extensions/moodle_logstore_standard_log"


@pytest.mark.parametrize(
    ("row", "outcome", "reason"),
    [
        ({"edulevel": 2, "userid": "3"}, "accepted", None),
        ({"edulevel": "2", "userid": "3", "realuserid": "2"}, "ignored", "impersonation"),
        ({"edulevel": 1, "userid": "3"}, "ignored", "staff_action"),
        ({"edulevel": 2, "userid": "-1"}, "ignored", "system_action"),
        ({"edulevel": 2, "userid": "3", "origin": "cli"}, "ignored", "system_action"),
        ({"edulevel": 2, "userid": "3", "anonymous": "1"}, "ignored", "not_engagement"),
        ({"edulevel": 0, "userid": "3"}, "ignored", "not_engagement"),
        (
            {"edulevel": 2, "userid": "3", "other": 'a:1:{s:10:"finalgrade";s:2:"64";}'},
            "refused",
            "assessment_data",
        ),
    ],
)
def test_the_first_plug_in_versions_log_row_is_judged_as_a_log_row(
    row: dict[str, Any], outcome: str, reason: str | None
) -> None:
    """logstore_xapi before v3 (the Jisc alpha feeds) sent the whole log row."""
    event = {"eventname": "\\mod_page\\event\\course_module_viewed", "other": "N;", **row}
    unit = one(statement(context={"extensions": {LOG_ROW: event}}))
    assert (str(unit.outcome), unit.reason) == (outcome, reason)
    assert "64" not in shown([unit])


def test_moodle_site_front_page_is_not_a_course() -> None:
    site = {"id": f"{HOME}/course/view.php?id=1", "definition": {"type": "x/moodle/course"}}
    real = {"id": f"{HOME}/course/view.php?id=41", "definition": {"type": "x/moodle/course"}}
    two = {"contextActivities": {"grouping": [site, real]}}
    assert valid(one(statement(context=two)))["course"] == real["id"]
    front = statement(object={"id": site["id"], "definition": site["definition"]}, context=None)
    assert valid(one(front))["course"] == xapi.PLATFORM_PLACEHOLDER


def test_h5p_questionnaire_is_a_survey() -> None:
    for library in ("H5P.Questionnaire-1.3", "H5P.OpenEndedQuestion-1.0"):
        category = [{"id": f"http://h5p.org/libraries/{library}", "objectType": "Activity"}]
        answered = {"id": "http://adlnet.gov/expapi/verbs/answered"}
        unit = one(
            statement(
                verb=answered,
                context={"contextActivities": {"category": category}},
                result={"response": "planted answer text"},
            )
        )
        assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "survey")
        assert "planted answer" not in shown([unit])
    multichoice = [{"id": "http://h5p.org/libraries/H5P.MultiChoice-1.16"}]
    assert one(statement(context={"contextActivities": {"category": multichoice}})).outcome == (
        Outcome.ACCEPTED
    )


# -- assessment -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"result": {"score": {"raw": 87.5}}}, "result.score"),
        ({"result": {"score": {}}}, "result.score"),
        ({"result": {"success": False, "completion": True}}, "result.success"),
        ({"result": {"extensions": {"http://xapi.jisc.ac.uk/grade": LETTER}}}, "grade"),
        ({"verb": {"id": "http://adlnet.gov/expapi/verbs/scored"}}, "verb.id"),
        ({"verb": {"id": "http://adlnet.gov/expapi/verbs/passed"}}, "verb.id"),
        ({"verb": {"id": "http://adlnet.gov/expapi/verbs/failed"}}, "verb.id"),
        ({"verb": {"id": "https://example.org/verbs/graded"}}, "verb.id"),
        (
            {"object": {"id": "x:1", "definition": {"extensions": {"https://e.org/score": 1}}}},
            "object.definition.extensions",
        ),
    ],
)
def test_assessment_is_refused_and_nothing_kept(changes: dict[str, Any], field: str) -> None:
    unit = one(statement(**changes))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, "assessment_data")
    assert field in unit.detail
    assert "87.5" not in shown([unit]) and LETTER not in shown([unit])


def test_a_score_is_refused_as_assessment_even_on_a_malformed_statement() -> None:
    unit = one(statement(object={"objectType": "Activity"}, result={"score": {"raw": 87.5}}))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, "assessment_data")
    assert "87.5" not in shown([unit])


def test_special_category_extension_is_refused() -> None:
    ext = {"https://example.org/ext/disability": "planted"}
    unit = one(statement(context={"extensions": ext}))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, "forbidden_field")
    assert "planted" not in unit.detail


def test_completion_without_score_is_activity() -> None:
    unit = one(statement(result={"completion": True, "duration": "PT5M", "response": LETTER}))
    event = valid(unit)
    assert LETTER not in shown([unit]) and event["action"] == "viewed"


def test_answered_question_without_score_is_activity_with_score_refused() -> None:
    answered = load("recipe-app-answered-question-template.json")
    assert valid(one(answered))["action"] == "answered"
    answered["result"]["score"] = {"scaled": 0.875}
    assert one(answered).reason == "assessment_data"


# -- attendance -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "status"),
    [
        ({"completion": True}, "present"),
        ({"completion": True, "extensions": {"http://xapi.jisc.ac.uk/attendance_late": 1}}, "late"),
        (
            {"completion": True, "extensions": {"http://xapi.jisc.ac.uk/attendance_category": "L"}},
            "late",
        ),
        ({"completion": False}, "absent"),
        (
            {
                "completion": False,
                "extensions": {"http://xapi.jisc.ac.uk/attendance_category": "Excused"},
            },
            "excused",
        ),
        ({"extensions": {"http://xapi.jisc.ac.uk/attendance_category": "absent"}}, "absent"),
    ],
)
def test_attendance_status(result: dict[str, Any], status: str) -> None:
    unit = one(attended(**result))
    event = valid(unit)
    assert unit.source == "attendance"
    assert event["status"] == status
    assert event["session_id"] == "EVT_1" and event["module"] == "LA101-2025"
    assert event["expected_start"] == event["occurred_at"] == "2025-10-14T08:00:00+00:00"
    assert event["expected_end"] == "2025-10-14T10:00:00+00:00"


@pytest.mark.parametrize(
    ("result", "reason", "field"),
    [
        ({"completion": "yes"}, "wrong_type", "result.completion"),
        ({}, "missing_field", "result.completion"),
        (
            {"completion": True, "extensions": {"http://xapi.jisc.ac.uk/attendance_late": "x"}},
            "invalid_value",
            "attendance_late",
        ),
        ({"completion": True, "score": {"raw": 87.5}}, "assessment_data", "result.score"),
    ],
)
def test_attendance_problems(result: dict[str, Any], reason: str, field: str) -> None:
    unit = one(attended(**result))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, reason)
    assert field in unit.detail


def test_attendance_capture_and_defaults() -> None:
    base = attended(completion=True)
    base["context"]["extensions"]["http://xapi.jisc.ac.uk/captured_from"] = "Android"
    del base["object"]["definition"]["extensions"]["http://xapi.jisc.ac.uk/endtime"]
    del base["object"]["definition"]["extensions"]["http://xapi.jisc.ac.uk/event_id"]
    event = valid(one(base))
    assert event["capture_method"] == "app"
    assert event["expected_end"] == event["expected_start"]
    assert event["session_id"] == f"{HOME}/event/EVT_1"


def test_attended_without_a_result_is_present() -> None:
    base = attended()
    del base["result"]
    event = valid(one(base))
    assert event["status"] == "present" and event["module"] == "LA101-2025"


def test_attendance_outside_a_module_is_ignored_unless_timetabled() -> None:
    meeting = statement(
        verb={"id": "http://adlnet.gov/expapi/verbs/attended"},
        object={"id": "http://www.example.com/meetings/occurances/34534"},
        context={"platform": "Example virtual meeting software"},
    )
    unit = one(meeting)
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "not_engagement")
    jisc_recipe = copy.deepcopy(meeting)
    jisc_recipe["context"]["extensions"] = {"http://xapi.jisc.ac.uk/recipeCat": "Attendance"}
    assert one(jisc_recipe).reason == "missing_field"


def test_moodle_face_to_face_attendance_has_the_course_as_module() -> None:
    parent = [{"id": f"{HOME}/course/view.php?id=41", "definition": {"type": COURSE_TYPE}}]
    unit = one(
        statement(
            verb={"id": "http://adlnet.gov/expapi/verbs/attended"},
            object={"id": f"{HOME}/mod/facetoface/view.php?id=9"},
            context={"instructor": TUTOR, "contextActivities": {"parent": parent}},
            result={"completion": True, "duration": "PT0S"},
        )
    )
    event = valid(unit)
    assert unit.source == "attendance"
    assert (event["module"], event["status"]) == (f"{HOME}/course/view.php?id=41", "present")


# -- presence and library ---------------------------------------------------------------------


def test_facility_access_is_a_swipe() -> None:
    unit = one(load("recipe-facility-accessed-template.json"))
    event = valid(unit)
    assert unit.source == "swipe"
    assert event == {
        "event_id": event["event_id"],
        "occurred_at": "2019-09-12T08:31:07+00:00",
        "reader_id": "1001527",
        "building": f"{HOME}/Library",
        "direction": "in",
    }


def test_presence_at_and_leave() -> None:
    at, leave, out = adapt(load("handwritten-presence.json"))
    assert [valid(u)["direction"] for u in (at, leave, out)] == ["in", "out", "out"]
    assert at.event is not None and at.event["event_id"] == "12345678-1234-5678-1234-567812345678"


@pytest.mark.parametrize(
    "obj",
    [
        {"id": f"{HOME}/group/index.php?id=63", "definition": {"type": "x/group"}},
        {"id": f"{HOME}/course/view.php?id=41", "definition": {"type": COURSE_TYPE}},
        {"id": f"{HOME}/mod/bigbluebuttonbn/view.php?id=5"},
    ],
)
def test_leaving_a_group_course_or_meeting_is_not_presence(obj: dict[str, Any]) -> None:
    unit = one(statement(verb={"id": "http://activitystrea.ms/schema/1.0/leave"}, object=obj))
    assert (unit.source, valid(unit)["action"]) == ("vle", "leave")


def test_library_loan_keeps_no_title_or_item_id() -> None:
    borrowed = load("recipe-library-item-borrowed-template.json")
    borrowed["object"]["id"] = "https://library.example/items/6799833234"
    borrowed["object"]["definition"]["name"] = {"en": "I'm a Book: Book 1"}
    unit = one(borrowed)
    event = valid(unit)
    assert (event["activity"], event["service"], event["item_type"]) == ("loan", "Library", "BOOK")
    assert "6799833234" not in shown([unit]) and "Book 1" not in shown([unit])


def test_econtent_is_library_e_resource() -> None:
    event = valid(one(load("recipe-econtent-accessed-econtent-template.json")))
    assert (event["activity"], event["service"]) == ("e_resource", "EZproxy")


# -- time and id ------------------------------------------------------------------------------


def test_time_is_converted_to_utc() -> None:
    assert valid(one(statement()))["occurred_at"] == "2025-10-14T09:15:00+00:00"
    nano = valid(one(statement(timestamp="2025-10-14T10:15:00.123456789-05:00")))
    assert nano["occurred_at"] == "2025-10-14T15:15:00.123456+00:00"


@pytest.mark.parametrize(
    ("timestamp", "utc"),
    [
        ("20251014T101500+0100", "2025-10-14T09:15:00+00:00"),
        ("20251014T0915Z", "2025-10-14T09:15:00+00:00"),
        ("2025-10-14T10:15:00.123456789012+0100", "2025-10-14T09:15:00.123456+00:00"),
        ("2025-10-14t09:15:00,5z", "2025-10-14T09:15:00.500000+00:00"),
        ("2025-10-14T09:15:00-00:00", "2025-10-14T09:15:00+00:00"),
    ],
)
def test_every_iso_8601_form_xapi_allows_is_read(timestamp: str, utc: str) -> None:
    assert valid(one(statement(timestamp=timestamp)))["occurred_at"] == utc


def test_time_falls_back_to_stored_then_receipt() -> None:
    stored = one(statement(timestamp=None, stored="2025-10-15T00:00:00Z"))
    assert valid(stored)["occurred_at"] == "2025-10-15T00:00:00+00:00"
    assert valid(one(statement(timestamp=None)))["occurred_at"] == RECEIVED.isoformat()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"timestamp": "2025-10-14T10:15:00"}, "invalid_value"),
        ({"timestamp": "last tuesday"}, "invalid_value"),
        ({"timestamp": 1760433300}, "wrong_type"),
        ({"timestamp": None, "stored": "2025-10-14"}, "invalid_value"),
    ],
)
def test_time_problems_name_the_field(changes: dict[str, Any], reason: str) -> None:
    unit = one(statement(**changes))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, reason)
    assert ("stored" if "stored" in changes else "timestamp") in unit.detail


def test_event_id_is_the_statement_id_or_a_content_hash() -> None:
    assert valid(one(statement()))["event_id"] == "5f0c5e4e-3b1a-4c61-9a52-000000000001"
    bare = statement(id=None)
    first, again = valid(one(bare)), valid(one(copy.deepcopy(bare)))
    assert first["event_id"] == again["event_id"] == content_id("xapi", bare)
    assert one(statement(id="not-a-uuid")).reason == "invalid_value"
    assert one(statement(id=42)).reason == "wrong_type"


def test_learning_locker_record_is_read_as_its_statement() -> None:
    record = load("blackboard-course_access.json")
    assert valid(one(record))["event_id"] == record["statement"]["id"]


# -- course, platform, action, resource -------------------------------------------------------


def test_login_has_the_platform_placeholder() -> None:
    event = valid(one(load("moodle-login.json")))
    assert (event["platform"], event["course"], event["action"]) == (
        "moodle",
        xapi.PLATFORM_PLACEHOLDER,
        "loggedin",
    )


def test_moodle_encoded_extension_keys_are_decoded() -> None:
    assert valid(one(load("blackboard-attempt_completed.json")))["course"] == "Offline_Course1"
    assert valid(one(load("moodle-moduleview.json")))["course"] == "LA102"


def test_course_from_context_activities() -> None:
    grouping = [
        {
            "id": "http://localhost:4000",
            "definition": {"type": "http://id.tincanapi.com/activitytype/lms"},
        },
        {
            "id": "http://localhost:4000/course/view.php?id=2&sesskey=s3cr3t",
            "definition": {"type": "http://id.tincanapi.com/activitytype/lms/course"},
        },
    ]
    event = valid(one(statement(context={"contextActivities": {"grouping": grouping}})))
    assert event["course"] == "http://localhost:4000/course/view.php?id=2"
    grouping[1]["definition"]["extensions"] = {
        "https://w3id.org/learning-analytics/learning-management-system/short-id": "pytut"
    }
    assert (
        valid(one(statement(context={"contextActivities": {"grouping": grouping}})))["course"]
        == "pytut"
    )


def test_course_of_a_statement_about_the_course_itself() -> None:
    course = {"id": f"{HOME}/course/view.php?id=41", "definition": {"type": COURSE_TYPE}}
    enrolled = {"id": "http://adlnet.gov/expapi/verbs/registered"}
    event = valid(one(statement(verb=enrolled, object=course, context=None)))
    assert (event["course"], event["resource"]) == (course["id"], course["id"])
    course["definition"]["extensions"] = {LMS + "external-id": "LAW101-2025-26"}
    assert valid(one(statement(object=course, context=None)))["course"] == "LAW101-2025-26"
    statement_ref = {"objectType": "StatementRef", "id": "8f87ccde-bb56-4c2e-ab83-44982ef22df0"}
    assert valid(one(statement(object=statement_ref, context=None)))["course"] == "(platform)"


@pytest.mark.parametrize(
    ("ids", "course"),
    [
        ({"short-id": "LAW101", "external-id": "LAW101-2025-26"}, "LAW101-2025-26"),
        ({"short-id": "LAW101", "external-id": None}, "LAW101"),
        ({"short-id": "LAW101", "external-id": ""}, "LAW101"),
        ({}, f"{HOME}/course/view.php?id=41"),
    ],
)
def test_course_is_the_institution_id_then_the_short_id(ids: dict[str, Any], course: str) -> None:
    definition = {"type": COURSE_TYPE, "extensions": {LMS + k: v for k, v in ids.items()}}
    parent = {"id": f"{HOME}/course/view.php?id=41", "definition": definition}  # not a list
    event = valid(one(statement(context={"contextActivities": {"parent": parent}})))
    assert event["course"] == course


def test_platform_fallbacks() -> None:
    no_platform = statement(context=None)
    assert valid(one(no_platform))["platform"] == "vle.poppleton.ac.uk"
    named = AdaptContext(received_at=RECEIVED, platform="moodle")
    assert valid(one(no_platform, named))["platform"] == "moodle"
    assert valid(one(no_platform, named))["course"] == xapi.PLATFORM_PLACEHOLDER


def test_resource_keeps_only_identifying_query_parameters() -> None:
    obj = {"id": f"{HOME}/mod/page/view.php?id=21&sesskey=s3cr3t&user=9#section-2"}
    assert valid(one(statement(object=obj)))["resource"] == f"{HOME}/mod/page/view.php?id=21"
    profile = {"id": f"{HOME}/user/profile.php?id=77"}
    assert valid(one(statement(object=profile)))["resource"] == f"{HOME}/user/profile.php"
    mine = {"id": "http://jisc-demo.ac.uk/stu1/microsoft_2020_10_24"}
    assert valid(one(statement(object=mine)))["resource"] == ""
    long = {"id": f"{HOME}/" + "a" * 400}
    assert len(valid(one(statement(object=long)))["resource"]) <= 256
    posts = {"id": f"{HOME}/mod/forum/user.php?id=77&course=41"}  # another user's posts
    assert valid(one(statement(object=posts)))["resource"] == f"{HOME}/mod/forum/user.php"
    video = {"id": "https://www.youtube.com/watch?v=xh4kIiH3Sm8&t=42"}
    assert valid(one(statement(object=video)))["resource"] == video["id"].removesuffix("&t=42")


# -- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"verb": None}, "missing_field", "verb"),
        ({"verb": "viewed"}, "wrong_type", "verb"),
        ({"verb": {"display": {}}}, "missing_field", "verb.id"),
        ({"verb": {"id": 7}}, "wrong_type", "verb.id"),
        ({"object": None}, "missing_field", "object"),
        ({"object": []}, "wrong_type", "object"),
        ({"object": {"objectType": "Activity"}}, "missing_field", "object.id"),
        ({"object": {"id": 5}}, "wrong_type", "object.id"),
        ({"object": {"id": "x:1", "definition": "page"}}, "wrong_type", "object.definition"),
        ({"context": "moodle"}, "wrong_type", "context"),
        ({"context": {"extensions": []}}, "wrong_type", "context.extensions"),
        ({"result": 87.5}, "wrong_type", "result"),
        ({"actor": None}, "missing_field", "actor"),
    ],
)
def test_malformed_statements_name_the_field(
    changes: dict[str, Any], reason: str, field: str
) -> None:
    unit = one(statement(**changes))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, reason)
    assert field in unit.detail
    assert "87.5" not in unit.detail


def test_object_and_actor_types_in_any_case_and_numeric_account_names() -> None:
    lower = statement(
        actor={"objectType": "agent", "account": {"homePage": HOME, "name": 1207}},
        object={"objectType": "activity", "id": f"{HOME}/mod/page/view.php?id=21"},
    )
    unit = one(lower)
    assert unit.actor is not None and unit.actor.as_is == "1207"
    assert valid(unit)["resource"] == f"{HOME}/mod/page/view.php?id=21"
    person = one(statement(object={"objectType": "Person", "id": f"{HOME}/user/7"}))
    assert (person.outcome, person.reason) == (Outcome.REFUSED, "invalid_value")
    assert "object.objectType" in person.detail


@pytest.mark.parametrize("payload", ["statement", 3, None, True, [[]]])
def test_not_an_object(payload: Any) -> None:
    units = adapt(payload)
    assert [(u.outcome, u.reason) for u in units] == [(Outcome.REFUSED, "not_an_object")]


def test_batch_gives_one_outcome_per_statement_in_order() -> None:
    batch = [statement(), "bad", statement(verb=None), attended(completion=True)]
    units = adapt(batch)
    assert [u.index for u in units] == [0, 1, 2, 3]
    assert [str(u.outcome) for u in units] == ["accepted", "refused", "refused", "accepted"]
    assert adapt([]) == []


# -- properties -------------------------------------------------------------------------------

SAMPLES = [
    s
    for name in sorted(EXPECTED)
    for s in (load(name) if isinstance(load(name), list) else [load(name)])
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
PLANT_PATHS = [
    ("actor", "name"),
    ("context", "instructor", "name"),
    ("context", "instructor", "mbox"),
    ("authority", "mbox"),
    ("authority", "name"),
    ("context", "extensions", "http://id.tincanapi.com/extension/ip-address"),
    ("context", "extensions", "http://xapi.jisc.ac.uk/extensions/user-agent"),
    ("object", "definition", "name", "en"),
    ("object", "definition", "description", "en"),
    ("result", "score", "raw"),
    ("result", "extensions", "http://xapi.jisc.ac.uk/grade"),
    ("result", "response"),
    ("context", "extensions", "http://xapi.jisc.ac.uk/displayName"),
]
PLANT_VALUES = [NAME, f"mailto:{EMAIL}", IP, DISPLAY, 87.5, LETTER]
ANY_PATHS = [
    ("actor",),
    ("verb",),
    ("verb", "id"),
    ("object",),
    ("object", "id"),
    ("object", "objectType"),
    ("object", "definition"),
    ("object", "definition", "type"),
    ("object", "definition", "extensions"),
    ("context",),
    ("context", "platform"),
    ("context", "extensions"),
    ("context", "contextActivities"),
    ("context", "contextActivities", "grouping"),
    ("result",),
    ("result", "completion"),
    ("result", "extensions"),
    ("timestamp",),
    ("stored",),
    ("id",),
    ("statement",),
]


def _put(target: Any, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(target, dict):
            return
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    if isinstance(target, dict):
        target[path[-1]] = value


@st.composite
def statements(draw: st.DrawFn) -> Any:
    base = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    body = base["statement"] if isinstance(base, dict) and "statement" in base else base
    for _ in range(draw(st.integers(0, 3))):
        _put(body, draw(st.sampled_from(PLANT_PATHS)), draw(st.sampled_from(PLANT_VALUES)))
    for _ in range(draw(st.integers(0, 2))):
        _put(body, draw(st.sampled_from(ANY_PATHS)), draw(json_values))
    return base


@settings(max_examples=200, deadline=None)
@given(st.lists(statements(), max_size=5) | statements() | json_values)
def test_property_never_raises_one_outcome_each_and_leaks_nothing(payload: Any) -> None:
    units = adapt(payload)
    expected = len(payload) if isinstance(payload, list) else 1
    assert len(units) == expected
    assert [u.index for u in units] == list(range(expected))
    text = shown(units)
    for planted in PLANTED:
        assert planted not in text
    for unit in units:
        if unit.outcome is Outcome.ACCEPTED:
            valid(unit)
            assert unit.actor is not None
            keys = " ".join(unit.actor.keys)
            assert NAME not in keys and IP not in keys and DISPLAY not in keys
        else:
            assert unit.reason and unit.detail and unit.event is None
