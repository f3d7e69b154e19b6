"""Vendor exports through a declarative mapping, against the embedded broker and Redis: a file
from the command line, and a watched folder receiving a file while another is half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.harness import Pipeline, wait_for
from tests.integration.test_ingest import FIXTURES
from tests.unit.test_mapping import HEADER, REGISTER

ROSTER = """\
schema_version = 1
name = "test-roster"
description = "A student-records extract: one row per student"
produces = "roster"

[identity]
column = "Student Number"

[fields]
personal_tutor = "Tutor"
course = "Programme"
sponsored_visa = { column = "Tier 4", map = "yes_no", default = "N" }

[maps.yes_no]
"Y" = "true"
"N" = "false"
"""


def register_export(path: Path, students: list[str], day: int = 5) -> Path:
    """A register export in Windows-1252 with a title line, one mark per student."""
    rows = [
        f"E{day},{s},{day:02d}/10/2026 09:00,{day:02d}/10/2026 10:00,CS101,P,Student"
        for s in students
    ]
    text = "Registers, Zoë's export\n" + HEADER + "\n".join(rows) + "\n"
    path.write_bytes(text.encode("cp1252"))
    return path


def run(pipeline: Pipeline, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env={**os.environ, **pipeline.env},
        cwd=pipeline.workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_register_export_is_published_through_a_mapping(pipeline: Pipeline) -> None:
    pipeline.start("worker", "worker")
    mapping = pipeline.workdir / "register.toml"
    mapping.write_text(REGISTER, encoding="utf-8")
    export = register_export(pipeline.workdir / "marks.csv", ["S-MAP-1", "S-MAP-2"])
    with export.open("ab") as more:
        more.write(b"E5,S-MAP-3,05/10/2026 09:00,05/10/2026 10:00,CS101,Z,Student\n")
        more.write(b"E5,S-MAP-4,05/10/2026 09:00,05/10/2026 10:00,CS101,P,Staff\n")
    report = pipeline.workdir / "units.json"
    done = run(
        pipeline, "publish", str(export), "--mapping", str(mapping), "--report-json", str(report)
    )
    assert done.returncode == 0, done.stderr
    assert "accepted 2, ignored 1, refused 1" in done.stdout
    units = json.loads(report.read_text())["units"]
    assert [(u["line"], u["outcome"]) for u in units] == [
        (3, "accepted"), (4, "accepted"), (5, "refused"), (6, "ignored"),
    ]  # fmt: skip
    for student in ("S-MAP-1", "S-MAP-2"):
        wait_for(
            f"{student}'s mark", lambda s=student: pipeline.counts(s) == {"attendance": 1} or None
        )


def test_a_bad_mapping_or_a_header_without_its_columns_stops_with_what_to_fix(
    pipeline: Pipeline,
) -> None:
    bad = pipeline.workdir / "bad.toml"
    bad.write_text(REGISTER.replace('zone = "Europe/London"', 'zone = "Mars/Olympus"'), "utf-8")
    export = register_export(pipeline.workdir / "marks.csv", ["S1"])
    refused = run(pipeline, "publish", str(export), "--mapping", str(bad))
    assert refused.returncode != 0
    assert f"{bad}:" in refused.stderr and "line 10, time.zone" in refused.stderr
    good = pipeline.workdir / "good.toml"
    good.write_text(REGISTER, encoding="utf-8")
    headless = pipeline.workdir / "headless.csv"
    headless.write_text("title\nEvent ID,Student ID\nE1,S1\n", encoding="utf-8")
    refused = run(pipeline, "publish", str(headless), "--mapping", str(good))
    assert refused.returncode != 0 and "'Start'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_watched_folder_imports_each_file_once_and_leaves_a_half_written_one(
    pipeline: Pipeline,
) -> None:
    pipeline.start("worker", "worker")
    inbox = pipeline.workdir / "inbox"
    inbox.mkdir()
    mapping = pipeline.workdir / "register.toml"
    mapping.write_text(REGISTER, encoding="utf-8")
    register_export(inbox / "monday.csv", ["S-W-1"])
    partial = inbox / "tuesday.csv.part"  # still being copied in
    register_export(partial, ["S-W-2"], day=6)
    log = (pipeline.workdir / "watch.log").open("wb")
    watcher = subprocess.Popen(  # our own command
        [sys.executable, "-m", "stream.cli", "watch", str(inbox), "--mapping", str(mapping),
         "--poll", "0.3"],
        env={**os.environ, **pipeline.env}, cwd=pipeline.workdir,
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for("monday's file in done/", lambda: (inbox / "done" / "monday.csv").exists() or None)
        report = json.loads((inbox / "done" / "monday.csv.report.json").read_text())
        assert [u["outcome"] for u in report["units"]] == ["accepted"]
        assert partial.exists()  # not touched while it is a .part
        time.sleep(1)
        partial.rename(inbox / "tuesday.csv")  # the copy finished
        wait_for(
            "tuesday's file in done/", lambda: (inbox / "done" / "tuesday.csv").exists() or None
        )
        (inbox / "broken.csv").write_text("nothing,here\n1,2\n", encoding="utf-8")
        wait_for(
            "the broken file in failed/", lambda: (inbox / "failed" / "broken.csv").exists() or None
        )
        failed = json.loads((inbox / "failed" / "broken.csv.report.json").read_text())
        assert "lacks the column" in failed["error"]
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        log.close()
    wait_for("monday's mark", lambda: pipeline.counts("S-W-1") == {"attendance": 1} or None)
    wait_for("tuesday's mark", lambda: pipeline.counts("S-W-2") == {"attendance": 1} or None)
    assert sorted(p.name for p in (inbox / "done").iterdir()) == [
        "monday.csv", "monday.csv.report.json", "tuesday.csv", "tuesday.csv.report.json",
    ]  # fmt: skip


def test_a_student_records_extract_becomes_roster_entries(pipeline: Pipeline) -> None:
    pipeline.start("worker", "worker")  # it loads the roster topic into Redis
    mapping = pipeline.workdir / "roster.toml"
    mapping.write_text(ROSTER, encoding="utf-8")
    extract = pipeline.workdir / "students.csv"
    extract.write_text(
        "Student Number,Tutor,Programme,Tier 4\n"
        "S-R-1,T001,BSc Computing,Y\nS-R-2,T002,BA History,\n",
        encoding="utf-8",
    )
    done = run(pipeline, "publish", str(extract), "--mapping", str(mapping))
    assert done.returncode == 0, done.stderr
    assert "accepted 2," in done.stdout
    key = f"{pipeline.prefix}:roster:{pipeline.pseudonym('S-R-1')}"
    stored = wait_for("the roster entry", lambda: pipeline.redis.get(key))
    entry = json.loads(stored)
    assert entry["personal_tutor"] == "T001" and entry["sponsored_visa"] is True


def test_an_export_posted_to_the_ingest_service_gives_what_the_command_line_gives(
    pipeline: Pipeline,
) -> None:
    """POST /import/celcat-register with the preset's own fixture: the same outcome per row as
    `engagement publish --mapping celcat-register`, and the marks counted."""
    from tests.integration.test_ingest import post

    pipeline.start("worker", "worker")
    pipeline.start("ingest", "ingest")
    export = FIXTURES / "sources" / "celcat" / "register-marks.csv"
    report = pipeline.workdir / "units.json"
    done = run(pipeline, "publish", str(export), "--mapping", "celcat-register",
               "--report-json", str(report))  # fmt: skip
    assert done.returncode == 0, done.stderr
    by_cli = [(u["outcome"], u.get("reason")) for u in json.loads(report.read_text())["units"]]
    status, _, reply = post(
        pipeline, "/import/celcat-register?report=units", None, raw=export.read_bytes(),
        headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    assert status == 200, reply
    assert [(u["outcome"], u.get("reason")) for u in reply["units"]] == by_cli
    assert ("accepted", None) in by_cli and any(o == "refused" for o, _ in by_cli)
    for path, headers, code in (
        ("/import/no-such-mapping", {"Content-Type": "text/csv"}, 404),
        ("/import/celcat-register", {"Content-Type": "image/png"}, 415),
        ("/import/..%2Fsecrets", {"Content-Type": "text/csv"}, 404),
    ):
        got, _, _ = post(pipeline, path, None, raw=b"a,b\n", headers=headers)
        assert got == code, path
    got, _, _ = post(pipeline, "/import/celcat-register", None, raw=b"x", token=None)
    assert got == 401
    letters = pipeline.topic(pipeline.settings.topics.deadletter, 1, timeout=30)
    assert all(letter["topic"] == "http /import/celcat-register" for letter in letters)
