"""The IMS Caliper adapter: published IMS fixtures and hand-written 1.2 / Canvas samples give
their expected outcomes, accepted events are valid product events, and the rules of issue 13
(identity, staff/system/impersonation, surveys, assessment data, time, ids, course/platform,
malformed input) hold for any input."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.adapters import caliper, caliper_actor, canvas
from agents.adapters.caliper_rules import PLACEHOLDER_COURSE, is_event
from agents.adapters.identity import Policy, resolve
from agents.adapters.units import AdaptContext, Outcome, Unit, content_id
from schemas.sources import SOURCES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "caliper"
EXPECTED: dict[str, list[dict[str, Any]]] = json.loads(
    (FIXTURES / "expected.json").read_text(encoding="utf-8")
)
REAL = sorted(name for name in EXPECTED if name.startswith("real/"))
CTX = AdaptContext(received_at=datetime(2024, 10, 20, 12, 0, tzinfo=UTC))
STUDENT = "https://vle.example.ac.uk/users/7001"
COURSE = "https://vle.example.ac.uk/terms/2024-25/courses/chem101/sections/1"
# Values planted in payloads that must never come out in an event or a detail.
NAME, EMAIL, IP, DISPLAY = "Zebedee Quixote", "zq.planted@example.org", "198.51.100.77", "zeb_q"
SCORE, LETTER = 87.5, "A-minus-planted"
PLANTED = (NAME, EMAIL, IP, DISPLAY, "87.5", LETTER)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def adapt(payload: Any, ctx: AdaptContext = CTX) -> list[Unit]:
    return caliper.adapt(payload, ctx)


def one(payload: Any, ctx: AdaptContext = CTX) -> Unit:
    units = adapt(payload, ctx)
    assert len(units) == 1
    return units[0]


def event(**changes: Any) -> dict[str, Any]:
    """A student's valid 1.2 navigation event, with ``changes`` applied (None deletes)."""
    base: dict[str, Any] = {
        "@context": "http://purl.imsglobal.org/ctx/caliper/v1p2",
        "id": "urn:uuid:11111111-2222-4333-8444-555555555555",
        "type": "NavigationEvent",
        "actor": {"id": STUDENT, "type": "Person"},
        "action": "NavigatedTo",
        "object": {"id": "https://vle.example.ac.uk/pages/1", "type": "WebPage"},
        "eventTime": "2024-10-14T10:15:00.000Z",
        "edApp": {"id": "https://vle.example.ac.uk", "type": "SoftwareApplication"},
        "group": {"id": COURSE, "type": "CourseSection", "courseNumber": "CHEM101-01"},
        "membership": {"id": f"{COURSE}/rosters/1", "type": "Membership", "roles": ["Learner"]},
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def valid(unit: Unit) -> None:
    assert unit.outcome is Outcome.ACCEPTED, unit
    assert unit.source is not None and unit.event is not None
    SOURCES[unit.source].model.model_validate({**unit.event, "student_id": "S1"})


def text_of(units: list[Unit]) -> str:
    """Everything a unit shows downstream: its report, its event, its detail."""
    return json.dumps([[u.report(), dict(u.event or {})] for u in units], ensure_ascii=False)


# -- fixtures ---------------------------------------------------------------------------------


def test_every_sample_file_has_expected_outcomes() -> None:
    files = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.json")}
    assert files - {"expected.json"} == set(EXPECTED)
    top = [n for n in files if "/" not in n and n != "expected.json"]
    published = [n for n in top if not n.startswith("handwritten-")]
    assert len(published) == 55  # every Caliper 1.1 event and envelope fixture of shared/data
    assert len(REAL) == 105  # real/: SOURCES.md says where each comes from


def _source(name: str) -> str:
    """The system a sample under real/ comes from, by its file-name prefix."""
    for prefix in ("ims-v1p2", "blackboard", "own-canvas", "own-openedx", "own-moodle", "own-ims"):
        if name.startswith(f"real/{prefix}"):
            return prefix
    return "own-unizin"


def test_the_real_samples_cover_several_emitters() -> None:
    events: dict[str, int] = {}
    for name in REAL:
        events[_source(name)] = events.get(_source(name), 0) + len(EXPECTED[name])
    assert events == {
        "ims-v1p2": 64,
        "blackboard": 16,
        "own-canvas": 28,
        "own-openedx": 7,
        "own-moodle": 6,
        "own-ims": 6,
        "own-unizin": 1,
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_sample_gives_its_expected_outcomes(name: str) -> None:
    units = adapt(load(name))
    got = [
        {"outcome": str(u.outcome), "as": u.source and str(u.source), "reason": u.reason}
        for u in units
    ]
    assert got == EXPECTED[name]
    assert [u.index for u in units] == list(range(len(units)))
    for unit in units:
        if unit.outcome is Outcome.ACCEPTED:
            valid(unit)
        else:
            assert unit.detail and unit.event is None and unit.actor is None


def _counts(names: list[str], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        for outcome in EXPECTED[name]:
            counts[outcome[key] or ""] = counts.get(outcome[key] or "", 0) + 1
    return counts


def test_the_samples_outcome_counts() -> None:
    top = [name for name in EXPECTED if "/" not in name]
    assert _counts(top, "outcome") == {"accepted": 48, "ignored": 26, "refused": 12}
    assert _counts(REAL, "outcome") == {"accepted": 72, "ignored": 47, "refused": 9}
    assert _counts(REAL, "reason") == {
        "": 72,
        "entity": 8,
        "staff_action": 22,
        "system_action": 4,
        "impersonation": 1,
        "unknown_actor": 3,
        "not_engagement": 2,
        "survey": 7,
        "assessment_data": 9,
    }


def test_the_mixed_envelope_gives_one_outcome_per_item() -> None:
    units = adapt(load("caliperEnvelopeMixedBatch.json"))
    assert [u.reason or str(u.outcome) for u in units] == [
        *["entity"] * 4,
        "accepted",
        "accepted",
        "assessment_data",
    ]


def test_nothing_planted_in_the_samples_comes_out() -> None:
    """The samples carry names, e-mail addresses, an IP, a user agent and scores."""
    out = text_of([u for name in EXPECTED for u in adapt(load(name))])
    for value in (
        "Jane",
        "jane@example.edu",
        "ada.lovelace@example.ac.uk",
        "203.0.113.7",
        "Mozilla",
        "Ada Lovelace",
        "87.5",
        "8.75",
        "17.5",
        "B+",
        "auto-graded",
        # real/: logins, names, addresses and results of the Canvas, Blackboard, Moodle samples
        "s2400117@student",
        "scott.hurrey",
        "oxana",
        "Invented Student Name",
        "Invented Person Name",
        "192.0.2.10",
        "98.10.178.27",
        "71.0",
    ):
        assert value not in out
    actors = repr([u.actor for name in EXPECTED for u in adapt(load(name))])
    assert "@" not in actors.replace("mailto:", "")  # no e-mail address is an identity key


# -- identity ---------------------------------------------------------------------------------


def test_a_thinned_actor_is_its_iri() -> None:
    unit = one(load("caliperEventNavigationNavigatedToThinned.json"))
    valid(unit)
    assert unit.actor is not None
    assert unit.actor.keys == ("https://example.edu/users/554433",)
    assert unit.actor.as_is == "https://example.edu/users/554433"


def test_canvas_sis_id_comes_first_and_is_the_as_is_id() -> None:
    unit = adapt(load("handwritten-canvas-caliper-envelope.json"))[0]
    valid(unit)
    assert unit.actor is not None
    assert unit.actor.keys == (
        "canvas-sis:S7654321",
        "canvas:10000000000042",
        "canvas:42",  # the local id of a global id, as the Canvas-format adapter gives it
        "urn:instructure:canvas:user:10000000000042",
    )
    assert unit.actor.as_is == "S7654321"
    assert "ada.lovelace" not in repr(unit.actor)  # the login (an e-mail) is never a key


def test_canvas_sis_id_under_its_other_spelling() -> None:
    actor = {
        "id": STUDENT,
        "type": "Person",
        "extensions": {"com.instructure.canvas": {"sis_id": "ABC.123"}},
    }
    unit = one(event(actor=actor))
    assert unit.actor is not None
    assert unit.actor.keys == ("canvas-sis:ABC.123", STUDENT)
    assert unit.actor.as_is == "ABC.123"


def test_a_caliper_1_2_sis_sourced_id_is_a_key_and_the_as_is_id() -> None:
    unit = adapt(load("handwritten-v1p2-envelope-mixed.json"))[1]
    valid(unit)
    assert unit.actor is not None
    assert unit.actor.keys == ("sis:S1234567", STUDENT)
    assert unit.actor.as_is == "S1234567"


def test_a_mailto_actor_is_a_key_but_never_an_as_is_id() -> None:
    unit = one(event(actor="mailto:someone@example.ac.uk"))
    assert unit.actor is not None
    assert unit.actor.keys == ("mailto:someone@example.ac.uk",) and unit.actor.as_is is None
    [ignored] = resolve([unit], Policy.AS_IS, {})
    assert ignored.reason == "unknown_actor"


def test_the_identity_step_resolves_caliper_actors_under_both_policies() -> None:
    units = adapt(load("handwritten-canvas-caliper-envelope.json"))[:1]
    [as_is] = resolve(units, Policy.AS_IS, {})
    assert as_is.event is not None and as_is.event["student_id"] == "S7654321"
    [mapped] = resolve(units, Policy.MAP, {"canvas:10000000000042": "U0001"})
    assert mapped.event is not None and mapped.event["student_id"] == "U0001"
    [unknown] = resolve(units, Policy.MAP, {})
    assert unknown.reason == "unknown_actor"


def test_an_anonymous_actor_is_unknown() -> None:
    unit = one(event(actor={"id": "_:b0", "type": "Person"}))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "unknown_actor")


# -- only the student's own actions -----------------------------------------------------------


@pytest.mark.parametrize(
    "roles",
    [
        ["Instructor"],
        ["Instructor", "Instructor#TeachingAssistant"],
        ["TeachingAssistant"],
        ["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"],
        ["Administrator"],
        ["Mentor", "Mentor#Tutor"],
        ["Learner", "Instructor"],
        "Instructor",
    ],
)
def test_staff_roles_are_staff_actions(roles: Any) -> None:
    membership = {"id": f"{COURSE}/rosters/2", "type": "Membership", "roles": roles}
    unit = one(event(membership=membership))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "staff_action")


@pytest.mark.parametrize("roles", [["Learner"], ["Learner", "Learner#GuestLearner"], ["Member"]])
def test_learner_roles_are_the_students(roles: list[str]) -> None:
    valid(one(event(membership={"id": "urn:m:1", "type": "Membership", "roles": roles})))


def test_activating_an_assignable_is_staff_even_without_roles() -> None:
    unit = one(event(type="AssignableEvent", action="Activated", membership=None))
    assert unit.reason == "staff_action"


@pytest.mark.parametrize("kind", ["SoftwareApplication", "Organization", "Group"])
def test_an_actor_that_is_not_a_person_is_a_system_action(kind: str) -> None:
    unit = one(event(actor={"id": "https://vle.example.ac.uk", "type": kind}))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "system_action")


def test_a_session_timeout_is_a_system_action_whoever_is_named() -> None:
    unit = one(event(type="SessionEvent", action="TimedOut"))
    assert unit.reason == "system_action"


def test_a_masqueraded_canvas_session_is_impersonation() -> None:
    unit = adapt(load("handwritten-canvas-caliper-envelope.json"))[1]
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "impersonation")
    own = {"com.instructure.canvas": {"real_user_id": "7001"}}
    valid(one(event(extensions=own)))  # the real user is the actor: no impersonation


def test_surveys_are_ignored_and_their_answers_never_read() -> None:
    for kind in (
        "SurveyEvent",
        "SurveyInvitationEvent",
        "QuestionnaireEvent",
        "QuestionnaireItemEvent",
    ):
        unit = one(event(type=kind, action="Submitted", generated={"value": NAME}))
        assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "survey")
        assert NAME not in text_of([unit])
    navigated = one(event(object={"id": "https://vle.example.ac.uk/q/1", "type": "Questionnaire"}))
    assert navigated.reason == "survey"


def test_entities_in_an_envelope_are_ignored() -> None:
    units = adapt(load("caliperEnvelopeEntityBatch.json"))
    assert {(u.outcome, u.reason) for u in units} == {(Outcome.IGNORED, "entity")}


# -- assessment data --------------------------------------------------------------------------

SCORE_CASES = {
    "score": {"type": "Score", "maxScore": 100.0, "scoreGiven": SCORE, "comment": LETTER},
    "result": {"type": "Result", "resultScore": SCORE, "comment": LETTER},
    "untyped result": {"id": "urn:r:1", "resultScore": SCORE},
    "caliper 1.0 result": {
        "@type": "http://purl.imsglobal.org/caliper/v1/Result",
        "normalScore": SCORE,
        "totalScore": SCORE,
    },
    "progress": {
        "type": "AggregateMeasureCollection",
        "items": [{"type": "AggregateMeasure", "metric": "UnitsPassed", "metricValue": SCORE}],
    },
}


@pytest.mark.parametrize("generated", SCORE_CASES.values(), ids=list(SCORE_CASES))
def test_a_generated_result_is_refused_and_nothing_of_it_kept(generated: dict[str, Any]) -> None:
    unit = one(event(type="AssessmentEvent", action="Submitted", generated=generated))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, "assessment_data")
    assert unit.event is None and unit.actor is None
    out = text_of([unit])
    assert "87.5" not in out and LETTER not in out


def test_grade_events_and_grading_actions_are_refused() -> None:
    assert one(event(type="GradeEvent", action="Graded")).reason == "assessment_data"
    assert one(event(type="Event", action="Graded")).reason == "assessment_data"
    assert one(event(type="OutcomeEvent", action="Graded")).reason == "assessment_data"


def test_a_grade_anywhere_in_the_event_is_refused() -> None:
    obj = {
        "id": "urn:x:1",
        "type": "Attempt",
        "extensions": {"com.instructure.canvas": {"grade": LETTER}},
    }
    unit = one(event(object=obj))
    assert unit.reason == "assessment_data" and LETTER not in text_of([unit])


def test_an_empty_result_field_holds_no_result() -> None:
    obj = {
        "id": "urn:x:3",
        "type": "AssignableDigitalResource",
        "extensions": {"com.instructure.canvas": {"grade": None, "score": ""}},
    }
    valid(one(event(type="AssignableEvent", action="Submitted", object=obj)))


def test_max_score_and_engagement_measures_are_not_results() -> None:
    obj = {"id": "urn:x:2", "type": "Assessment", "maxScore": 20.0, "maxSubmits": 2}
    valid(one(event(type="AssessmentEvent", action="Started", object=obj)))
    measures = {
        "type": "AggregateMeasureCollection",
        "items": [
            {"type": "AggregateMeasure", "metric": "MinutesOnTask", "metricValue": 12.0},
            {
                "type": "AggregateMeasure",
                "metric": "UnitsCompleted",
                "metricValue": 3.0,
                "maxMetricValue": 5.0,
            },
        ],
    }
    valid(one(event(type="ToolUseEvent", action="Used", generated=measures)))


def test_an_answered_item_is_activity_and_the_answer_is_not_kept() -> None:
    response = {"type": "FillinBlankResponse", "values": [NAME]}
    unit = one(event(type="AssessmentItemEvent", action="Completed", generated=response))
    valid(unit)
    assert NAME not in text_of([unit])


# -- the product event ------------------------------------------------------------------------


def test_the_event_maps_action_resource_course_and_platform() -> None:
    unit = one(event())
    valid(unit)
    assert unit.event == {
        "event_id": "urn:uuid:11111111-2222-4333-8444-555555555555",
        "occurred_at": "2024-10-14T10:15:00+00:00",
        "platform": "https://vle.example.ac.uk",
        "course": COURSE,
        "action": "NavigatedTo",
        "resource": "https://vle.example.ac.uk/pages/1",
    }


def test_time_is_event_time_in_utc_never_send_time() -> None:
    assert one(event(eventTime="2024-10-14T10:15:00.000+01:00")).event == {
        **(one(event()).event or {}),
        "occurred_at": "2024-10-14T09:15:00+00:00",
    }
    envelope = {
        "sensor": "urn:s:1",
        "sendTime": "2030-01-01T00:00:00Z",
        "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p2",
        "data": [event(eventTime="2024-10-16T09:20:00-04:00"), event(eventTime=None)],
    }
    first, second = adapt(envelope)
    assert first.event is not None and first.event["occurred_at"] == "2024-10-16T13:20:00+00:00"
    assert (second.reason, "eventTime" in second.detail) == ("missing_field", True)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing_field"),
        (1_700_000_000, "wrong_type"),
        ("2024-10-14T10:15:00", "invalid_value"),
        ("yesterday", "invalid_value"),
    ],
)
def test_a_bad_event_time_is_refused_naming_it(value: Any, reason: str) -> None:
    unit = one(event(eventTime=value))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, reason)
    assert "eventTime" in unit.detail


def test_without_an_id_the_event_id_is_a_hash_of_the_content() -> None:
    first, again, other = (
        one(event(id=None)),
        one(event(id=None)),
        one(event(id=None, action="Viewed")),
    )
    assert first.event is not None and again.event is not None and other.event is not None
    assert (
        first.event["event_id"] == again.event["event_id"] == content_id("caliper", event(id=None))
    )
    assert first.event["event_id"] != other.event["event_id"]


def test_an_id_the_product_cannot_hold_is_hashed_and_a_wrong_one_refused() -> None:
    long_id = "urn:uuid:" + "a" * 200
    unit = one(event(id=long_id))
    valid(unit)
    assert unit.event is not None and unit.event["event_id"] == content_id("caliper", long_id)
    assert one(event(id=42)).reason == "wrong_type"


def test_course_falls_back_to_the_membership_then_the_platform_placeholder() -> None:
    assert (one(event(group=COURSE)).event or {})["course"] == COURSE
    membership = {"id": "urn:m:1", "type": "Membership", "organization": {"id": "urn:course:9"}}
    assert (one(event(group=None, membership=membership)).event or {})["course"] == "urn:course:9"
    login = one(event(type="SessionEvent", action="LoggedIn", group=None, membership=None))
    valid(login)
    assert login.event is not None and login.event["course"] == PLACEHOLDER_COURSE


def test_platform_from_edapp_then_the_context_then_caliper() -> None:
    assert (one(event(edApp="https://app.example")).event or {})[
        "platform"
    ] == "https://app.example"
    named = {"type": "SoftwareApplication", "name": "Reader"}
    assert (one(event(edApp=named)).event or {})["platform"] == "Reader"
    ctx = AdaptContext(platform="blackboard")
    assert (one(event(edApp=None), ctx).event or {})["platform"] == "blackboard"
    assert (one(event(edApp=None)).event or {})["platform"] == "caliper"


def test_long_iris_are_cut_to_fit_and_stay_apart() -> None:
    base = "https://vle.example.ac.uk/" + "x" * 200
    first, second = one(event(group=base + "/1")), one(event(group=base + "/2"))
    valid(first)
    assert first.event is not None and second.event is not None
    assert len(first.event["course"]) == 128 and first.event["course"] != second.event["course"]


def test_resource_is_the_object_iri_its_type_or_nothing_personal() -> None:
    assert (one(event(object="urn:thing:1")).event or {})["resource"] == "urn:thing:1"
    assert (one(event(object={"type": "Document"})).event or {})["resource"] == "Document"
    person = {"id": "https://vle.example.ac.uk/users/7002", "type": "Person", "name": NAME}
    assert (one(event(object=person)).event or {})["resource"] == "Person"


def test_caliper_1_0_iris_are_read_as_terms() -> None:
    old = event(
        type=None,
        actor={"@id": STUDENT, "@type": "http://purl.imsglobal.org/caliper/v1/lis/Person"},
        action="http://purl.imsglobal.org/vocab/caliper/v1/action#NavigatedTo",
    )
    old["@type"] = "http://purl.imsglobal.org/caliper/v1/NavigationEvent"
    unit = one(old)
    valid(unit)
    assert unit.event is not None and unit.event["action"] == "NavigatedTo"


# -- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"actor": None}, "missing_field", "actor"),
        ({"actor": {"type": "Person"}}, "missing_field", "actor.id"),
        ({"actor": 7}, "wrong_type", "actor"),
        ({"actor": "not an iri"}, "invalid_value", "actor"),
        ({"action": None}, "missing_field", "action"),
        ({"action": ["Viewed"]}, "wrong_type", "action"),
        ({"object": None}, "missing_field", "object"),
        ({"object": 3}, "wrong_type", "object"),
        ({"type": None}, "missing_field", "type"),
        ({"group": "This is not an object or IRI"}, "invalid_value", "group"),
        ({"group": 12}, "wrong_type", "group"),
        ({"edApp": True}, "wrong_type", "edApp"),
        ({"membership": [1]}, "wrong_type", "membership"),
    ],
)
def test_malformed_events_are_refused_naming_the_field(
    changes: dict[str, Any], reason: str, field: str
) -> None:
    unit = one(event(**changes))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, reason)
    assert f"'{field}'" in unit.detail


@pytest.mark.parametrize("payload", [None, 3, "urn:uuid:1", True, 2.5])
def test_a_payload_that_is_not_an_object_is_one_refusal(payload: Any) -> None:
    unit = one(payload)
    assert (unit.index, unit.outcome, unit.reason) == (0, Outcome.REFUSED, "not_an_object")


def test_envelope_data_must_be_a_list() -> None:
    assert one(load("handwritten-v1p2-envelope-data-not-list.json")).reason == "wrong_type"
    missing = one({"sensor": "urn:s:1", "sendTime": "2024-10-14T10:15:00Z"})
    assert (missing.reason, "'data'" in missing.detail) == ("missing_field", True)
    assert adapt({"sensor": "urn:s:1", "data": []}) == []


def test_an_envelope_inside_an_array_is_refused_alone() -> None:
    units = adapt([{"sensor": "urn:s:1", "data": [event()]}, event(), {}])
    assert [u.reason for u in units] == ["invalid_value", None, "missing_field"]


def test_an_event_nested_too_deep_is_refused() -> None:
    deep: Any = "leaf"
    for _ in range(60):
        deep = {"nested": deep}
    unit = one(event(extensions=deep))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, "invalid_value")


# -- real emitters: Canvas, Blackboard, Open edX, Moodle, 1.2 anonymous entities -------------

CANVAS_SAMPLES = sorted(
    name
    for name in REAL
    if name.startswith("real/own-canvas-") and "extensions" in load(name)["data"][0]["actor"]
)


def _canvas_format(event: dict[str, Any]) -> dict[str, Any]:
    """The Canvas-format live event of the same user (Canvas Data Services "Metadata")."""
    ext = event["actor"]["extensions"]["com.instructure.canvas"]
    metadata = {
        "event_name": "logged_in",
        "event_time": event["eventTime"],
        "user_id": ext["entity_id"],
        **{k: ext[k] for k in ("user_sis_id", "user_login") if k in ext},
    }
    return {"metadata": metadata, "body": {}}


@pytest.mark.parametrize("name", CANVAS_SAMPLES)
def test_a_canvas_caliper_actor_has_the_canvas_format_keys(name: str) -> None:
    """One identity-map entry serves both Canvas formats: the Caliper form's keys are the
    Canvas form's (SIS id, global and local user id, login), then the actor IRI."""
    event = load(name)["data"][0]
    [ours] = adapt(load(name))
    [theirs] = canvas.adapt(_canvas_format(event), CTX)
    assert theirs.actor is not None
    expected = (*theirs.actor.keys, event["actor"]["id"])
    actor = caliper_actor.actor_of(event["actor"])
    assert actor.keys == expected
    assert theirs.actor.as_is is None or actor.as_is == theirs.actor.as_is
    if ours.outcome is Outcome.ACCEPTED:
        assert ours.actor == actor


def test_canvas_ids_come_from_the_user_urn_when_the_extensions_do_not_say() -> None:
    actor = caliper_actor.actor_of({"id": "urn:instructure:canvas:user:42420000000000987"})
    assert actor.keys == (
        "canvas:42420000000000987",
        "canvas:987",
        "urn:instructure:canvas:user:42420000000000987",
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("real/own-canvas-asset_accessed-masquerade.json", "impersonation"),
        ("real/own-canvas-attachment_created-job.json", "system_action"),
        ("real/own-canvas-discussion_topic_created-announcement.json", "staff_action"),
        ("real/own-canvas-enrollment_created.json", "staff_action"),
        ("real/own-canvas-enrollment_state_created.json", "staff_action"),
        ("real/own-canvas-course_created.json", "staff_action"),
        ("real/own-canvas-syllabus_updated.json", "staff_action"),
        ("real/own-canvas-group_created.json", "staff_action"),
        ("real/own-canvas-group_membership_created.json", "staff_action"),
        ("real/own-canvas-user_account_association_created.json", "staff_action"),
        ("real/blackboard-course-group.json", "staff_action"),
        ("real/own-openedx-enrollment_activated.json", "not_engagement"),
        ("real/own-openedx-course_grade_passed.json", "not_engagement"),
    ],
)
def test_administration_jobs_masquerade_and_records_are_not_the_students(
    name: str, reason: str
) -> None:
    """Each of these was accepted as the student's activity before real samples were tried."""
    [unit] = adapt(load(name))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, reason)


def test_joining_a_group_oneself_is_neither_staff_nor_activity() -> None:
    envelope = load("real/own-canvas-group_membership_created.json")
    joined = envelope["data"][0]
    joined["actor"] = {"id": joined["object"]["member"]["id"], "type": "Person"}
    [unit] = adapt(envelope)
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "not_engagement")


def test_a_canvas_real_user_given_by_its_local_id_is_the_actor_itself() -> None:
    actor = {
        "id": "urn:instructure:canvas:user:10000000000042",
        "type": "Person",
        "extensions": {"com.instructure.canvas": {"entity_id": "10000000000042"}},
    }
    valid(one(event(actor=actor, extensions={"com.instructure.canvas": {"real_user_id": "42"}})))
    other = {"com.instructure.canvas": {"real_user_id": "20000000000042"}}
    assert one(event(actor=actor, extensions=other)).reason == "impersonation"


def test_a_canvas_resource_keeps_the_list_view_and_never_another_user() -> None:
    [listing] = adapt(load("real/own-canvas-asset_accessed-course_announcements.json"))
    assert listing.event is not None
    assert listing.event["resource"].endswith(":course:42420000000000310/announcements")
    [profile] = adapt(load("real/own-canvas-asset_accessed-user_profile.json"))
    assert profile.event is not None and profile.event["resource"] == "user"


def test_blackboard_batch_uid_and_user_pk_are_keys_but_never_an_e_mail() -> None:
    [unit] = adapt(load("real/blackboard-session.json"))
    assert unit.actor is not None
    assert unit.actor.keys[:2] == ("blackboard-sis:administrator", "blackboard:_1_1")
    assert unit.actor.as_is == "administrator"
    [blog] = adapt(load("real/blackboard-blog.json"))
    assert blog.actor is not None and blog.actor.keys[0] == "blackboard:_227_1"
    assert blog.actor.as_is is not None and "@" not in blog.actor.as_is


def test_anonymous_entities_name_nobody_and_no_course() -> None:
    """Caliper 1.2 §4.4: an anonymous entity's id is its type's IRI."""
    units = adapt(load("real/own-ims-v1p2-anonymous-entities.json"))
    assert units[0].reason == "unknown_actor"
    assert units[1].event is not None and units[1].event["course"] == PLACEHOLDER_COURSE
    [ignored] = resolve(units[:1], Policy.AS_IS, {})
    assert ignored.reason == "unknown_actor"
    anonymous_actor = {"id": "http://purl.imsglobal.org/caliper/Person", "type": "Person"}
    assert caliper_actor.actor_of(anonymous_actor).as_is is None


@pytest.mark.parametrize(
    ("name", "index", "course"),
    [
        # Open edX: the course is under the object's extensions.isPartOf
        ("real/own-openedx-play_video.json", 0, "https://learn.example.ac.uk/course/course-v1:"),
        # Blackboard: no group, the membership's organization
        ("real/blackboard-wiki.json", 0, "https://caliper-mapping.cloudbb.blackboard.com/v1/"),
        # Moodle (Caliper 1.0): the CourseSection group, @id
        ("real/own-moodle-logstore_caliper-envelope.json", 1, "https://moodle.example.ac.uk/"),
        # Unizin Engage: the CourseSection group
        ("real/own-unizin-engage-navigation.json", 0, "urn:unizin:engage:customer:example:term"),
    ],
)
def test_the_course_is_found_where_each_emitter_puts_it(name: str, index: int, course: str) -> None:
    unit = adapt(load(name))[index]
    valid(unit)
    assert unit.event is not None and unit.event["course"].startswith(course)


def test_a_student_group_counts_for_its_course() -> None:
    section = {"id": COURSE, "type": "CourseSection"}
    team = {"id": f"{COURSE}/groups/2", "type": "Group", "subOrganizationOf": section}
    assert (one(event(group=team)).event or {})["course"] == COURSE
    lone = {"id": f"{COURSE}/groups/3", "type": "Group"}
    assert (one(event(group=lone)).event or {})["course"] == f"{COURSE}/groups/3"
    part = {
        "id": "urn:page:1",
        "type": "Page",
        "isPartOf": {"id": "urn:c:1", "type": "CourseOffering"},
    }
    assert (one(event(group=None, membership=None, object=part)).event or {})["course"] == "urn:c:1"


# -- properties -------------------------------------------------------------------------------


def _items(payload: Any) -> list[Any]:
    """The events and entities of a sample: an envelope's data, an array, or the event."""
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        return list(payload["data"])
    return list(payload) if isinstance(payload, list) else [payload]


SAMPLE_EVENTS = [
    item
    for name in sorted(EXPECTED)
    for item in _items(load(name))
    if isinstance(item, dict) and is_event(item)
]
KEYS = (
    "id type actor action object eventTime group edApp membership generated extensions session "
    "federatedSession target referrer"
).split()
# Any JSON value; object keys are often Caliper's (envelope keys included) so that the
# adapter's branches are reached with wrong values, not only with unknown keys.
json_keys = st.sampled_from([*KEYS, "data", "sensor", "roles", "@type"]) | st.text(max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_keys, inner, max_size=4),
    max_leaves=10,
)


def _plant(item: dict[str, Any], where: str) -> None:
    """Put identifiers (and, for ``score``, a result) where a careless adapter would copy them."""
    actor = item.get("actor")
    if where == "actor" and isinstance(actor, dict):
        actor.update(name=NAME, email=EMAIL, displayName=DISPLAY)
    elif where == "extensions":
        item["extensions"] = {
            "com.instructure.canvas": {
                "client_ip": IP,
                "user_login": EMAIL,
                "display_name": DISPLAY,
            }
        }
    elif where == "federated":
        item["federatedSession"] = {
            "type": "LtiSession",
            "messageParameters": {"name": NAME, "email": EMAIL},
        }
    elif where == "score":
        item["generated"] = {"type": "Score", "scoreGiven": SCORE, "comment": LETTER}
    elif where == "object":
        item["object"] = {"id": "urn:o:1", "type": "Document", "name": NAME, "creators": [EMAIL]}


@st.composite
def caliper_payloads(draw: st.DrawFn) -> Any:
    """Sample events, mutated and planted, as a bare event, an array or an envelope."""
    items: list[Any] = []
    for _ in range(draw(st.integers(1, 4))):
        item = copy.deepcopy(draw(st.sampled_from(SAMPLE_EVENTS)))
        for where in draw(
            st.lists(
                st.sampled_from(["actor", "extensions", "federated", "score", "object"]), max_size=3
            )
        ):
            _plant(item, where)
        for key in draw(st.lists(st.sampled_from(KEYS), max_size=2)):
            item[key] = draw(json_values)
        items.append(draw(st.sampled_from([item, item, item, draw(json_values)])))
    shape = draw(st.sampled_from(["bare", "array", "envelope", "envelope-odd"]))
    if shape == "bare":
        return items[0]
    if shape == "array":
        return items
    data = items if shape == "envelope" else draw(json_values)
    return {"sensor": "urn:s:1", "sendTime": "2024-10-14T10:15:00Z", "data": data}


def _units_expected(payload: Any) -> int:
    if isinstance(payload, list):
        return len(payload)
    envelope = (
        isinstance(payload, dict)
        and any(k in payload for k in ("data", "sensor", "sendTime", "dataVersion"))
        and not is_event(payload)
    )
    if envelope and isinstance(payload.get("data"), list):
        return len(payload["data"])
    return 1


@settings(max_examples=200, deadline=None)
@given(caliper_payloads())
def test_any_payload_gives_one_outcome_per_unit_and_leaks_nothing(payload: Any) -> None:
    units = adapt(payload)
    assert len(units) == _units_expected(payload)
    assert [u.index for u in units] == list(range(len(units)))
    for unit in units:
        if unit.outcome is Outcome.ACCEPTED:
            valid(unit)
        else:
            assert unit.reason and unit.detail and unit.event is None
    out = text_of(units)
    for value in PLANTED:
        assert value not in out


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_value_never_raises(payload: Any) -> None:
    units = adapt(payload)
    assert len(units) == _units_expected(payload)
    assert all(u.outcome in Outcome for u in units)
