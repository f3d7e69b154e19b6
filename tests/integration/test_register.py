"""Register corrections and de-duplication as users see them, on the running product.

One deployment (worker, notifier, local notification service) serves this module. Over three
weeks: S-COR misses every session, is prompted about it, and days later the register is
corrected; S-DAY's absences are corrected the same afternoon; S-TS, S-X and S-CF test
de-duplication by feed and event id. A correction arriving after the grace period is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.common import Source
from stream.dev.stack import Endpoints
from tests.integration.harness import TERM, Pipeline, mark, swipe, vle, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAYS = 23
BACKGROUND = [f"S-BG{i:02d}" for i in range(24)]  # keep the VLE feed moving on every partition
ACTIVE = ["S-COR", "S-DAY", "S-TS", "S-X", "S-CF"]  # online and on campus every day
RULE = "attendance_below_50pct_14d"
CORRECTED_ON = 16  # S-COR's register is corrected on day 16, for every session before it
SESSION_AT = timedelta(minutes=10)


def session_mark(student: str, day: int, status: str, n: str = "") -> dict[str, Any]:
    """A mark for ``student``'s 10:00 session on ``day`` (event id ``a-<student>-<day><n>``)."""
    event = mark(day, student, TERM + timedelta(days=day) + SESSION_AT, status)
    event.update(event_id=f"{event['event_id']}{n}", session_id=f"CS101-{day}")
    return event


def weekdays(days: range) -> list[int]:
    return [d for d in days if (TERM + timedelta(days=d)).weekday() < 5]


def s_day_fixed() -> list[int]:
    """The days whose absent mark for S-DAY is corrected to present the same afternoon."""
    return [d for n, d in enumerate(weekdays(range(DAYS))) if n % 3 != 2]


def scenario() -> dict[Source, list[dict[str, Any]]]:
    events: dict[Source, list[dict[str, Any]]] = {s: [] for s in Source}
    for day in range(DAYS):
        at = TERM + timedelta(days=day)
        for student in BACKGROUND + ACTIVE:
            events[Source.VLE].append(vle(day, student, at + timedelta(hours=10)))
        for student in ACTIVE:
            events[Source.SWIPE].append(swipe(day, student, at))
    for day in weekdays(range(DAYS)):
        events[Source.ATTENDANCE].append(session_mark("S-COR", day, "absent"))
        # S-DAY: marked absent by the card reader, two sessions in three put right by the tutor
        # that afternoon. Counted twice, about 7 of 17 is below half; replaced, 7 of 10 is not.
        events[Source.ATTENDANCE].append(session_mark("S-DAY", day, "absent"))
        if day in s_day_fixed():
            fixed = session_mark("S-DAY", day, "present", "-fix")
            fixed["occurred_at"] = (TERM + timedelta(days=day, hours=5)).isoformat()
            events[Source.ATTENDANCE].append(fixed)
    for day in weekdays(range(CORRECTED_ON)):  # made on day 16, sent within the grace period
        fixed = session_mark("S-COR", day, "present", "-fix")
        fixed["occurred_at"] = (TERM + timedelta(days=CORRECTED_ON, hours=3)).isoformat()
        events[Source.ATTENDANCE].append(fixed)
    # S-TS: a VLE event sent again a day later with a new timestamp (same feed, same id).
    events[Source.VLE].append(vle(3, "S-TS", TERM + timedelta(days=4, hours=10)))
    # S-X: a swipe that reuses one of the student's VLE event ids (another feed).
    reused = swipe(2, "S-X", TERM + timedelta(days=2, hours=1))
    reused["event_id"] = "v-S-X-2"
    events[Source.SWIPE].append(reused)
    # S-CF: a VLE event id sent again saying something else (another course).
    events[Source.VLE].append(vle(4, "S-CF", TERM + timedelta(days=4, hours=10), course="MA200"))
    return events


@pytest.fixture(scope="module")
def deployed(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Publish the three weeks, wait for every decision, then send one correction too late."""
    pipeline = Pipeline(
        stack,
        "reg" + Path(tmp_path_factory.mktemp("reg")).name[-6:],
        tmp_path_factory.mktemp("run"),
    )
    try:
        # Corrections are recognised while the marks they correct are remembered: one to two
        # generations of ENGAGEMENT_DEDUP_TTL_DAYS; day 0's mark is corrected on day 16.
        pipeline.env["ENGAGEMENT_DEDUP_TTL_DAYS"] = "28"
        pipeline.start("receiver", "receiver")
        pipeline.start("worker", "worker")
        pipeline.start("notifier", "notifier")
        pipeline.publish_all(scenario())
        last_closed = (TERM + timedelta(days=DAYS - 1, hours=10 - 48)).date().toordinal() - 1
        wait_for("every closed day decided", lambda: pipeline.decided_through() >= last_closed)

        def corrected_on_record() -> bool:
            return any(r["reason"] == "data_corrected" for r in pipeline.records("S-COR"))

        wait_for("the correction's record", corrected_on_record, 60)
        late = session_mark("S-COR", 17, "present", "-late")  # day 17, sent on day 22: too late
        pipeline.publish(Source.ATTENDANCE, [late], size=1)
        wait_for(
            "the late correction's dead letter",
            lambda: pipeline.metric("engagement_late_events_total") >= 1 or None,
        )
        yield pipeline
    finally:
        pipeline.stop()


def attendance_records(pipeline: Pipeline, student: str) -> list[dict[str, Any]]:
    return [r for r in pipeline.records(student) if r["rule_id"] == RULE]


def test_a_correction_after_the_decision_is_on_record_and_nothing_is_sent_again(
    deployed: Pipeline,
) -> None:
    records = attendance_records(deployed, "S-COR")
    assert sorted((r["outcome"], r["reason"]) for r in records) == [
        ("delivered", "delivered"),
        ("suppressed", "data_corrected"),
    ]
    sent, corrected = sorted(records, key=lambda r: str(r["outcome"]))
    assert re.search(r"you attended 0 of the \d+ timetabled sessions", sent["message"]["body"])
    assert "later corrected" in corrected["summary"]
    assert sent["nudge_id"] in corrected["detail"]
    assert "absent → present" in corrected["detail"]
    assert "would not have decided so" in corrected["detail"]
    deliveries = [r for r in deployed.received() if r["payload"]["student_id"] == "S-COR"]
    assert [r["payload"]["rule_id"] for r in deliveries] == [RULE]  # sent once, not again


def test_a_same_day_correction_replaces_the_mark_so_nobody_is_nudged_for_it(
    deployed: Pipeline,
) -> None:
    assert attendance_records(deployed, "S-DAY") == []
    state = deployed.state("S-DAY")
    marks = [state[f] for f in sorted(state) if f.startswith("a:")]
    assert len(marks) == len(weekdays(range(DAYS)))
    fixed = len(s_day_fixed())
    assert marks.count("1,0,0,0") == fixed and marks.count("0,0,1,0") == len(marks) - fixed
    assert all(r["payload"]["student_id"] != "S-DAY" for r in deployed.received())


def test_a_correction_after_the_grace_period_is_dead_lettered_and_the_mark_stands(
    deployed: Pipeline,
) -> None:
    letters = deployed.topic(deployed.settings.topics.deadletter, expected=2)
    late = [x for x in letters if x["reason"] == "correction_too_late"]
    assert [x["event_id"] for x in late] == [deployed.seen_id("a-S-COR-17-late", "S-COR")]
    assert "S-COR" not in json.dumps(late)  # the id held the student's: hashed
    assert "corrects an earlier mark" in late[0]["detail"]
    assert "48 h" in late[0]["detail"]
    day17 = (TERM + timedelta(days=17)).date().toordinal()
    assert deployed.state("S-COR")[f"a:{day17}"] == "0,0,1,0"


def test_de_duplication_is_by_feed_and_event_id_whatever_the_timestamp(
    deployed: Pipeline,
) -> None:
    assert deployed.counts("S-TS") == {"vle": DAYS, "swipe": DAYS}  # resent: counted once
    assert deployed.counts("S-X") == {"vle": DAYS, "swipe": DAYS + 1}  # another feed: twice
    assert deployed.counts("S-CF") == {"vle": DAYS, "swipe": DAYS}
    letters = deployed.topic(deployed.settings.topics.deadletter, expected=2)
    conflicts = [x for x in letters if x["reason"] == "duplicate_conflict"]
    assert [x["event_id"] for x in conflicts] == [deployed.seen_id("v-S-CF-4", "S-CF")]
    assert "said something else" in conflicts[0]["detail"]
    assert sorted(x["reason"] for x in letters) == ["correction_too_late", "duplicate_conflict"]
