"""The Canvas Live Events adapter (Canvas format): documented example payloads give their
expected outcomes, and every rule of docs/formats/canvas.md holds, for any input."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.adapters import canvas
from agents.adapters.canvas import NO_COURSE, adapt, is_caliper
from agents.adapters.canvas_events import STAFF_EVENTS, STUDENT_EVENTS, SYSTEM_EVENTS
from agents.adapters.identity import Policy, resolve
from agents.adapters.units import AdaptContext, Outcome, Unit
from schemas.sources import SOURCES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "canvas"
EXPECTED: dict[str, list[dict[str, Any]]] = json.loads(
    (FIXTURES / "expected.json").read_text(encoding="utf-8")
)
CTX = AdaptContext(received_at=datetime(2024, 10, 16, 12, 0, tzinfo=UTC))

# Values that must never leave the adapter: personal data and results.
NAME, EMAIL, IP = "Zebedee Quux", "zebedee.quux@example.org", "203.0.113.77"
DISPLAY, AGENT, HOST = "Zeb the Great", "PlantedAgent/9.9", "planted-host.example.net"
SCORE, GRADE = 87.5, "A-"
PLANTED = (NAME, EMAIL, IP, DISPLAY, AGENT, HOST, "87.5", GRADE)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def one(payload: Any, ctx: AdaptContext = CTX) -> Unit:
    units = adapt(payload, ctx)
    assert len(units) == 1
    return units[0]


def serialised(units: list[Unit]) -> str:
    """Everything an adapter outputs: reports, details, events and actors."""
    return json.dumps(
        [
            {
                **unit.report(),
                "event": dict(unit.event) if unit.event is not None else None,
                "actor": [list(unit.actor.keys), unit.actor.as_is] if unit.actor else None,
            }
            for unit in units
        ]
    )


def validates(unit: Unit) -> None:
    assert unit.source is not None and unit.event is not None
    SOURCES[unit.source].model.model_validate({**unit.event, "student_id": "S1"})


def live(
    name: str = "asset_accessed",
    body: dict[str, Any] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """A user-generated live event as the Metadata page documents it, in a course."""
    meta: dict[str, Any] = {
        "root_account_id": "21070000000000001",
        "user_login": "jdoe",
        "user_sis_id": "S1234567",
        "user_id": "21070000000000417",
        "time_zone": "America/Denver",
        "context_type": "Course",
        "context_id": "21070000000000565",
        "context_sis_source_id": "HIST101-2024",
        "context_role": "StudentEnrollment",
        "request_id": "1dd9dc6f-2fb0-4c19-a6c5-7ee1bf3ed295",
        "client_ip": "93.184.216.34",
        "producer": "canvas",
        "event_name": name,
        "event_time": "2024-10-14T09:15:30.250Z",
    }
    for key, value in metadata.items():
        if value is _DROP:
            meta.pop(key, None)
        else:
            meta[key] = value
    default = {"asset_type": "wiki_page", "asset_id": "300", "role": "StudentEnrollment"}
    return {"metadata": meta, "body": default if body is None else body}


_DROP = object()


# -- the documented examples ------------------------------------------------------------------


def test_every_sample_has_expectations_and_sources() -> None:
    samples = {p.name for p in FIXTURES.glob("*.json")} - {"expected.json"}
    assert samples == set(EXPECTED)
    sources = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in sources for name in samples)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sample_gives_its_expected_outcomes(name: str) -> None:
    units = adapt(load(name), CTX)
    got = [{"outcome": str(u.outcome), "as": u.source, "reason": u.reason} for u in units]
    assert got == EXPECTED[name]
    assert [u.index for u in units] == list(range(len(units)))
    for unit in units:
        if unit.outcome is Outcome.ACCEPTED:
            validates(unit)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_sample_leaks_personal_data_or_results(name: str) -> None:
    out = serialised(adapt(load(name), CTX))
    for value in (
        "m.achterberg@", "t.ferreira@", "kwame@", "198.51.100.", "192.0.2.44", "Mozilla",
        "example.net", "Priya Halvorsen", "Dana Kowalczyk", "cell-cycle.svg",
        "Shared Lab Notebook", "Africa/", "Australia/", "Europe/Lisbon", "Pacific/Auckland",
        "76.25", "83.25", "71.6", "64.5", "Europe/London", "@student.example.ac.uk", "Room change",
        "Orla Pennywhistle", "fernhill", "203.0.113.", "ExampleBrowser", "Europe/Dublin",
        "handout.pdf", "Titration plan", "Lab safety", "33.5", "9.5", "o.pennywhistle",
    ):  # fmt: skip
        assert value not in out, value


def test_the_samples_cover_every_outcome() -> None:
    seen = {(u["outcome"], u["reason"]) for units in EXPECTED.values() for u in units}
    for pair in (
        ("accepted", None), ("refused", "assessment_data"), ("ignored", "staff_action"),
        ("ignored", "system_action"), ("ignored", "impersonation"),
    ):  # fmt: skip
        assert pair in seen


# -- identity ---------------------------------------------------------------------------------


def test_sis_id_first_then_canvas_id_then_its_local_id() -> None:
    unit = one(load("logged_in.json"))
    assert unit.actor is not None
    assert unit.actor.keys == ("canvas-sis:LC-20931", "canvas:34520000000002231", "canvas:2231")
    assert unit.actor.as_is == "LC-20931"


def test_without_sis_id_the_login_is_the_as_is_id() -> None:
    unit = one(live(user_sis_id=None, user_login="jdoe", user_id=417))
    assert unit.actor is not None
    assert unit.actor.keys == ("canvas:417", "canvas-login:jdoe")
    assert unit.actor.as_is == "jdoe"


def test_an_email_address_is_never_an_identity_key() -> None:
    unit = one(live(user_sis_id="jo@example.org", user_login="jo@example.org"))
    assert unit.actor is not None
    assert unit.actor.keys == ("canvas:21070000000000417", "canvas:417")
    assert unit.actor.as_is is None
    assert "@" not in serialised([unit])
    (resolved,) = resolve([unit], Policy.AS_IS, {})
    assert resolved.reason == "unknown_actor"


def test_identity_step_resolves_the_sis_id() -> None:
    (resolved,) = resolve([one(live())], Policy.AS_IS, {})
    assert resolved.event is not None and resolved.event["student_id"] == "S1234567"
    (mapped,) = resolve([one(live())], Policy.MAP, {"canvas:417": "U0417"})
    assert mapped.event is not None and mapped.event["student_id"] == "U0417"


def test_names_ips_and_agents_never_reach_the_event() -> None:
    event = live(user_agent=AGENT, client_ip=IP, hostname=HOST, user_login=EMAIL)
    event["body"].update(asset_name=NAME, display_name=DISPLAY, filename=DISPLAY)
    unit = one(event)
    assert unit.outcome is Outcome.ACCEPTED
    out = serialised([unit])
    assert not any(value in out for value in (NAME, EMAIL, IP, DISPLAY, AGENT, HOST))


# -- whose action ------------------------------------------------------------------------------


def test_masquerade_is_impersonation() -> None:
    unit = one(live(real_user_id="21070000000000001"))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "impersonation")


def test_real_user_id_naming_the_same_user_is_not_impersonation() -> None:
    assert one(live(real_user_id="21070000000000417")).outcome is Outcome.ACCEPTED
    assert one(live(real_user_id="417")).outcome is Outcome.ACCEPTED
    # the same local id on another shard is another person
    other_shard = one(live(real_user_id="31070000000000417"))
    assert other_shard.reason == "impersonation"


@pytest.mark.parametrize(
    "role", ["TeacherEnrollment", "TaEnrollment", "DesignerEnrollment", "AccountAdmin"]
)
def test_staff_roles_are_staff_actions(role: str) -> None:
    unit = one(live(context_role=role))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "staff_action")
    body_role = one(live(context_role=None, body={"asset_type": "course", "role": role}))
    assert body_role.reason == "staff_action"


def test_student_view_is_staff_and_an_observer_is_not_engagement() -> None:
    assert one(live(context_role="StudentViewEnrollment")).reason == "staff_action"
    assert one(live(context_role="ObserverEnrollment")).reason == "not_engagement"


@pytest.mark.parametrize("name", sorted(STAFF_EVENTS))
def test_course_administration_is_a_staff_action(name: str) -> None:
    unit = one(live(name, body={"user_name": NAME}))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "staff_action")


@pytest.mark.parametrize("name", sorted(SYSTEM_EVENTS))
def test_job_events_are_system_actions(name: str) -> None:
    assert one(live(name, body={})).reason == "system_action"


def test_no_user_or_a_job_is_a_system_action() -> None:
    assert one(live(user_id=_DROP)).reason == "system_action"
    assert one(live(job_id="1020020528469291", job_tag="X#y")).reason == "system_action"


def test_an_announcement_is_staff_and_a_students_topic_counts() -> None:
    body = {"discussion_topic_id": "611", "is_announcement": True}
    assert one(live("discussion_topic_created", body, context_role=None)).reason == ("staff_action")
    body["is_announcement"] = False
    assert one(live("discussion_topic_created", body)).outcome is Outcome.ACCEPTED


def test_an_unknown_event_name_is_not_engagement_and_not_echoed() -> None:
    unit = one(live("zz_planted_event_name", body={}))
    assert unit.reason == "not_engagement"
    assert "zz_planted" not in unit.detail


@pytest.mark.parametrize("name", sorted(STUDENT_EVENTS))
def test_each_student_event_is_accepted_as_vle_activity(name: str) -> None:
    unit = one(live(name, body={"user_id": "417"}))
    assert unit.outcome is Outcome.ACCEPTED, unit.detail
    validates(unit)
    assert unit.event is not None and unit.event["action"] == name


# -- assessment data ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "grade_change", "course_grade_change", "grade_override", "rubric_assessed",
        "learning_outcome_result_created", "learning_outcome_result_updated",
        "outcome_result_created", "final_grade_custom_status", "submission_custom_grade_status",
    ],
)  # fmt: skip
def test_result_events_are_refused_and_nothing_of_the_result_kept(name: str) -> None:
    body = {"score": SCORE, "grade": GRADE, "current_score": SCORE, "final_score": SCORE}
    units = adapt([live(name, body), live(name, body, job_id="1", user_id=_DROP)], CTX)
    assert [(u.outcome, u.reason) for u in units] == [(Outcome.REFUSED, "assessment_data")] * 2
    out = serialised(units)
    assert "87.5" not in out and GRADE not in out


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("score", SCORE), ("grade", GRADE), ("graded_at", "2024-10-20T14:00:00Z"),
        ("grader_id", "9"), ("workflow_state", "graded"), ("entered_score", SCORE),
        ("score", 0),
    ],
)  # fmt: skip
def test_a_graded_submission_is_refused(field: str, value: Any) -> None:
    for name in ("submission_created", "submission_updated", "quiz_submitted"):
        body = {"assignment_id": "903", "workflow_state": "submitted", field: value}
        unit = one(live(name, body))
        assert (unit.outcome, unit.reason) == (Outcome.REFUSED, "assessment_data")
        assert f"body.{field}" in unit.detail
        assert field == "workflow_state" or str(value) not in unit.detail


def test_a_fresh_submission_with_empty_grading_fields_counts() -> None:
    body = {"assignment_id": "903", "grade": None, "score": None, "graded_at": None}
    unit = one(live("submission_created", {**body, "workflow_state": "submitted"}))
    assert unit.outcome is Outcome.ACCEPTED
    assert unit.event is not None and unit.event["resource"] == "assignment:903"
    assert not {"grade", "score", "graded_at"} & set(unit.event)


def test_assessment_is_refused_before_any_other_check() -> None:
    broken = {"metadata": {"event_name": "grade_change"}, "body": {"score": SCORE}}
    assert one(broken).reason == "assessment_data"
    no_metadata = {"body": {"score": SCORE, "grade": GRADE}}
    assert one(no_metadata).reason == "assessment_data"


# -- time, event id, course ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "utc"),
    [
        ("2026-10-12T07:31:46.208Z", "2026-10-12T07:31:46.208000+00:00"),
        ("2024-10-14T10:15:30.250+01:00", "2024-10-14T09:15:30.250000+00:00"),
        ("2024-10-14T00:30:00-07:00", "2024-10-14T07:30:00+00:00"),
    ],
)
def test_event_time_in_utc_and_the_profile_zone_never_applied(sent: str, utc: str) -> None:
    for zone in ("America/Denver", "Pacific/Honolulu", "Asia/Tokyo", _DROP):
        unit = one(live(event_time=sent, time_zone=zone))
        assert unit.event is not None and unit.event["occurred_at"] == utc


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (_DROP, "missing_field"), (None, "missing_field"), (1572635461, "wrong_type"),
        ("2024-10-14T10:15:30", "invalid_value"), ("yesterday", "invalid_value"),
    ],
)  # fmt: skip
def test_a_bad_event_time_is_refused_naming_the_field(value: Any, reason: str) -> None:
    unit = one(live(event_time=value))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, reason)
    assert "metadata.event_time" in unit.detail


def test_event_id_is_a_hash_of_the_live_event() -> None:
    first, again = one(live()), one(copy.deepcopy(live()))
    assert first.event is not None and again.event is not None
    assert first.event["event_id"] == again.event["event_id"]
    assert first.event["event_id"].startswith("canvas-")
    # two events of one request share request_id but not their id
    other = one(live(event_time="2024-10-14T09:15:31.000Z"))
    assert other.event is not None and other.event["event_id"] != first.event["event_id"]


def test_course_is_the_sis_id_else_the_canvas_id() -> None:
    unit = one(live())
    assert unit.event is not None and unit.event["course"] == "HIST101-2024"
    unit = one(live(context_sis_source_id=None))
    assert unit.event is not None and unit.event["course"] == "21070000000000565"
    missing = one(live(context_sis_source_id=None, context_id=None))
    assert (missing.reason, "metadata.context_id" in missing.detail) == ("missing_field", True)


@pytest.mark.parametrize("context", ["User", "Account", "Group", "CourseSection", _DROP])
def test_other_contexts_and_logins_get_the_platform_placeholder(context: Any) -> None:
    unit = one(live(context_type=context))
    assert unit.event is not None and unit.event["course"] == NO_COURSE
    assert unit.event["platform"] == "canvas"
    validates(unit)


def test_the_platform_can_be_named_by_the_receiver() -> None:
    unit = one(live("logged_in", {}), AdaptContext(platform="canvas-test"))
    assert unit.event is not None and unit.event["platform"] == "canvas-test"


def test_resource_names_the_content_never_a_person() -> None:
    unit = one(live(body={"asset_type": "course", "asset_id": "565", "asset_subtype": "files"}))
    assert unit.event is not None and unit.event["resource"] == "course:565/files"
    unit = one(live(body={"asset_type": "user", "asset_id": "417", "asset_name": NAME}))
    assert unit.event is not None and unit.event["resource"] == "user"


# -- what real feeds send besides the common case ----------------------------------------------


@pytest.mark.parametrize(
    ("sent", "utc"),
    [
        ("2026-11-04 10:13:00 +0100", "2026-11-04T09:13:00+00:00"),
        ("2026-11-04 10:13:00 -08:00", "2026-11-04T18:13:00+00:00"),
        ("2026-11-04 09:13:00 UTC", "2026-11-04T09:13:00+00:00"),
        ("2026-11-04 09:13:00.5 UTC", "2026-11-04T09:13:00.500000+00:00"),
        ("2026-11-04T10:13:00.250+0100", "2026-11-04T09:13:00.250000+00:00"),
        ("2026-11-04T09:13:00Z", "2026-11-04T09:13:00+00:00"),
    ],
)
def test_event_time_in_rubys_form_and_other_offsets_is_read(sent: str, utc: str) -> None:
    """Some documented events carry ``event_time`` as Ruby prints a time (``course_updated``)."""
    unit = one(live(event_time=sent))
    assert unit.event is not None and unit.event["occurred_at"] == utc


@pytest.mark.parametrize("sent", ["2026-11-04 10:13:00", "2026-11-04 10:13 +0100", "04/11/2026"])
def test_a_time_in_rubys_form_without_an_offset_is_still_refused(sent: str) -> None:
    unit = one(live(event_time=sent))
    assert (unit.reason, "metadata.event_time" in unit.detail) == ("invalid_value", True)


def test_ids_sent_as_json_numbers_are_read_as_ids() -> None:
    unit = one(live(user_id=21070000000000417, context_id=21070000000000565, user_sis_id=None,
                    user_login="jdoe", context_sis_source_id=None))  # fmt: skip
    assert unit.outcome is Outcome.ACCEPTED and unit.event is not None and unit.actor is not None
    assert unit.event["course"] == "21070000000000565"
    assert unit.actor.keys == ("canvas:21070000000000417", "canvas:417", "canvas-login:jdoe")


def _new_quiz(name: str, body: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    """A New Quizzes live event: its envelope is ``attributes`` (producer ``quizzes``)."""
    envelope = {"event_name": name, "event_time": "2026-11-07T07:30:02.114Z"}
    return {"attributes": {**envelope, "producer": "quizzes", **attributes}, "body": body}


@pytest.mark.parametrize(
    "name", ["quizzes.quiz_created", "quizzes.quiz_updated", "quizzes.item_created",
             "quizzes.item_updated", "quizzes.item_deleted", "quizzes.bank_created"],
)  # fmt: skip
def test_new_quizzes_authoring_is_a_staff_action(name: str) -> None:
    unit = one(_new_quiz(name, {"id": "480", "points_possible": 12.0, "title": NAME}))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "staff_action")
    assert NAME not in serialised([unit])


def test_new_quizzes_results_are_refused_and_other_events_not_engagement() -> None:
    graded = one(_new_quiz("quizzes.quiz_session_graded", {"id": "1"}))
    scored = one(_new_quiz("quizzes.quiz_session_opened", {"id": "1", "score": SCORE}))
    other = one(_new_quiz("quizzes.quiz_session_opened", {"id": "1"}))
    assert [graded.reason, scored.reason, other.reason] == [
        "assessment_data", "assessment_data", "not_engagement",
    ]  # fmt: skip
    assert "87.5" not in serialised([graded, scored, other])


def test_the_attributes_envelope_is_checked_like_metadata() -> None:
    no_time = {"attributes": {"event_name": "quizzes.quiz_created"}, "body": {}}
    assert one(no_time).reason == "missing_field"
    both = {"metadata": live()["metadata"], "attributes": {"event_name": "x"}, "body": {}}
    assert one(both).outcome is Outcome.ACCEPTED  # metadata wins when both are there
    assert one({"attributes": "x", "body": {}}).reason == "missing_field"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("outcomes.retry_outcome_alignment_clone", "staff_action"),
        ("outcome_friendly_description_created", "staff_action"),
        ("quizzes_next_quiz_duplicated", "system_action"),
        ("quiz_export_complete", "system_action"),
    ],
)
def test_event_names_canvas_emits_without_an_event_page(name: str, reason: str) -> None:
    assert one(live(name, body={})).reason == reason


@pytest.mark.parametrize(
    "role", ["Training Teacher", "Teaching Assistant", "TA", "Lecturer", "Module Leader",
             "Tutor", "Grader", "Sub-Account Admin", "Librarian"],
)  # fmt: skip
def test_custom_staff_role_names_are_staff(role: str) -> None:
    assert one(live(context_role=role)).reason == "staff_action"
    assert one(live(context_role=None, body={"asset_type": "page", "role": role})).reason == (
        "staff_action"
    )


@pytest.mark.parametrize("role", ["Student (audit)", "GroupMembership", "User", "Auditor"])
def test_custom_student_role_names_count(role: str) -> None:
    assert one(live(context_role=role)).outcome is Outcome.ACCEPTED


@pytest.mark.parametrize("name", ["group_membership_created", "group_membership_updated"])
def test_a_group_membership_is_staff_unless_the_member_acted(name: str) -> None:
    assert one(live(name, {"user_id": "21070000000000999"})).reason == "staff_action"
    assert one(live(name, {"user_id": "417"})).reason == "not_engagement"
    assert one(live(name, {"user_id": "21070000000000417"})).reason == "not_engagement"
    assert one(live(name, {"user_id": "417"}, job_id="7")).reason == "system_action"
    assert one(live(name, {"user_id": "417"}, context_role="TeacherEnrollment")).reason == (
        "staff_action"
    )


# -- malformed input and batches -------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        ({"body": {}}, "missing_field", "metadata"),
        ({"metadata": live()["metadata"]}, "missing_field", "body"),
        ({"metadata": live()["metadata"], "body": None}, "missing_field", "body"),
        ({"metadata": [], "body": {}}, "wrong_type", "metadata"),
        ({"metadata": live()["metadata"], "body": "x"}, "wrong_type", "body"),
        (live(event_name=_DROP), "missing_field", "metadata.event_name"),
        (live(event_name=["x"]), "wrong_type", "metadata.event_name"),
        (live(user_id=["417"]), "wrong_type", "metadata.user_id"),
        (live(user_id=True), "wrong_type", "metadata.user_id"),
        (live(context_role={"a": 1}), "wrong_type", "metadata.context_role"),
        (live(user_sis_id="S" * 500), "invalid_value", "metadata.user_sis_id"),
    ],
)
def test_malformed_live_events_are_refused_naming_the_field(
    payload: Any, reason: str, field: str
) -> None:
    unit = one(payload)
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, reason)
    assert field in unit.detail


@pytest.mark.parametrize("payload", ["text", 12, None, True, 1.5])
def test_a_payload_that_is_not_an_object_is_one_refusal(payload: Any) -> None:
    unit = one(payload)
    assert (unit.index, unit.reason) == (0, "not_an_object")


def test_an_array_is_a_batch_one_outcome_per_event_in_order() -> None:
    batch = [live(), "junk", live("grade_change", {"score": 1}), [live()], live(user_id=_DROP)]
    units = adapt(batch, CTX)
    assert [u.index for u in units] == [0, 1, 2, 3, 4]
    assert [u.reason for u in units] == [
        None, "not_an_object", "assessment_data", "not_an_object", "system_action",
    ]  # fmt: skip
    assert adapt([], CTX) == []


# -- the Caliper form --------------------------------------------------------------------------

CALIPER_EVENT = {
    "@context": "http://purl.imsglobal.org/ctx/caliper/v1p1",
    "id": "urn:uuid:a5e8d5e4-64e8-4bd0-b2a0-c0e0b4c9b2a1",
    "type": "NavigationEvent",
    "actor": {"id": "urn:instructure:canvas:user:21070000000000001", "type": "Person"},
    "action": "NavigatedTo",
    "object": {"id": "urn:instructure:canvas:course:21070000000000565", "type": "Entity"},
    "eventTime": "2019-11-01T00:09:06.753Z",
}
CALIPER_ENVELOPE = {
    "sensor": "http://oxana.instructure.com/",
    "sendTime": "2019-11-01T00:09:07.000Z",
    "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p1",
    "data": [CALIPER_EVENT],
}


def test_is_caliper_tells_the_two_forms_apart() -> None:
    assert is_caliper(CALIPER_ENVELOPE)
    assert is_caliper(CALIPER_EVENT)
    assert is_caliper([CALIPER_EVENT, CALIPER_EVENT])
    assert not is_caliper(load("logged_in.json"))
    assert not is_caliper(load("asset_accessed.json"))
    assert not is_caliper([CALIPER_EVENT, live()])
    assert not is_caliper([]) and not is_caliper("text") and not is_caliper(None)


def test_a_caliper_payload_given_to_this_adapter_is_refused_not_guessed() -> None:
    unit = one(CALIPER_ENVELOPE)
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, "invalid_value")
    assert "Caliper" in unit.detail


# -- any input ---------------------------------------------------------------------------------

_IDS = st.one_of(st.from_regex(r"\A[0-9]{1,20}\Z"), st.integers(0, 10**18))
_JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(alphabet="abcxyz019_:-", max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet="abcxyz_", max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_NAMES = st.sampled_from(
    sorted(STUDENT_EVENTS) + sorted(STAFF_EVENTS) + sorted(SYSTEM_EVENTS)
    + ["grade_change", "course_grade_change", "learning_outcome_result_created", "other"]
)  # fmt: skip
_TIMES = st.sampled_from(
    ["2024-10-14T09:15:30.250Z", "2024-10-14T10:15:30+01:00", "2024-10-14T10:15:30", "x", 12]
)
_ROLES = st.sampled_from(
    [None, "StudentEnrollment", "TeacherEnrollment", "ObserverEnrollment", "GroupMembership"]
)


@st.composite
def planted_events(draw: st.DrawFn) -> Any:
    """A live event of any documented kind with personal data planted where Canvas puts it,
    sometimes a result, and some fields dropped or replaced by any JSON value."""
    name = draw(_NAMES)
    body: dict[str, Any] = {
        "asset_type": draw(st.sampled_from(["course", "user", "wiki_page", "attachment"])),
        "asset_id": draw(_IDS),
        "asset_name": NAME,
        "display_name": DISPLAY,
        "user_name": NAME,
        "name": NAME,
        "role": draw(_ROLES),
        "discussion_topic_id": draw(_IDS),
        "assignment_id": draw(_IDS),
    }
    if draw(st.booleans()):
        body[draw(st.sampled_from(["score", "grade", "current_score", "final_score"]))] = draw(
            st.sampled_from([SCORE, GRADE])
        )
    event = live(
        name,
        body,
        user_id=draw(st.one_of(_IDS, st.none())),
        user_sis_id=draw(st.one_of(st.none(), st.from_regex(r"\A[A-Z0-9-]{1,12}\Z"))),
        user_login=EMAIL,
        real_user_id=draw(st.one_of(st.none(), _IDS)),
        context_type=draw(st.sampled_from(["Course", "User", "Group", None])),
        context_role=draw(_ROLES),
        event_time=draw(_TIMES),
        client_ip=IP,
        user_agent=AGENT,
        hostname=HOST,
    )
    for part in ("metadata", "body"):
        for key in draw(st.lists(st.sampled_from(sorted(event[part])), max_size=2)):
            if draw(st.booleans()):
                event[part].pop(key, None)
            else:
                event[part][key] = draw(_JUNK)
    return event


def _check(payload: Any) -> None:
    units = adapt(payload, CTX)
    expected = len(payload) if isinstance(payload, list) else 1
    assert [u.index for u in units] == list(range(expected))
    for unit in units:
        assert unit.outcome in (Outcome.ACCEPTED, Outcome.IGNORED, Outcome.REFUSED)
        if unit.outcome is Outcome.ACCEPTED:
            validates(unit)
        else:
            assert unit.reason and unit.event is None and unit.actor is None
    out = serialised(units)
    leaked = [value for value in PLANTED if value in out]
    assert leaked == []


@settings(max_examples=200, deadline=None)
@given(st.one_of(planted_events(), st.lists(planted_events(), max_size=4)))
def test_any_live_event_gives_one_clean_outcome(payload: Any) -> None:
    _check(payload)


@settings(max_examples=200, deadline=None)
@given(_JUNK)
def test_any_json_value_gives_outcomes_and_never_raises(payload: Any) -> None:
    _check(payload)


def test_an_unexpected_failure_is_a_refusal_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: Any) -> str:
        raise RuntimeError

    monkeypatch.setattr(canvas, "resource", broken)
    unit = one(live())
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, "invalid_value")
