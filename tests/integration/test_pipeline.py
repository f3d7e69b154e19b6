"""End to end, as users see it: events in, nudges and intervention records out, read back.

One deployment (worker, notifier, local notification service) serves this module; the
scenario below is published once and each test checks one thing a user would notice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from agents.store.register import StudentKeys, student_keys
from schemas.common import Source
from schemas.keys import MEMBERS, family_of
from stream.dev.stack import Endpoints
from tests.integration.harness import TERM, Pipeline, mark, swipe, vle, wait_for

pytestmark = pytest.mark.integration

BACKGROUND = [f"S-BG{i:03d}" for i in range(40)]  # keep the VLE feed moving on every partition
DAYS = 12


def scenario() -> dict[Source, list[dict[str, Any]]]:
    """Who does what over 12 days."""
    events: dict[Source, list[dict[str, Any]]] = {s: [] for s in Source}
    for day in range(DAYS):
        at = TERM + timedelta(days=day)
        for student in [*BACKGROUND, "S-ATT", "S-DUP"]:
            events[Source.VLE].append(vle(day, student, at + timedelta(hours=1)))
        events[Source.SWIPE].append(swipe(day, "S-ATT", at))
    for student in ("S-ABS", "S-OPT"):  # one day on the VLE, then nothing
        events[Source.VLE].append(vle(0, student, TERM + timedelta(hours=2)))
        events[Source.SWIPE].append(swipe(0, student, TERM))
    for n in range(5):  # absent from five sessions in a row
        events[Source.ATTENDANCE].append(mark(n, "S-ATT", TERM + timedelta(days=n), "absent"))
    return events


BAD_INPUTS = {
    "malformed_json": b'{"event_id": "bad-1", "student_id": "S-X1", ',
    "missing_field": json.dumps(
        {
            "event_id": "bad-2",
            "student_id": "S-X2",
            "platform": "moodle",
            "course": "CS101",
            "action": "viewed",
        }
    ).encode(),
    "wrong_type": json.dumps(vle(3, "S-X3", TERM) | {"occurred_at": [2026, 10, 5]}).encode(),
    "oversized": json.dumps(vle(4, "S-X4", TERM) | {"notes": "x" * 40_000}).encode(),
    "assessment_data": json.dumps(vle(5, "S-X5", TERM) | {"grade": "B+"}).encode(),
}


@pytest.fixture(scope="module")
def deployed(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Start the product, publish the scenario, and wait until every nudge is decided."""
    pipeline = Pipeline(
        stack,
        "e2e" + Path(tmp_path_factory.mktemp("e2e")).name[-6:],
        tmp_path_factory.mktemp("run"),
    )
    try:
        # S-ATT is in the third week of term: the 14-day attendance window is covered when the
        # five absences come (a rule decides only on a window that lies in the student's term).
        term = (TERM - timedelta(days=14)).date().isoformat()
        roster = pipeline.workdir / "roster.jsonl"
        roster.write_text(
            json.dumps({"student_id": "S-ATT", "term_starts_on": term}) + "\n", encoding="utf-8"
        )
        pipeline.cli("reference", "roster", str(roster))
        pipeline.start("receiver", "receiver")
        pipeline.start("worker", "worker")
        pipeline.start("notifier", "notifier")
        wait_for(
            "the roster", lambda: pipeline.metric("engagement_reference_records_total") >= 1 or None
        )
        # Published on the preferences topic, as the student app does; the CLI waits until
        # the notifier has applied it.
        applied = pipeline.cli(
            "prefs", "set", "S-OPT", "--opt-out", "all", "--source", "student-app"
        )
        assert "applied:" in applied
        events = scenario()
        pipeline.publish_all(events)
        last_day = TERM + timedelta(days=DAYS - 1)
        dups = [vle(100 + n, "S-DUP", last_day + timedelta(hours=3, minutes=n)) for n in range(3)]
        pipeline.publish(Source.VLE, dups, size=3)
        pipeline.publish(Source.VLE, dups, size=1)  # the scanner retried: same event ids
        pipeline.publish_raw(Source.VLE, BAD_INPUTS.values())
        expected = sum(len(b) for b in events.values()) + len(dups)
        wait_for(
            "every event applied",
            lambda: pipeline.metric("engagement_signals_applied_total") >= expected or None,
        )
        # An event from the first day, arriving once the watermark has reached day 11: too late.
        day11 = int((TERM + timedelta(days=DAYS - 1)).timestamp() * 1000)
        wait_for("the watermark to reach day 11", lambda: pipeline.watermark() >= day11 or None)
        pipeline.publish(Source.VLE, [vle(0, "S-LATE", TERM)])
        pipeline.publish(Source.VLE, [vle(0, "S-AFTER", TERM + timedelta(days=DAYS))], size=1)
        wait_for(
            "the event after the late one",
            lambda: pipeline.metric("engagement_signals_applied_total") >= expected + 1 or None,
        )
        wait_for(
            "three decisions",
            lambda: pipeline.metric("engagement_interventions_total", "notifier") >= 3 or None,
        )
        yield pipeline
    finally:
        pipeline.stop()


def test_absent_and_low_attendance_students_are_nudged_and_told_why(deployed: Pipeline) -> None:
    received = wait_for(
        "two deliveries", lambda: deployed.received() if len(deployed.received()) >= 2 else None
    )
    by_student = {r["payload"]["student_id"]: r["payload"] for r in received}
    assert set(by_student) == {"S-ABS", "S-ATT"}
    absence = by_student["S-ABS"]
    assert absence["rule_id"] == "no_vle_activity_7d"
    assert absence["channel"] == "email"  # the rule's first channel: one message, not two
    assert "7 days" in absence["message"]["body"]
    attendance = by_student["S-ATT"]
    assert attendance["rule_id"] == "attendance_below_50pct_14d"
    assert "you attended 0 of the 4 timetabled sessions" in attendance["message"]["body"]
    assert attendance["channel"] == "email"
    # The service gets what it needs to send the message, not the analytics behind it.
    assert set(attendance) == {
        "schema_version",
        "nudge_id",
        "student_id",
        "channel",
        "tier",
        "rule_id",
        "rule_version",
        "message",
        "created_at",
    }


def test_every_decision_is_recorded_and_readable_by_the_student(deployed: Pipeline) -> None:
    for student, rule in (("S-ABS", "no_vle_activity_7d"), ("S-ATT", "attendance_below_50pct_14d")):
        records = deployed.records(student)
        assert [(r["rule_id"], r["outcome"]) for r in records] == [(rule, "delivered")]
        assert records[0]["summary"]
        assert student not in json.dumps(records)  # the log of record is pseudonymous
    log = deployed.topic(deployed.settings.topics.interventions, expected=3)
    assert sorted(r["outcome"] for r in log) == ["delivered", "delivered", "suppressed"]


def test_an_opted_out_student_gets_a_suppressed_record_and_no_message(deployed: Pipeline) -> None:
    records = deployed.records("S-OPT")
    assert [(r["outcome"], r["reason"]) for r in records] == [("suppressed", "opted_out")]
    assert all(r["payload"]["student_id"] != "S-OPT" for r in deployed.received())
    shown = json.loads(deployed.cli("prefs", "show", "S-OPT"))
    assert shown["preferences"]["opt_out_all"] is True
    assert shown["preferences"]["source"] == "student-app"
    (change,) = shown["history"]
    assert change["source"] == "student-app" and change["opt_out_all"] is True


def test_a_duplicate_event_counts_once(deployed: Pipeline) -> None:
    assert deployed.counts("S-DUP") == {"vle": DAYS + 3}
    assert deployed.metric("engagement_duplicates_total") >= 3


def test_nothing_is_delivered_twice(deployed: Pipeline) -> None:
    received = deployed.received()
    assert received and not any(r["duplicate"] for r in received)
    assert len({r["idempotency_key"] for r in received}) == len(received)


def test_bad_inputs_are_dead_lettered_with_their_reason_and_later_events_still_count(
    deployed: Pipeline,
) -> None:
    letters = deployed.topic(deployed.settings.topics.deadletter, expected=len(BAD_INPUTS) + 1)
    assert sorted(letter["reason"] for letter in letters) == sorted([*BAD_INPUTS, "too_late"])
    for letter in letters:
        assert letter["detail"]
        assert '"student_id": "S-X' not in letter["payload_excerpt"]  # the id is redacted
    assert deployed.counts("S-AFTER") == {"vle": 1}
    assert deployed.counts("S-LATE") == {}  # not counted: reported instead
    late = next(letter for letter in letters if letter["reason"] == "too_late")
    # The event id holds the student's: the worker only ever saw its keyed hash.
    assert late["event_id"].startswith("h_") and "S-LATE" not in json.dumps(late)
    assert "48 h" in late["detail"]
    assert deployed.metric("engagement_late_events_total") == 1
    assert deployed.counts("S-ATT") == {"vle": DAYS, "swipe": DAYS, "attendance": 5}


def test_a_file_is_published_from_the_command_line_with_its_bad_line_reported(
    deployed: Pipeline, tmp_path: Path
) -> None:
    at = TERM + timedelta(days=DAYS)
    lines = [json.dumps(vle(n, "S-FILE", at + timedelta(minutes=n))) for n in range(3)]
    lines.insert(1, '{"event_id": "broken", ')
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = deployed.cli("publish", str(path), "--source", "vle")
    assert "sent 3 events" in report and "refused 1" in report
    assert "line 2" in report and "malformed_json" in report
    wait_for("the file's events", lambda: deployed.counts("S-FILE") == {"vle": 3} or None)


def _keys(pipeline: Pipeline) -> list[str]:
    """Every key of this deployment (other tests share the Redis under other prefixes)."""
    return sorted(
        k.decode() for k in pipeline.redis.scan_iter(match=f"{pipeline.prefix}:*", count=1000)
    )


def test_every_key_in_redis_is_declared_in_the_key_register(deployed: Pipeline) -> None:
    keys = _keys(deployed)
    families = {k: family_of(k, deployed.prefix) for k in keys}
    assert [k for k, f in families.items() if f is None] == []
    seen = {f.name for f in families.values() if f is not None}
    # The run wrote state, de-duplication, progress, preferences and the log of record.
    assert {"state", "seen", "members", "offsets", "identity", "interventions"} <= seen
    assert {"preferences", "preference_history", "recorded", "outbox"} & seen


def test_the_register_finds_every_key_about_a_student(deployed: Pipeline) -> None:
    keys = _keys(deployed)

    async def about(pseudonym: str) -> StudentKeys:
        client = aioredis.Redis.from_url(deployed.stack.redis_url)
        try:
            return await student_keys(client, deployed.prefix, pseudonym)
        finally:
            await client.aclose()

    for student in ("S-ATT", "S-OPT", "S-ABS", "S-DUP"):
        pseudonym = deployed.pseudonym(student)
        found = asyncio.run(about(pseudonym))
        named = {k for k in keys if pseudonym in k}
        assert named, student
        assert named <= set(found.own), student
        assert any(family_of(k, deployed.prefix) is MEMBERS for k in found.shared), student
    opted_out = asyncio.run(about(deployed.pseudonym("S-OPT")))
    assert f"{deployed.prefix}:prefs:{deployed.pseudonym('S-OPT')}" in opted_out.own
