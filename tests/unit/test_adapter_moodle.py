"""The Moodle standard log adapter: logstore_standard_log rows (JSON or the table's CSV export)
become VLE activity, one outcome per row, and nothing about a result or a person leaks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.adapters.identity import Policy, resolve, wanted
from agents.adapters.moodle import (
    COLUMNS,
    MALFORMED,
    NO_COURSE,
    adapt,
    numbered_rows_from_csv,
    rows_from_csv,
)
from agents.adapters.units import Actor, AdaptContext, Outcome, Unit
from schemas.sources import SOURCES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "moodle"
DOCS = Path(__file__).parent.parent.parent / "docs" / "formats" / "moodle.md"
CTX = AdaptContext()
EXPECTED: dict[str, list[dict[str, Any]]] = json.loads(
    (FIXTURES / "expected.json").read_text(encoding="utf-8")
)

# A participating-level forum view by user 5 in course 4, as Moodle logs it.
BASE: dict[str, Any] = {
    "id": 501,
    "eventname": "\\mod_forum\\event\\discussion_viewed",
    "component": "mod_forum",
    "action": "viewed",
    "target": "discussion",
    "objecttable": "forum_discussions",
    "objectid": 7,
    "crud": "r",
    "edulevel": 2,
    "contextid": 41,
    "contextlevel": 70,
    "contextinstanceid": 12,
    "userid": 5,
    "courseid": 4,
    "relateduserid": None,
    "anonymous": 0,
    "other": None,
    "timecreated": 1510913041,
    "origin": "web",
    "ip": "203.0.113.77",
    "realuserid": None,
}
PLANTED = ("87.5", "A-", "jbloggs", "Jo Bloggs", "jo.bloggs@example.ac.uk", "203.0.113.77")


def row(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def one(item: Any, ctx: AdaptContext = CTX) -> Unit:
    units = adapt(item, ctx)
    assert len(units) == 1
    return units[0]


def payload_of(name: str) -> Any:
    """A fixture as the adapter gets it: exports (``.csv``, ``.tsv``, and ``.txt`` for the
    table output of database clients) through :func:`rows_from_csv` as bytes, in whatever
    encoding they were written; JSON as JSON."""
    path = FIXTURES / name
    if name.endswith((".csv", ".tsv", ".txt")):
        return rows_from_csv(path.read_bytes())
    return json.loads(path.read_text(encoding="utf-8"))


def serialised(units: list[Unit]) -> str:
    """Everything a unit can show anywhere: the report, the event, the actor."""
    shown = []
    for unit in units:
        actor = unit.actor
        keys = list(actor.keys) if actor else None
        shown.append([unit.report(), dict(unit.event or {}), keys, actor.as_is if actor else None])
    return json.dumps(shown)


def validates(unit: Unit) -> None:
    assert unit.source is not None and unit.event is not None
    SOURCES[unit.source].model.model_validate({**unit.event, "student_id": "S1"})


# -- fixtures -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture_gives_its_expected_outcomes(name: str) -> None:
    units = adapt(payload_of(name), CTX)
    got = [{"outcome": str(u.outcome), "as": u.source, "reason": u.reason} for u in units]
    assert got == EXPECTED[name]
    assert [u.index for u in units] == list(range(len(units)))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_accepted_fixture_event_validates_and_keeps_nothing_personal(name: str) -> None:
    units = adapt(payload_of(name), CTX)
    for unit in units:
        if unit.outcome is Outcome.ACCEPTED:
            validates(unit)
    text = serialised(units)
    for secret in (
        *PLANTED, "87.50000", "stu1", "stu3", "198.51.100.7", "Week 3 reading", "kowalski",
        "kgreene", "tmoreau", "rnakamura", "192.0.2.51", "Redox", "71.25", "61.5", "My reply",
        "Group notes", "index.html",
    ):  # fmt: skip
        assert secret not in text


def test_every_fixture_file_is_listed_with_its_sources() -> None:
    files = {p.name for p in FIXTURES.iterdir()} - {"expected.json", "SOURCES.md"}
    assert files == set(EXPECTED)
    sources = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    assert all(name in sources for name in EXPECTED)


# -- identity -------------------------------------------------------------------------------


def test_the_actor_is_the_moodle_user_id() -> None:
    unit = one(row(userid="5"))
    assert unit.actor == Actor(keys=("moodle:5",), as_is="5")
    assert wanted([unit]) == ["moodle:5"]
    mapped = resolve([unit], Policy.MAP, {"moodle:5": "S1234567"})[0]
    assert mapped.event is not None and mapped.event["student_id"] == "S1234567"
    assert resolve([unit], Policy.MAP, {})[0].reason == "unknown_actor"
    as_is = resolve([unit], Policy.AS_IS, {})[0]
    assert as_is.event is not None and as_is.event["student_id"] == "5"


# -- whose action ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"userid": 0}, "system_action"),
        ({"userid": -1}, "system_action"),
        ({"userid": "-10"}, "system_action"),  # the no-reply user
        ({"origin": "cli"}, "system_action"),
        ({"origin": "restore"}, "system_action"),
        ({"objectid": -31338}, "system_action"),  # a row copied by a course restore
        ({"realuserid": 2}, "impersonation"),
        ({"realuserid": "2"}, "impersonation"),
        (
            {"eventname": "\\core\\event\\user_loggedinas", "edulevel": 0, "relateduserid": 7},
            "impersonation",
        ),
        ({"edulevel": 1}, "staff_action"),
        (
            {"eventname": "\\core\\event\\role_assigned", "edulevel": 0, "relateduserid": 7},
            "staff_action",
        ),
        (
            {"eventname": "\\core\\event\\user_enrolment_created", "edulevel": 0},
            "not_engagement",  # self-enrolment: the user's own, but not learning activity
        ),
        (
            {"eventname": "\\core\\event\\note_created", "edulevel": 0, "relateduserid": 6},
            "staff_action",
        ),
        ({"eventname": "\\core\\event\\group_member_added", "relateduserid": 6}, "staff_action"),
        ({"anonymous": 1}, "not_engagement"),
        ({"anonymous": "1"}, "not_engagement"),
        ({"eventname": "\\core\\event\\dashboard_viewed", "edulevel": 0}, "not_engagement"),
        ({"eventname": "\\core\\event\\message_sent", "edulevel": 0}, "not_engagement"),
        ({"eventname": "\\core\\event\\course_module_completion_updated"}, "not_engagement"),
        ({"eventname": "\\gradereport_user\\event\\grade_report_viewed"}, "not_engagement"),
        ({"eventname": "\\mod_assign\\event\\feedback_viewed"}, "not_engagement"),
        ({"eventname": "\\mod_feedback\\event\\response_submitted"}, "survey"),
        ({"eventname": "\\mod_choice\\event\\answer_created"}, "survey"),
        ({"eventname": "\\mod_survey\\event\\response_submitted"}, "survey"),
        ({"eventname": "\\mod_questionnaire\\event\\attempt_submitted"}, "survey"),
        ({"eventname": "\\mod_feedback\\event\\course_module_viewed", "edulevel": 1}, "survey"),
    ],
)
def test_what_is_not_the_students_own_engagement_is_ignored(
    changes: dict[str, Any], reason: str
) -> None:
    unit = one(row(**changes))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, reason)
    assert unit.event is None and unit.actor is None and unit.detail


def test_a_survey_answer_is_never_kept() -> None:
    answer = json.dumps({"choiceid": 1, "optionid": 2, "answer": "Jo Bloggs prefers Tuesday"})
    units = adapt([row(eventname="\\mod_choice\\event\\answer_created", other=answer)], CTX)
    assert units[0].reason == "survey"
    assert "Tuesday" not in serialised(units) and "Jo Bloggs" not in serialised(units)


@pytest.mark.parametrize(
    "eventname",
    [
        "\\core\\event\\user_loggedin",
        "\\core\\event\\user_loggedout",
    ],
)
def test_logins_are_platform_activity(eventname: str) -> None:
    unit = one(row(eventname=eventname, edulevel=0, objecttable="user", objectid=5, courseid=0))
    assert unit.outcome is Outcome.ACCEPTED and unit.event is not None
    assert unit.event["course"] == NO_COURSE == "(platform)"
    assert unit.event["resource"] == ""
    assert unit.event["action"] == "core:" + eventname.rsplit("\\", 1)[1]
    validates(unit)


def test_a_participating_action_related_to_another_user_is_the_actors_own() -> None:
    """A peer-related participating action (relateduserid another user, not a staff event)
    is the actor's own: Moodle says so with edulevel 2."""
    unit = one(row(relateduserid=9))
    assert unit.outcome is Outcome.ACCEPTED


# -- assessment -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "eventname",
    [
        "\\core\\event\\user_graded",
        "\\core\\event\\grade_deleted",
        "\\core\\event\\grade_item_updated",
        "\\mod_assign\\event\\submission_graded",
        "\\mod_quiz\\event\\attempt_submitted",
        "\\mod_quiz\\event\\attempt_reviewed",
        "\\mod_quiz\\event\\attempt_regraded",
        "\\mod_quiz\\event\\question_manually_graded",
        "\\mod_workshop\\event\\assessment_evaluated",
        "\\mod_workshop\\event\\submission_assessed",
        "\\mod_lesson\\event\\essay_assessed",
        "\\mod_scorm\\event\\scoreraw_submitted",
        "\\mod_scorm\\event\\status_submitted",
        "\\mod_h5pactivity\\event\\statement_received",
        "\\core\\event\\competency_user_competency_rated_in_course",
        "\\core\\event\\rating_created",
        "\\gradingform_rubric\\event\\definition_updated",
        "\\assignfeedback_comments\\event\\comment_created",
    ],
)
@pytest.mark.parametrize("edulevel", [0, 1, 2])
def test_graded_and_assessed_events_are_refused_whoever_did_them(
    eventname: str, edulevel: int
) -> None:
    other = 'a:2:{s:6:"itemid";i:12;s:10:"finalgrade";d:87.5;}'
    units = adapt([row(eventname=eventname, edulevel=edulevel, other=other, userid=-1)], CTX)
    assert (units[0].outcome, units[0].reason) == (Outcome.REFUSED, "assessment_data")
    assert "87.5" not in serialised(units)


@pytest.mark.parametrize(
    ("other", "field"),
    [
        (json.dumps({"finalgrade": 87.5, "itemid": 3}), "other.finalgrade"),
        (json.dumps({"nested": {"rawgrade": "87.5"}}), "other.nested.rawgrade"),
        ('{"grade": "A-", "broken": ', "other.grade"),
        ('a:2:{s:5:"grade";s:2:"A-";s:6:"itemid";i:1;}', "other.grade"),
        ({"score": 87.5}, "other.score"),
    ],
)
def test_a_grade_in_other_is_refused_and_never_shown(other: Any, field: str) -> None:
    units = adapt([row(other=other)], CTX)
    assert (units[0].outcome, units[0].reason) == (Outcome.REFUSED, "assessment_data")
    assert field in units[0].detail
    text = serialised(units)
    assert "87.5" not in text and "A-" not in text


def test_a_refusal_names_the_path_to_a_grade_but_never_a_key_that_is_data() -> None:
    other = json.dumps({"Jo Bloggs": {"finalgrade": 87.5}, "items": [{"grade": 1}]})
    unit = one(row(other=other))
    assert unit.reason == "assessment_data"
    assert "other.*.finalgrade" in unit.detail and "Jo Bloggs" not in unit.detail


def test_an_extra_grade_column_is_refused() -> None:
    unit = one(row(finalgrade="87.5"))
    assert (unit.reason, "finalgrade" in unit.detail) == ("assessment_data", True)


def test_special_category_data_in_other_is_refused() -> None:
    unit = one(row(other='a:1:{s:10:"disability";s:3:"yes";}'))
    assert unit.reason == "forbidden_field"


def test_harmless_other_is_never_copied() -> None:
    unit = one(row(other=json.dumps({"username": "jbloggs", "forumid": 2})))
    assert unit.outcome is Outcome.ACCEPTED
    assert "jbloggs" not in serialised([unit]) and "forumid" not in serialised([unit])


# -- time, event id, course, action, resource -----------------------------------------------


@pytest.mark.parametrize("value", [1510913041, "1510913041", " 1510913041 ", 1510913041.0])
def test_timecreated_is_epoch_seconds_in_utc(value: Any) -> None:
    unit = one(row(timecreated=value))
    assert unit.event is not None and unit.event["occurred_at"] == "2017-11-17T10:04:01+00:00"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (0, "invalid_value"),
        (-5, "invalid_value"),
        (10**17, "invalid_value"),
        ("2017-11-17T10:04:01Z", "wrong_type"),
        (1510913041.5, "wrong_type"),
        (None, "missing_field"),
        ("", "missing_field"),
        ("NULL", "missing_field"),
    ],
)
def test_a_bad_timecreated_is_refused_naming_the_column(value: Any, reason: str) -> None:
    unit = one(row(timecreated=value))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, reason)
    assert "'timecreated'" in unit.detail


def test_an_event_name_with_escaped_backslashes_is_read() -> None:
    unit = one(row(eventname="\\\\mod_forum\\\\event\\\\discussion_viewed"))
    assert unit.event is not None and unit.event["action"] == "mod_forum:discussion_viewed"


def test_the_event_id_is_the_log_id() -> None:
    assert one(row(id=8101)).event["event_id"] == "moodle-log-8101"  # type: ignore[index]
    assert one(row(id="8101")).event["event_id"] == "moodle-log-8101"  # type: ignore[index]


def test_a_row_without_an_id_gets_a_stable_content_id() -> None:
    bare = row(id=None)
    first = one(bare).event
    again = one(dict(reversed(list(bare.items())))).event
    as_text = one({k: ("NULL" if v is None else str(v)) for k, v in bare.items()}).event
    other = one(row(id=None, timecreated=1510913042)).event
    assert first is not None and again is not None and as_text is not None and other is not None
    assert first["event_id"].startswith("moodle-")
    assert first["event_id"] == again["event_id"] == as_text["event_id"]
    assert first["event_id"] != other["event_id"]


@pytest.mark.parametrize(
    ("courseid", "course"),
    [
        (4, "moodle-course-4"),
        ("12", "moodle-course-12"),
        (1, NO_COURSE),
        (0, NO_COURSE),
        (None, NO_COURSE),
        ("NULL", NO_COURSE),
    ],
)
def test_course_is_the_moodle_course_or_the_platform(courseid: Any, course: str) -> None:
    unit = one(row(courseid=courseid))
    assert unit.event is not None and unit.event["course"] == course


def test_platform_is_moodle_unless_the_context_names_it() -> None:
    assert one(row()).event["platform"] == "moodle"  # type: ignore[index]
    named = one(row(), AdaptContext(platform="moodle-uni-example"))
    assert named.event is not None and named.event["platform"] == "moodle-uni-example"


@pytest.mark.parametrize(
    ("changes", "action", "resource"),
    [
        ({}, "mod_forum:discussion_viewed", "mod_forum/forum_discussions/7"),
        (
            {"eventname": "\\mod_assign\\event\\submission_status_viewed", "objecttable": None},
            "mod_assign:submission_status_viewed",
            "mod_assign/course_modules/12",
        ),
        (
            {"eventname": "\\core\\event\\course_viewed", "objecttable": None, "objectid": None}
            | {"contextlevel": 50, "contextinstanceid": 4},
            "core:course_viewed",
            "",
        ),
        ({"objecttable": "user", "objectid": 9, "contextlevel": 30}, None, ""),
    ],
)
def test_action_and_resource(changes: dict[str, Any], action: str | None, resource: str) -> None:
    unit = one(row(**changes))
    assert unit.event is not None
    if action is not None:
        assert unit.event["action"] == action
    assert unit.event["resource"] == resource
    validates(unit)


# -- malformed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason", "column"),
    [
        ({"eventname": None}, "missing_field", "eventname"),
        ({"eventname": 12}, "wrong_type", "eventname"),
        ({"eventname": "course viewed"}, "invalid_value", "eventname"),
        ({"edulevel": None}, "missing_field", "edulevel"),
        ({"edulevel": "teaching"}, "wrong_type", "edulevel"),
        ({"edulevel": 3}, "invalid_value", "edulevel"),
        ({"edulevel": True}, "wrong_type", "edulevel"),
        ({"userid": None}, "missing_field", "userid"),
        ({"userid": "five"}, "wrong_type", "userid"),
        ({"userid": [5]}, "wrong_type", "userid"),
        ({"courseid": {"id": 4}}, "wrong_type", "courseid"),
        ({"objecttable": "forum posts; drop"}, "invalid_value", "objecttable"),
        ({"id": 10**19}, "invalid_value", "id"),
    ],
)
def test_malformed_rows_are_refused_naming_the_column(
    changes: dict[str, Any], reason: str, column: str
) -> None:
    unit = one(row(**changes))
    assert (unit.outcome, unit.reason) == (Outcome.REFUSED, reason)
    assert f"'{column}'" in unit.detail


def test_a_missing_column_is_refused() -> None:
    item = row()
    del item["userid"]
    assert one(item).reason == "missing_field"


@pytest.mark.parametrize("payload", ["a row", 5, None, True, 2.5])
def test_a_lone_value_that_is_not_an_object_is_one_refusal(payload: Any) -> None:
    assert one(payload).reason == "not_an_object"


def test_an_array_gives_one_outcome_per_row_in_order() -> None:
    units = adapt([row(), "x", row(edulevel=1), [], row(id=None)], CTX)
    assert [u.index for u in units] == [0, 1, 2, 3, 4]
    assert [u.outcome for u in units] == [
        Outcome.ACCEPTED,
        Outcome.REFUSED,
        Outcome.IGNORED,
        Outcome.REFUSED,
        Outcome.ACCEPTED,
    ]
    assert adapt([], CTX) == []


# -- CSV export -----------------------------------------------------------------------------


def test_csv_rows_keep_text_and_mark_lines_of_the_wrong_length() -> None:
    text = "\ufeffID,EventName,UserId\n1,\\core\\event\\course_viewed,5\n\n2,x\n3,y,6,7\n"
    rows = rows_from_csv(text)
    assert rows[0] == {"id": "1", "eventname": "\\core\\event\\course_viewed", "userid": "5"}
    assert rows[1] == {MALFORMED: "line 4 has 2 values, the header has 3"}
    assert rows[2] == {MALFORMED: "line 5 has 4 values, the header has 3"}
    units = adapt(rows, CTX)
    assert [u.reason for u in units] == ["missing_field", "invalid_value", "invalid_value"]
    assert units[1].detail.endswith("line 4 has 2 values, the header has 3")


def test_csv_rows_know_the_line_they_start_on() -> None:
    text = 'id,other\n\n1,"{""a"":\n1}"\n2,N;\n'
    assert [line for line, _ in numbered_rows_from_csv(text)] == [3, 5]
    assert numbered_rows_from_csv(text)[0][1] == {"id": "1", "other": '{"a":\n1}'}


@pytest.mark.parametrize("delimiter", [",", "\t", ";"])
def test_csv_delimiter_is_read_from_the_header(delimiter: str) -> None:
    names = list(BASE)
    values = ["NULL" if BASE[n] is None else str(BASE[n]) for n in names]
    text = delimiter.join(names) + "\n" + delimiter.join(values) + "\n"
    unit = one(rows_from_csv(text))
    assert unit.outcome is Outcome.ACCEPTED and unit.event is not None
    assert unit.event["event_id"] == "moodle-log-501"


def test_csv_that_cannot_be_read_ends_with_one_refused_unit() -> None:
    text = 'id,other\n1,ok\n2,"' + "x" * 200_000 + '"\n'
    rows = rows_from_csv(text)
    assert rows[-1] == {MALFORMED: "line 3 cannot be read as CSV"}
    assert rows_from_csv("") == []


def _export_lines(delimiter: str = ",", null: str = "NULL") -> tuple[str, str]:
    """The header and the line of BASE as a database export writes them."""
    values = [null if BASE[name] is None else str(BASE[name]) for name in COLUMNS]
    return delimiter.join(COLUMNS), delimiter.join(values)


def test_an_export_without_a_header_row_is_read_in_the_tables_column_order() -> None:
    """``SELECT * ... INTO OUTFILE``, ``mysql -N`` and ``psql`` without ``HEADER`` write no
    header: the table's 21 columns, in order (install.xml)."""
    _, line = _export_lines("\t", "\\N")
    doubled = line.replace("\\mod_forum\\event\\", "\\\\mod_forum\\\\event\\\\")
    rows = numbered_rows_from_csv(f"{doubled}\n{line}\n")
    assert [number for number, _ in rows] == [1, 2]
    units = adapt([row for _, row in rows], CTX)
    assert [u.outcome for u in units] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert units[0].event is not None and units[0].event["event_id"] == "moodle-log-501"
    assert list(COLUMNS) == list(BASE)


def test_a_first_line_of_21_names_is_a_header_even_without_eventname() -> None:
    header = ",".join(f"col{n}" for n in range(21))
    rows = rows_from_csv(f"{header}\n" + ",".join(["1"] * 21) + "\n")
    assert rows == [{f"col{n}": "1" for n in range(21)}]


def test_excels_sep_line_names_the_delimiter_and_lines_are_counted() -> None:
    header, line = _export_lines("|", "")
    rows = numbered_rows_from_csv(f"sep=|\r\n{header}\r\n{line}\r\n")
    assert [number for number, _ in rows] == [3]
    assert one(rows[0][1]).outcome is Outcome.ACCEPTED


def test_database_client_tables_are_read_without_their_borders_and_footers() -> None:
    header, line = _export_lines(" | ", "")
    psql = f" {header}\n{'-' * 20}+{'-' * 20}\n {line}\n(1 row)\n\n"
    framed_header, framed_line = _export_lines(" | ", "NULL")
    border = "+" + "-" * 30 + "+"
    mysql = f"{border}\n| {framed_header} |\n{border}\n| {framed_line} |\n{border}\n"
    for text in (psql, mysql):
        rows = rows_from_csv(text)
        assert len(rows) == 1 and rows[0]["eventname"].strip() == BASE["eventname"]
        unit = one(rows[0])
        assert unit.outcome is Outcome.ACCEPTED and unit.event is not None
        assert unit.event["event_id"] == "moodle-log-501"


@pytest.mark.parametrize(
    "cell", ['"eventname"', "l.eventname", '"l"."eventname"', "`l`.`eventname`", " EventName "]
)
def test_header_names_may_be_quoted_or_qualified_by_the_table(cell: str) -> None:
    rows = rows_from_csv(f"id;{cell};userid\n1;\\core\\event\\course_viewed;5\n")
    assert rows == [{"id": "1", "eventname": "\\core\\event\\course_viewed", "userid": "5"}]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "cp1252"])
def test_an_export_is_read_from_bytes_in_the_encodings_exports_use(encoding: str) -> None:
    names = list(BASE)
    values = ["" if BASE[n] is None else str(BASE[n]) for n in names]
    values[names.index("other")] = '"{""username"":""zo\u00eb""}"'
    text = ";".join(names) + "\r\n" + ";".join(values) + "\r\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    rows = rows_from_csv(data)
    assert len(rows) == 1 and rows[0]["id"] == "501"
    assert rows[0]["other"] == '{"username":"zo\u00eb"}'
    assert one(rows[0]).outcome is Outcome.ACCEPTED


def test_utf16_read_as_utf8_by_a_file_reader_is_still_read() -> None:
    """The file reader decodes as UTF-8 with replacement: UTF-16 then arrives with a NUL after
    every ASCII character and its byte-order mark as replacement characters."""
    header, line = _export_lines("\t", "")
    data = (f"\ufeff{header}\r\n{line}\r\n").encode("utf-16-le")
    text = data.decode("utf-8-sig", errors="replace")
    assert "\x00" in text
    rows = rows_from_csv(text)
    assert len(rows) == 1 and one(rows[0]).outcome is Outcome.ACCEPTED
    mojibake = "\u00ef\u00bb\u00bf" + header + "\n" + line + "\n"  # UTF-8 mark read as cp1252
    assert rows_from_csv(mojibake)[0]["id"] == "501"


@pytest.mark.parametrize(
    ("eventname", "other"),
    [
        ("\\mod_quiz\\event\\quiz_repaginated", '{"slotsperpage":2}'),
        ("\\mod_quiz\\event\\quiz_grade_updated", '{"oldgrade":10,"newgrade":87.5}'),
        ("\\mod_quiz\\event\\slot_mark_updated", '{"quizid":4,"previousmaxmark":1,"newmaxmark":2}'),
    ],
)  # fmt: skip
def test_quiz_editing_logged_at_the_participating_level_is_staff(
    eventname: str, other: str
) -> None:
    unit = one(row(eventname=eventname, edulevel=2, crud="u", objecttable="quiz", other=other))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "staff_action")
    assert "87.5" not in serialised([unit])


@pytest.mark.parametrize(
    "eventname",
    [
        "\\core\\event\\competency_user_competency_viewed_in_course",
        "\\core\\event\\competency_user_competency_viewed_in_plan",
        "\\core\\event\\competency_user_competency_viewed",
        "\\mod_h5pactivity\\event\\report_viewed",
    ],
)
def test_looking_at_competency_ratings_and_h5p_scores_is_not_engagement(eventname: str) -> None:
    unit = one(row(eventname=eventname, edulevel=2, relateduserid=5))
    assert (unit.outcome, unit.reason) == (Outcome.IGNORED, "not_engagement")


def test_a_malformed_marker_never_echoes_foreign_text() -> None:
    unit = one({MALFORMED: "jo.bloggs@example.ac.uk scored 87.5"})
    assert unit.reason == "invalid_value"
    assert "87.5" not in unit.detail and "jo.bloggs" not in unit.detail


# -- properties -----------------------------------------------------------------------------

_SAFE = "abcdefghiklmnopqrstuvwxyz0123456789_\\"  # no j, capitals, dots or @: planted never made
_NAMES = [
    "\\core\\event\\course_viewed",
    "\\core\\event\\user_loggedin",
    "\\core\\event\\user_graded",
    "\\core\\event\\role_assigned",
    "\\mod_quiz\\event\\attempt_submitted",
    "\\mod_quiz\\event\\attempt_started",
    "\\mod_feedback\\event\\response_submitted",
    "\\mod_page\\event\\course_module_viewed",
    "\\local_x\\event\\result_recorded",
]
_WHOLE = st.one_of(
    st.integers(-20, 10**12),
    st.integers(-20, 10**12).map(str),
    st.sampled_from([None, "", "NULL", "\\N", 1.0, 2.5, True, "x"]),
)
_OTHER = st.sampled_from(
    [
        None,
        "N;",
        json.dumps({"finalgrade": 87.5, "grade": "A-"}),
        'a:2:{s:10:"finalgrade";d:87.5;s:5:"grade";s:2:"A-";}',
        json.dumps({"username": "jbloggs", "email": "jo.bloggs@example.ac.uk"}),
        json.dumps({"fullname": "Jo Bloggs", "note": "87.5 A-"}),
        '{"broken": "Jo Bloggs 87.5',
        {"nested": ["A-", {"value": 87.5}]},
        json.dumps({"Jo Bloggs": {"grade": "A-"}, "203.0.113.77": [{"score": 87.5}]}),
    ]
)
_ROWS = st.fixed_dictionaries(
    {},
    optional={
        "id": _WHOLE,
        "eventname": st.one_of(st.sampled_from(_NAMES), st.text(_SAFE, max_size=30)),
        "edulevel": st.one_of(st.integers(-1, 3), st.sampled_from(["0", "1", "2", None])),
        "userid": _WHOLE,
        "courseid": _WHOLE,
        "relateduserid": _WHOLE,
        "realuserid": st.sampled_from([None, "", "NULL", 0, "0", 2]),
        "anonymous": st.sampled_from([0, 1, "0", "1", None]),
        "objecttable": st.one_of(st.none(), st.text(_SAFE, max_size=12)),
        "objectid": _WHOLE,
        "contextlevel": st.sampled_from([10, 50, 70, "70", None]),
        "contextinstanceid": _WHOLE,
        "timecreated": _WHOLE,
        "origin": st.sampled_from(["web", "ws", "cli", "restore", None]),
        "other": _OTHER,
        "ip": st.just("203.0.113.77"),
        "username": st.just("jbloggs"),
        "email": st.just("jo.bloggs@example.ac.uk"),
        "fullname": st.just("Jo Bloggs"),
        "jo.bloggs@example.ac.uk": st.sampled_from([{"score": 87.5}, "A-", None]),
    },
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_ROWS, max_size=6))
def test_rows_give_one_outcome_each_and_leak_nothing(rows: list[dict[str, Any]]) -> None:
    units = adapt(rows, CTX)
    assert [u.index for u in units] == list(range(len(rows)))
    for unit in units:
        assert unit.outcome in set(Outcome)
        if unit.outcome is Outcome.ACCEPTED:
            validates(unit)
        else:
            assert unit.reason and unit.event is None
    text = serialised(units)
    for secret in PLANTED:
        assert secret not in text


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_any_json_value_never_raises(payload: Any) -> None:
    units = adapt(payload, CTX)
    assert len(units) == (len(payload) if isinstance(payload, list) else 1)
    assert [u.index for u in units] == list(range(len(units)))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_any_text_reads_as_csv_without_raising(text: str) -> None:
    units = adapt(rows_from_csv(text), CTX)
    assert all(u.outcome in set(Outcome) for u in units)


# -- docs -----------------------------------------------------------------------------------


def test_the_docs_page_names_every_outcome_reason_the_adapter_gives() -> None:
    text = DOCS.read_text(encoding="utf-8")
    reasons = {"system_action", "impersonation", "staff_action", "survey", "not_engagement"}
    reasons |= {"assessment_data", "forbidden_field", "missing_field", "wrong_type"}
    reasons |= {"invalid_value", "not_an_object", "moodle:<userid>", "(platform)"}
    assert {r for r in reasons if f"`{r}`" not in text} == set()
