"""End to end from the institution's own exports: Quercus, CELCAT and Paxton files in, a nudge
and its intervention record out, through the real worker and notifier.

The files are in ``tests/fixtures/sources/e2e/`` (written from the vendors' documentation, as
the presets' own fixtures are; see SOURCES.md there). Three students on the same course, term
started two weeks before the first register:

- ``21009001`` is marked absent (``A``) at the four CS101 sessions and has no swipe (only a
  denied one): the attendance prompt, delivered and recorded;
- ``21009002`` is marked present (``P``) and swipes into the Turing Building each morning:
  nothing; the door name becomes the reader map's building, and the one reader the map lacks
  keeps its door name and is counted in the import's report;
- ``21009003`` is absent too, but a Quercus status report says she interrupted her studies
  before the window: the nudge is suppressed by the exemption, recorded, never sent.

The VLE feed of the rest of the cohort (published directly) keeps every signals partition
moving, so the days close.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from schemas.common import Source
from tests.integration.harness import TERM, Pipeline, vle, wait_for

pytestmark = pytest.mark.integration

FILES = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "e2e"
ABSENT, PRESENT, INTERRUPTED = "21009001", "21009002", "21009003"
BACKGROUND = [f"S-BG{i:03d}" for i in range(24)]
DAYS = 12  # day 3 is decided once the watermark is past it by the late grace (7 days here)


def day(n: int) -> date:
    return TERM.date() + timedelta(days=n)


def engagement(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    """``engagement ARGS`` against this deployment, as an operator runs it."""
    return subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "stream.cli", *args],
        env={**os.environ, **pipeline.env},
        cwd=pipeline.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def imported(pipeline: Pipeline, name: str, mapping: str) -> list[dict[str, object]]:
    """``engagement publish FILE --mapping NAME``; the per-row report's units."""
    report = pipeline.workdir / f"{name}.report.json"
    done = engagement(pipeline, "publish", str(FILES / name), "--mapping", mapping,
                      "--report-json", str(report))  # fmt: skip
    assert done.returncode == 0, done.stderr
    units: list[dict[str, object]] = json.loads(report.read_text())["units"]
    return units


def test_register_and_door_exports_lead_to_a_nudge_and_its_record(pipeline: Pipeline) -> None:
    pipeline.env["ENGAGEMENT_LATE_GRACE_HOURS"] = "168"  # the exports come before the VLE days
    pipeline.start("receiver", "receiver")
    pipeline.start("worker", "worker")
    pipeline.start("notifier", "notifier")

    # Reference data first: the reader map, the roster and the status changes.
    loaded = engagement(pipeline, "reference", "readers", str(FILES / "readers.jsonl"))
    assert loaded.returncode == 0 and "sent 2 records" in loaded.stdout, loaded.stderr
    roster = imported(pipeline, "students.csv", "quercus-students")
    assert [u["outcome"] for u in roster] == ["accepted"] * 3
    changes = imported(pipeline, "status-changes.csv", "quercus-status-changes")
    assert [(u["outcome"], u.get("reason")) for u in changes] == [
        ("ignored", "not_engagement"), ("accepted", None),
    ]  # fmt: skip
    readers = f"{pipeline.prefix}:readers"
    wait_for("the reader map", lambda: pipeline.redis.hlen(readers) == 2 or None)
    wait_for(
        "the roster and the exemption",
        lambda: pipeline.metric("engagement_reference_records_total") >= 6 or None,
    )

    # The door log through the watcher, the register from the command line.
    inbox = pipeline.workdir / "paxton"
    inbox.mkdir()
    (inbox / "net2-events.csv").write_bytes((FILES / "net2-events.csv").read_bytes())
    watched = engagement(pipeline, "watch", str(inbox), "--mapping", "paxton-net2-events",
                         "--poll", "0.2", "--once")  # fmt: skip
    assert watched.returncode == 0 and "imported 1 file(s)" in watched.stdout, watched.stderr
    doors = json.loads((inbox / "done" / "net2-events.csv.report.json").read_text())["units"]
    assert [(u["line"], u["outcome"], u.get("reason")) for u in doors] == [
        (2, "accepted", None), (3, "accepted", None), (4, "accepted", None),
        (5, "accepted", None), (6, "ignored", "staff_action"), (7, "ignored", "not_engagement"),
        (8, "ignored", "not_engagement"), (9, "accepted", "unmapped_reader"),
    ]  # fmt: skip
    marks = imported(pipeline, "register-marks.csv", "celcat-register")
    assert [u["outcome"] for u in marks] == ["accepted"] * 12

    # The rest of the cohort online every day (and the three students too).
    pipeline.publish_all(
        {
            Source.VLE: [
                vle(n, student, TERM + timedelta(days=n, hours=3))
                for n in range(DAYS)
                for student in [*BACKGROUND, ABSENT, PRESENT, INTERRUPTED]
            ]
        }
    )
    wait_for("day 3 decided", lambda: pipeline.decided_through() >= day(3).toordinal() or None, 180)

    # What each student's record says, and what was sent.
    absent = wait_for("the absent student's record", lambda: pipeline.records(ABSENT), 60)
    assert [(r["rule_id"], r["outcome"]) for r in absent] == [
        ("attendance_below_50pct_14d", "delivered"),
    ]
    assert ABSENT not in json.dumps(absent)  # the log of record is pseudonymous
    interrupted = wait_for(
        "the interrupted student's record", lambda: pipeline.records(INTERRUPTED)
    )
    assert [(r["rule_id"], r["outcome"], r["reason"]) for r in interrupted] == [
        ("attendance_below_50pct_14d", "suppressed", "exemption"),
    ]
    received = [r["payload"] for r in pipeline.received()]
    assert [p["student_id"] for p in received] == [ABSENT]
    assert "you attended 0 of the 4 timetabled sessions" in received[0]["message"]["body"]
    assert pipeline.records(PRESENT) == []

    # The swipes counted for the present student only, at the map's building.
    assert pipeline.counts(PRESENT) == {"attendance": 4, "swipe": 5, "vle": DAYS}
    assert "swipe" not in pipeline.counts(ABSENT)
    places: set[str] = set()
    for n in range(5):
        hours = pipeline.redis.hkeys(f"{pipeline.prefix}:act:swipe:{day(n).toordinal()}")
        places.update(h.decode().rpartition("|")[0] for h in hours)
    assert places == {"Turing Building", "Rosalind Hall Main Door In"}

    # A reader taken out of the map (a tombstone) is gone from Redis.
    gone = pipeline.workdir / "gone.jsonl"
    gone.write_text(json.dumps({"delete": "Library Turnstile In"}) + "\n", encoding="utf-8")
    deleted = engagement(pipeline, "reference", "readers", str(gone))
    assert deleted.returncode == 0 and "1 deletions" in deleted.stdout, deleted.stderr
    wait_for("the reader deleted", lambda: pipeline.redis.hlen(readers) == 1 or None)
    assert pipeline.redis.hexists(readers, "Turing Building Main Entrance In")
