"""``engagement bench import``: a register export through a source mapping, end to end.

A CSV export of ``rows`` register marks (local times, a value map for the mark codes, an ignore
rule for staff cards; 1 row in 50 a staff card) is written, then ``engagement publish FILE
--mapping`` imports it into the embedded broker as its own process. Reported: rows per second
from start to the broker's last acknowledgement, and the process's peak memory, which must not
grow with the file (the export is streamed in batches).
"""

from __future__ import annotations

import os
import resource
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas.settings import load_settings
from stream.endpoints import Endpoints
from stream.topics import ensure_topics

MAPPING = """\
schema_version = 1
name = "bench-register"
description = "A register export as a timetabling system's reporting tool writes one"
produces = "attendance"

[time]
zone = "Europe/London"
formats = ["%d/%m/%Y %H:%M"]

[identity]
column = "Student ID"

[fields]
event_id = { template = "reg-{Event ID}-{Student ID}" }
occurred_at = { column = "Start", time = true }
session_id = "Event ID"
module = "Module Code"
expected_start = { column = "Start", time = true }
expected_end = { column = "End", time = true }
status = { column = "Mark", map = "marks" }
capture_method = { value = "register" }

[maps.marks]
"P" = "present"
"L" = "late"
"A" = "absent"
"AA" = "excused"

[[ignore]]
reason = "staff_action"
when = { column = "Card Type", in = ["Staff", "Visitor"] }
"""
_MARKS = ("P", "P", "P", "L", "A", "AA")


def write_export(path: Path, rows: int) -> int:
    """A register export of ``rows`` marks; returns its size in bytes."""
    start = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Event ID,Student ID,Start,End,Module Code,Mark,Card Type\n")
        for n in range(rows):
            when = start + timedelta(hours=n // 3000)
            begins = when.strftime("%d/%m/%Y %H:%M")
            ends = (when + timedelta(hours=1)).strftime("%d/%m/%Y %H:%M")
            card = "Staff" if n % 50 == 0 else "Student"
            out.write(
                f"E{n // 300},S{n % 30_000:07d},{begins},{ends},MOD{n % 40:03d},"
                f"{_MARKS[n % len(_MARKS)]},{card}\n"
            )
    return path.stat().st_size


def import_bench(endpoints: Endpoints, workdir: Path, rows: int) -> dict[str, Any]:
    """Write and import an export of ``rows`` rows; return the figures."""
    workdir = workdir.resolve()
    key = secrets.token_urlsafe(24)
    prefix = f"mb{secrets.token_hex(3)}"
    settings = load_settings(pseudonym_key=key, topic_prefix=f"{prefix}.", key_prefix=prefix)
    ensure_topics(endpoints.kafka_bootstrap, settings.topics, settings.partitions)
    mapping = workdir / "bench-register.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    export = workdir / f"{prefix}-marks.csv"
    size = write_export(export, rows)
    env = {
        **os.environ,
        **endpoints.as_env(),
        "ENGAGEMENT_PSEUDONYM_KEY": key,
        "ENGAGEMENT_TOPIC_PREFIX": f"{prefix}.",
        "ENGAGEMENT_KEY_PREFIX": prefix,
    }
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603  # our own command
        [sys.executable, "-m", "stream.cli", "publish", str(export), "--mapping", str(mapping)],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        msg = f"the import failed:\n{done.stdout}\n{done.stderr}"
        raise RuntimeError(msg)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    export.unlink()
    return {
        "rows": rows,
        "export_mib": size / 1_048_576,
        "seconds": elapsed,
        "rows_per_second": rows / elapsed,
        "peak_rss_mib": peak_kib / 1024,
        "summary": done.stdout.strip().splitlines()[0],
    }
