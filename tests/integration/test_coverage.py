"""Enough evidence, on the running worker: windows count from the roster's term start.

Two students miss every session from the first day of data. For one, the roster says term
started that day: the 14-day attendance rule waits for day 14 of term instead of prompting on
day 4. For the other, the roster says term started two weeks earlier (a returning student): the
window is already covered, and the prompt comes on the fourth missed session.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.common import Source
from tests.integration.harness import TERM, Pipeline, mark, vle, wait_for

pytestmark = pytest.mark.integration

BACKGROUND = [f"S-BG{i:03d}" for i in range(24)]  # keep the VLE feed moving on every partition
DAYS = 18
NEW, RETURNING = "S-NEW", "S-RET"
FIRST = TERM.date()


def day(n: int) -> date:
    return FIRST + timedelta(days=n)


def scenario() -> dict[Source, list[dict[str, Any]]]:
    """Everyone online every day; the two students absent from every weekday session."""
    events: dict[Source, list[dict[str, Any]]] = {Source.VLE: [], Source.ATTENDANCE: []}
    for n in range(DAYS):
        at = TERM + timedelta(days=n)
        for student in [*BACKGROUND, NEW, RETURNING]:
            events[Source.VLE].append(vle(n, student, at + timedelta(hours=1)))
    for n in [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]:  # weekdays of the first two weeks
        for student in (NEW, RETURNING):
            events[Source.ATTENDANCE].append(mark(n, student, TERM + timedelta(days=n), "absent"))
    return events


def test_the_attendance_rule_waits_for_the_term_the_roster_gives(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    roster = [
        {"student_id": NEW, "modules": ["CS101"], "term_starts_on": day(0).isoformat()},
        {"student_id": RETURNING, "modules": ["CS101"], "term_starts_on": day(-14).isoformat()},
    ]
    path = tmp_path / "roster.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in roster), encoding="utf-8")
    pipeline.cli("reference", "roster", str(path))
    pipeline.start("worker", "worker")
    wait_for(
        "the roster",
        lambda: pipeline.metric("engagement_reference_records_total") >= len(roster) or None,
    )
    pipeline.publish_all(scenario())
    wait_for(
        "day 14 of term decided",
        lambda: pipeline.decided_through() >= day(13).toordinal() or None,
        120,
    )
    nudges = pipeline.topic(pipeline.settings.topics.nudges, expected=4, timeout=10)
    by_student: dict[str, dict[str, dict[str, Any]]] = {}
    for nudge in nudges:
        by_student.setdefault(nudge["pseudonym"], {})[nudge["rule_id"]] = nudge
    assert set(by_student) == {pipeline.pseudonym(NEW), pipeline.pseudonym(RETURNING)}
    # Term started on the first absence: nothing until the 14 days are there, and the 28-day
    # rule not yet at all.
    (new,) = by_student[pipeline.pseudonym(NEW)].values()
    assert new["rule_id"] == "attendance_below_50pct_14d"
    assert new["explanation"]["window_start"] == day(0).isoformat()
    assert new["explanation"]["window_end"] == day(13).isoformat()
    assert "you attended 0 of the 10 timetabled sessions" in new["explanation"]["summary"]
    assert "over 14 days falls below 50%" in new["explanation"]["summary"]

    # Term started two weeks before the first absence: the fourth one is enough, and the
    # 28-day window is covered on day 14 of the data (and a week after the prompt, with the
    # score still very low, the personal tutor is invited too).
    returning = by_student[pipeline.pseudonym(RETURNING)]
    assert set(returning) == {
        "attendance_below_50pct_14d",
        "attendance_below_50pct_28d",
        "prompt_not_recovered_7d",
    }
    prompt, invitation = (
        returning["attendance_below_50pct_14d"],
        returning["attendance_below_50pct_28d"],
    )
    assert prompt["explanation"]["window_end"] == day(3).isoformat()
    assert "you attended 0 of the 4 timetabled sessions" in prompt["explanation"]["summary"]
    assert invitation["explanation"]["window_start"] == day(-14).isoformat()
    assert invitation["explanation"]["window_end"] == day(13).isoformat()
    assert "below 50% over 28 days" in invitation["explanation"]["summary"]
