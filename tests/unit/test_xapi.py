"""The intervention export without a broker: records to JSON lines and Jisc xAPI case statements."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.interventions import (
    InterventionRecord,
    Outcome,
    RenderedMessage,
    StaffAction,
    Stage,
)
from schemas.nudges import Channel, Route, Tier
from sinks.export import records as export_module
from sinks.export.records import ExportReport, write_exports
from sinks.export.xapi import (
    EXT_INTERVENTION,
    EXT_RECIPE_CAT,
    EXT_VERSION,
    TYPE_CASE,
    TYPE_NOTE,
    VERB_CLOSE,
    VERB_CREATE,
    VERB_UPDATE,
    case_statements,
)
from sinks.stores.interventions import record_id

FIXTURES = Path(__file__).parent.parent / "fixtures" / "jisc-xapi-case"
DOCS = Path(__file__).parent.parent.parent / "docs" / "export.md"
HOME = "https://vle.example.ac.uk"
PSEUDONYM = "p_" + "3f" * 16
STUDENT = "S7654321"
NUDGE = "n_" + "ab" * 16
WHEN = datetime(2026, 10, 12, 9, 30, tzinfo=timezone(timedelta(hours=1)))
REQUIRED = ("id", "actor", "verb", "object", "timestamp", "context")


def make(
    outcome: Outcome = Outcome.DELIVERED,
    stage: Stage = Stage.NOTIFIER,
    *,
    nudge_id: str = NUDGE,
    decided_at: datetime = WHEN,
    **changes: Any,
) -> InterventionRecord:
    """A record as the notifier (or a later stage) writes it."""
    fields: dict[str, Any] = {
        "record_id": record_id(nudge_id, stage.value),
        "nudge_id": nudge_id,
        "pseudonym": PSEUDONYM,
        "rule_id": "vle-inactivity",
        "rule_version": 2,
        "tier": Tier.PROMPT,
        "stage": stage,
        "outcome": outcome,
        "reason": "sent",
        "detail": "An automated prompt was sent by email.",
        "channels": (Channel.EMAIL,),
        "decided_at": decided_at,
        "summary": "We have not seen you online since Monday 5 October 2026: that is 7 days.",
    }
    fields.update(changes)
    return InterventionRecord(**fields)


def statements_of(
    record: InterventionRecord, student: str | None = STUDENT
) -> list[dict[str, Any]]:
    return case_statements(record, student_id=student, homepage=HOME)


def kinds(statements: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(verb, object type) per statement: the shape an LRS reader sees."""
    return [(s["verb"]["id"], s["object"]["definition"]["type"]) for s in statements]


CREATE = (VERB_CREATE, TYPE_CASE)
NOTE = (VERB_CREATE, TYPE_NOTE)
UPDATE = (VERB_UPDATE, TYPE_CASE)
CLOSE = (VERB_CLOSE, TYPE_CASE)


# The mapping, outcome by outcome -----------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "outcome", "expected"),
    [
        (Stage.NOTIFIER, Outcome.DELIVERED, [CREATE, NOTE, CLOSE]),
        (Stage.NOTIFIER, Outcome.SUPPRESSED, [CREATE, NOTE, CLOSE]),
        (Stage.NOTIFIER, Outcome.FAILED, [CREATE, NOTE, CLOSE]),
        (Stage.NOTIFIER, Outcome.SHADOW, [CREATE, NOTE, CLOSE]),
        (Stage.NOTIFIER, Outcome.DEFERRED, [CREATE, NOTE]),
        (Stage.NOTIFIER, Outcome.QUEUED_FOR_REVIEW, [CREATE, NOTE]),
        (Stage.DEFERRED_DELIVERY, Outcome.DELIVERED, [NOTE, CLOSE]),
        (Stage.DEFERRED_DELIVERY, Outcome.FAILED, [NOTE, CLOSE]),
        (Stage.ESCALATION, Outcome.ESCALATED, [UPDATE, NOTE]),
        (Stage.REVIEW, Outcome.STAFF_DECISION, [NOTE, CLOSE]),
    ],
)
def test_each_outcome_maps_to_the_case_statements_of_its_stage(
    stage: Stage, outcome: Outcome, expected: list[tuple[str, str]]
) -> None:
    extra: dict[str, Any] = {}
    if outcome is Outcome.STAFF_DECISION:
        extra = {"staff_id": "T0042", "action": StaffAction.CONTACTED}
    assert kinds(statements_of(make(outcome, stage, **extra))) == expected


def test_every_statement_of_a_nudge_points_at_one_case() -> None:
    records = [
        make(Outcome.QUEUED_FOR_REVIEW, route=Route.PERSONAL_TUTOR, queue="tutor:T0042"),
        make(Outcome.ESCALATED, Stage.ESCALATION, queue="team:support"),
        make(Outcome.STAFF_DECISION, Stage.REVIEW, staff_id="T0042", action=StaffAction.NO_ACTION),
    ]
    case = f"{HOME}/case/{NUDGE}"
    statements = [s for r in records for s in statements_of(r)]
    for s in statements:
        if s["object"]["definition"]["type"] == TYPE_CASE:
            assert s["object"]["id"] == case
        else:
            assert s["context"]["contextActivities"] == {"parent": [{"id": case}]}
            assert s["object"]["id"].startswith(f"{case}/note/")
    assert sum(s["verb"]["id"] == VERB_CLOSE for s in statements) == 1


def test_the_case_is_created_by_the_system_and_targets_the_student() -> None:
    create = statements_of(make())[0]
    assert create["actor"] == {
        "objectType": "Agent",
        "account": {"name": "engagement-stream", "homePage": HOME},
    }
    extensions = create["context"]["extensions"]
    assert extensions["http://xapi.jisc.ac.uk/case-target"] == {
        "actor": {"objectType": "Agent", "account": {"name": STUDENT, "homePage": HOME}}
    }
    assert extensions["http://xapi.jisc.ac.uk/mode"] == "automated"
    assert extensions["http://xapi.jisc.ac.uk/weighting"] == 1
    assert create["context"]["platform"] == "engagement-stream"


def test_the_note_carries_the_detail_and_the_message_that_was_sent() -> None:
    message = RenderedMessage(channel=Channel.EMAIL, subject="Checking in", body="Hello.\nBye.")
    note = statements_of(make(message=message))[1]
    assert note["result"]["response"] == (
        'An automated prompt was sent by email.\n\nMessage (email), subject "Checking in":\n'
        "Hello.\nBye."
    )
    assert (
        statements_of(make())[1]["result"]["response"] == "An automated prompt was sent by email."
    )


def test_an_escalation_updates_the_case_and_names_the_new_queue() -> None:
    record = make(
        Outcome.ESCALATED,
        Stage.ESCALATION,
        tier=Tier.REFERRAL,
        reason="untouched_48h",
        detail="Nobody picked this up within 48 hours.",
        queue="team:support",
    )
    update, note = statements_of(record)
    assert update["actor"]["account"]["name"] == "engagement-stream"
    assert update["context"]["extensions"]["http://xapi.jisc.ac.uk/weighting"] == 3
    assert update["context"]["extensions"]["http://xapi.jisc.ac.uk/type"] == "escalation"
    assert note["result"]["response"] == (
        "Escalated to the review queue team:support. Nobody picked this up within 48 hours."
    )
    assert note["context"]["extensions"][EXT_INTERVENTION]["queue"] == "team:support"


def test_a_staff_decision_is_a_note_and_a_close_by_that_member_of_staff() -> None:
    record = make(
        Outcome.STAFF_DECISION,
        Stage.REVIEW,
        tier=Tier.REFERRAL,
        route=Route.SUPPORT,
        reason="student_asked_for_help",
        detail="Met the student on 13 October.",
        staff_id="T0042",
        action=StaffAction.REFERRED,
        referred_to="Wellbeing service",
    )
    note, close = statements_of(record)
    staff = {"objectType": "Agent", "account": {"name": "T0042", "homePage": HOME}}
    assert note["actor"] == staff
    assert close["actor"] == staff
    assert note["result"]["response"] == (
        "T0042 referred the student to Wellbeing service (reason: student_asked_for_help). "
        "Met the student on 13 October."
    )
    provenance = note["context"]["extensions"][EXT_INTERVENTION]
    assert provenance["action"] == "referred"
    assert provenance["referred_to"] == "Wellbeing service"
    assert provenance["outcome"] == "staff_decision"


def test_every_statement_says_which_rule_decided_and_when_with_its_offset() -> None:
    for s in statements_of(make()):
        assert s["timestamp"] == "2026-10-12T09:30:00+01:00"
        extensions = s["context"]["extensions"]
        assert extensions[EXT_RECIPE_CAT] == "Case"
        assert extensions[EXT_VERSION] == "1.1"
        provenance = extensions[EXT_INTERVENTION]
        assert (provenance["rule_id"], provenance["rule_version"]) == ("vle-inactivity", 2)
        assert provenance["outcome"] == "delivered"


# Identity ----------------------------------------------------------------------------------


def test_no_pseudonym_reaches_the_statements_when_the_student_is_known() -> None:
    leaky = make(detail=f"Sent to {PSEUDONYM} by email.")
    text = json.dumps(statements_of(leaky))
    assert PSEUDONYM not in text
    assert STUDENT in text
    assert "[pseudonym removed]" in text


def test_without_an_identity_the_pseudonym_is_the_target_under_its_own_home_page() -> None:
    create = statements_of(make(), student=None)[0]
    target = create["context"]["extensions"]["http://xapi.jisc.ac.uk/case-target"]
    assert target["actor"]["account"] == {"name": PSEUDONYM, "homePage": f"{HOME}/pseudonym"}


def test_scores_and_the_explanation_are_not_exported() -> None:
    text = json.dumps(statements_of(make(summary="Your engagement score is 1.2 (low).")))
    assert "1.2" not in text
    assert "score" not in text.lower()


def test_a_homepage_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute http"):
        case_statements(make(), student_id=STUDENT, homepage="vle.example.ac.uk")


# Deterministic ids -------------------------------------------------------------------------


def test_statement_ids_are_stable_and_unique() -> None:
    records = [
        make(),
        make(Outcome.QUEUED_FOR_REVIEW, nudge_id="n_" + "cd" * 16),
        make(Outcome.DELIVERED, Stage.DEFERRED_DELIVERY),
    ]
    first = [s["id"] for r in records for s in statements_of(r)]
    again = [s["id"] for r in records for s in statements_of(r)]
    assert first == again
    assert len(set(first)) == len(first)
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first[0]
    )
    # The id names the statement, not the run: a trailing slash or the identity does not move it.
    other = case_statements(records[0], student_id=None, homepage=HOME + "/")
    assert [s["id"] for s in other] == first[:3]


# The statements have the recipes' shape ----------------------------------------------------

# Exact text repairs for templates that are not valid JSON as published (see the README).
REPAIRS: dict[str, list[tuple[str, str]]] = {
    "case-create-activity-input.json": [
        ("**WEIGHTING**", '"**WEIGHTING**"'),
        ("\n}", "\n}}"),  # one closing brace short
    ],
    "case-update-activity-input.json": [("**WEIGHTING**\n", '"**WEIGHTING**",\n')],
    "case-close-activity-input.json": [('"extensions": {', '"context": {"extensions": {')],
    "note-create-activity-input.json": [],
}


def recipe(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """A fixture template, repaired, parsed and with its placeholders filled."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    for old, new in REPAIRS[name]:
        assert text.count(old) == 1, f"repair {old!r} no longer matches {name}"
        text = text.replace(old, new)
    return fill(json.loads(text), values)


def fill(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {key: fill(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [fill(item, values) for item in node]
    if isinstance(node, str):
        whole = re.fullmatch(r"\*\*([A-Z_]+)\*\*", node)
        if whole:
            return values[whole.group(1)]
        return re.sub(r"\*\*([A-Z_]+)\*\*", lambda m: str(values[m.group(1)]), node)
    return node


def leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every leaf; list items share the path element "[]"."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list):
        for item in node:
            yield from leaves(item, (*path, "[]"))
    else:
        yield path, node


def ours_only(path: tuple[str, ...]) -> bool:
    """Paths the recipes leave out that every statement of ours adds."""
    return (
        path == ("id",)
        or path == ("context", "platform")
        or path[:3] == ("context", "extensions", EXT_INTERVENTION)
    )


def assert_same_shape(statement: dict[str, Any], template: dict[str, Any]) -> None:
    ours = dict(leaves(statement))
    theirs = dict(leaves(template))
    for path, value in theirs.items():
        if path[:2] == ("verb", "display"):  # wording varies across recipes ("crate")
            continue
        assert path in ours, f"missing {path}"
        assert ours[path] == value, f"{path}: {ours[path]!r} != {value!r}"
    extra = [path for path in ours if path not in theirs and not ours_only(path)]
    assert not extra, f"not in the recipe: {extra}"


def test_case_statements_match_the_jisc_recipe_templates() -> None:
    queued = make(Outcome.QUEUED_FOR_REVIEW, tier=Tier.INVITATION, queue="tutor:T0042")
    create, note = statements_of(queued)
    update, _ = statements_of(make(Outcome.ESCALATED, Stage.ESCALATION, tier=Tier.INVITATION))
    staff = make(Outcome.STAFF_DECISION, Stage.REVIEW, staff_id="T0042", action="contacted")
    _, close = statements_of(staff)
    case = f"case/{NUDGE}"
    common = {"HOMEPAGE": HOME, "TIMESTAMP": WHEN.isoformat(), "PLATFORM": "engagement-stream"}
    system = {**common, "TUTOR_ID": "engagement-stream", "OBJECT_ID": case}
    assert_same_shape(
        create,
        recipe(
            "case-create-activity-input.json",
            {**system, "MODE": "automated", "WEIGHTING": 2, "USERNAME": STUDENT},
        ),
    )
    assert_same_shape(
        update,
        recipe("case-update-activity-input.json", {**system, "TYPE": "escalation", "WEIGHTING": 2}),
    )
    assert_same_shape(
        close,
        recipe(
            "case-close-activity-input.json", {**common, "TUTOR_ID": "T0042", "OBJECT_ID": case}
        ),
    )
    assert_same_shape(
        note,
        recipe(
            "note-create-activity-input.json",
            {
                **system,
                "OBJECT_ID": f"{case}/note/{queued.record_id}",
                "PARENT_ID": f"{HOME}/{case}",
                "NOTE": queued.detail,
            },
        ),
    )


# Any record --------------------------------------------------------------------------------

optional_text = st.none() | st.text(min_size=1, max_size=30).map(str.strip).filter(bool)
records = st.builds(
    make,
    outcome=st.sampled_from(Outcome),
    stage=st.sampled_from(Stage),
    nudge_id=st.from_regex(r"n_[0-9a-f]{32}", fullmatch=True),
    decided_at=st.datetimes(
        min_value=datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis bounds must be naive
        max_value=datetime(2040, 1, 1),  # noqa: DTZ001
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=1)), timezone(-timedelta(hours=5))]
        ),
    ),
    tier=st.sampled_from(Tier),
    route=st.sampled_from(Route),
    detail=st.text(min_size=1, max_size=80).map(str.strip).filter(bool),
    channels=st.lists(st.sampled_from(Channel), unique=True, max_size=3).map(tuple),
    message=st.none()
    | st.builds(
        RenderedMessage,
        channel=st.sampled_from(Channel),
        subject=optional_text,
        body=st.text(min_size=1),
    ),
    queue=optional_text,
    staff_id=optional_text,
    action=st.none() | st.sampled_from(StaffAction),
    referred_to=optional_text,
)


@settings(max_examples=200, deadline=None)
@given(record=records, student=st.none() | st.just(STUDENT))
def test_any_record_gives_complete_json_statements_with_aware_timestamps(
    record: InterventionRecord, student: str | None
) -> None:
    statements = statements_of(record, student)
    assert statements
    assert json.loads(json.dumps(statements)) == statements
    for s in statements:
        assert all(s.get(key) for key in REQUIRED), s
        assert s["actor"]["account"]["name"]
        assert s["verb"]["id"] in {VERB_CREATE, VERB_UPDATE, VERB_CLOSE}
        assert datetime.fromisoformat(s["timestamp"]).utcoffset() is not None
        assert datetime.fromisoformat(s["timestamp"]) == record.decided_at
    assert len({s["id"] for s in statements}) == len(statements)
    assert sum(s["verb"]["id"] == VERB_CLOSE for s in statements) <= 1


# The export --------------------------------------------------------------------------------


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_repeated_record_is_exported_once_and_output_is_in_decision_order(tmp_path: Path) -> None:
    early = make(Outcome.QUEUED_FOR_REVIEW, decided_at=WHEN)
    later = make(Outcome.ESCALATED, Stage.ESCALATION, decided_at=WHEN + timedelta(days=2))
    report = write_exports(
        [later, early, later],
        {PSEUDONYM: STUDENT},
        jsonl=tmp_path / "log.jsonl",
        xapi=tmp_path / "xapi.jsonl",
        homepage=HOME,
    )
    assert report == ExportReport(records=2, duplicates_skipped=1, statements=4, without_identity=0)
    rows = lines(tmp_path / "log.jsonl")
    assert [r["record_id"] for r in rows] == [early.record_id, later.record_id]
    assert rows[0]["student_id"] == STUDENT
    assert InterventionRecord.model_validate(rows[0]) == early
    statements = lines(tmp_path / "xapi.jsonl")
    assert kinds(statements) == [CREATE, NOTE, UPDATE, NOTE]
    assert report.summary() == (
        "Exported 2 intervention record(s) and 4 xAPI statement(s); 1 duplicate(s) skipped."
    )


def test_records_without_an_identity_are_counted_and_have_no_student_id(tmp_path: Path) -> None:
    report = write_exports([make()], {}, jsonl=tmp_path / "log.jsonl", xapi=None, homepage=HOME)
    assert report.without_identity == 1
    assert "student_id" not in lines(tmp_path / "log.jsonl")[0]
    assert "1 without a known student id" in report.summary()
    assert not (tmp_path / "xapi.jsonl").exists()


def test_since_is_inclusive_and_until_exclusive(tmp_path: Path) -> None:
    day = timedelta(days=1)
    batch = [make(nudge_id=f"n_{i:032x}", decided_at=WHEN + i * day) for i in range(4)]
    report = write_exports(
        batch,
        {PSEUDONYM: STUDENT},
        jsonl=tmp_path / "log.jsonl",
        xapi=None,
        homepage=HOME,
        since=(WHEN + day).astimezone(UTC),
        until=WHEN + 3 * day,
    )
    assert [r["nudge_id"] for r in lines(tmp_path / "log.jsonl")] == [
        "n_" + f"{i:032x}" for i in (1, 2)
    ]
    assert (report.records, report.outside_window) == (2, 2)


def test_a_naive_bound_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone offset"):
        write_exports(
            [make()],
            {},
            jsonl=tmp_path / "log.jsonl",
            xapi=None,
            homepage=HOME,
            since=datetime(2026, 10, 1),  # noqa: DTZ001 - the mistake under test
        )


def test_re_export_is_byte_identical_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    batch = [
        make(Outcome.QUEUED_FOR_REVIEW, message=None, detail="Queued for the personal tutor. ✓"),
        make(Outcome.STAFF_DECISION, Stage.REVIEW, staff_id="T1", action=StaffAction.CONTACTED),
    ]
    paths = {"jsonl": tmp_path / "out" / "log.jsonl", "xapi": tmp_path / "out" / "xapi.jsonl"}
    write_exports(batch, {PSEUDONYM: STUDENT}, homepage=HOME, **paths)
    first = {name: path.read_bytes() for name, path in paths.items()}
    write_exports(list(reversed(batch)), {PSEUDONYM: STUDENT}, homepage=HOME, **paths)
    assert {name: path.read_bytes() for name, path in paths.items()} == first
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["log.jsonl", "xapi.jsonl"]


def test_a_failed_write_keeps_the_previous_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "xapi.jsonl"
    target.write_text("previous export\n", encoding="utf-8")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(export_module.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_exports([make()], {}, jsonl=None, xapi=target, homepage=HOME)
    assert target.read_text(encoding="utf-8") == "previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["xapi.jsonl"]


# The documentation's example is what the code produces -------------------------------------

DOC_EXAMPLE = make(
    Outcome.DELIVERED,
    message=RenderedMessage(
        channel=Channel.EMAIL,
        subject="Checking in about your studies",
        body="We have not seen you online since Monday 5 October 2026: that is 7 days.",
    ),
)


def test_the_example_in_the_docs_is_what_the_mapping_produces() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert [json.loads(b) for b in blocks] == statements_of(DOC_EXAMPLE)[:2]


def test_a_shadow_decision_is_kept_in_the_jsonl_but_not_sent_to_student_records(
    tmp_path: Path,
) -> None:
    shadow = make(Outcome.SHADOW, nudge_id="n_shadow")
    report = write_exports(
        [make(), shadow],
        {PSEUDONYM: "S1234567"},
        jsonl=tmp_path / "log.jsonl",
        xapi=tmp_path / "xapi.jsonl",
        homepage=HOME,
    )
    assert {row["outcome"] for row in lines(tmp_path / "log.jsonl")} == {"delivered", "shadow"}
    cases = {
        s["object"]["id"] for s in lines(tmp_path / "xapi.jsonl") if "case" in s["object"]["id"]
    }
    assert all("n_shadow" not in case for case in cases)
    assert report.statements == 3  # create, note and close for the delivered prompt only
