"""``engagement bench import``: a register export through a source mapping, end to end.

A CSV export of ``rows`` register marks — or of ``size_bytes`` bytes, written as a stream, for
the 1 GB case — is written (local times, a value map for the mark codes, an ignore rule for
staff cards; 1 row in 50 a staff card), then ``engagement publish FILE --mapping`` imports it
into the embedded broker as its own process. Reported: rows per second from the process's start
to the broker's last acknowledgement, and the same after its start-up (timed with a one-row
export first); the process's CPU time per row after start-up (all its threads, user and system:
on two cores shared with the broker, CPU per row is what bounds the rate); and its peak memory,
which must not grow with the file (the export is streamed in batches). The run is checked:
every row counted as the export says (accepted, or ignored as a staff card) and the broker
holding the envelopes.
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


def write_export(path: Path, rows: int | None = None, size_bytes: int | None = None) -> int:
    """A register export of ``rows`` marks, or of as many as make ``size_bytes`` bytes, written
    a block of rows at a time (never whole in memory); returns how many rows it holds."""
    start = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
    limit = rows if rows is not None else 1 << 62
    budget = size_bytes if size_bytes is not None else 1 << 62
    written = 0
    n = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        header = "Event ID,Student ID,Start,End,Module Code,Mark,Card Type\n"
        out.write(header)
        written += len(header)
        while n < limit and written < budget:
            # Hours within ~6 weeks of the start, over and over: a longer run of local times
            # would reach the hour the clocks skip in March, which the mapping refuses.
            when = start + timedelta(hours=n // 3000 % 1000)
            begins = when.strftime("%d/%m/%Y %H:%M")
            ends = (when + timedelta(hours=1)).strftime("%d/%m/%Y %H:%M")
            block = []
            for m in range(n, min(n + 3000 - n % 3000, limit)):  # one hour's marks
                card = "Staff" if m % 50 == 0 else "Student"
                block.append(
                    f"E{m // 300},S{m % 30_000:07d},{begins},{ends},MOD{m % 40:03d},"
                    f"{_MARKS[m % len(_MARKS)]},{card}\n"
                )
                written += len(block[-1])
                if written >= budget:
                    break
            out.write("".join(block))
            n += len(block)
    return n


def _publish(
    export: Path, mapping: Path, env: dict[str, str], workdir: Path
) -> tuple[str, float, float]:
    """``engagement publish`` of one export as its own process: its summary, seconds and CPU
    seconds (user and system, all its threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # only children that have ended
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
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        msg = f"the import failed:\n{done.stdout}\n{done.stderr}"
        raise RuntimeError(msg)
    return done.stdout.strip().splitlines()[0], elapsed, cpu


def _messages(endpoints: Endpoints, topic: str) -> int:
    """Messages on ``topic`` (the sum of its partitions' end offsets)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=endpoints.kafka_bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def import_bench(
    endpoints: Endpoints, workdir: Path, rows: int, size_bytes: int | None = None
) -> dict[str, Any]:
    """Write and import an export of ``rows`` rows (or of ``size_bytes`` bytes); return the
    figures. Raises RuntimeError when the import does not count every row as it should."""
    workdir = workdir.resolve()
    key = secrets.token_urlsafe(24)
    prefix = f"mb{secrets.token_hex(3)}"
    settings = load_settings(pseudonym_key=key, topic_prefix=f"{prefix}.", key_prefix=prefix)
    ensure_topics(endpoints.kafka_bootstrap, settings.topics, settings.partitions)
    mapping = workdir / "bench-register.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    env = {
        **os.environ,
        **endpoints.as_env(),
        "ENGAGEMENT_PSEUDONYM_KEY": key,
        "ENGAGEMENT_TOPIC_PREFIX": f"{prefix}.",
        "ENGAGEMENT_KEY_PREFIX": prefix,
    }
    one = workdir / f"{prefix}-one.csv"
    write_export(one, rows=2)  # a staff card and a mark: start-up, connecting, one send
    _, startup, startup_cpu = _publish(one, mapping, env, workdir)
    one.unlink()
    export = workdir / f"{prefix}-marks.csv"
    count = write_export(export, rows=None if size_bytes else rows, size_bytes=size_bytes)
    size = export.stat().st_size
    try:
        summary, elapsed, cpu = _publish(export, mapping, env, workdir)
    finally:
        export.unlink()
    staff = (count + 49) // 50
    expected = f"read {count} units: accepted {count - staff}, ignored {staff}, refused 0"
    if summary != expected:
        msg = f"the import did not count the rows as the export holds them: {summary}"
        raise RuntimeError(msg)
    messages = _messages(endpoints, settings.topics.raw("attendance"))
    if messages < (count - staff) / 500:
        msg = f"the broker holds {messages} messages for {count - staff} events"
        raise RuntimeError(msg)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "rows": count,
        "export_mib": size / 1_048_576,
        "seconds": elapsed,
        "rows_per_second": count / elapsed,
        "startup_seconds": startup,
        "rows_per_second_after_startup": count / max(elapsed - startup, 1e-9),
        "cpu_seconds": cpu,
        "startup_cpu_seconds": startup_cpu,
        "cpu_us_per_row": (cpu - startup_cpu) / max(count, 1) * 1e6,
        "broker_messages": messages,
        "peak_rss_mib": peak_kib / 1024,
        "summary": summary,
    }
