"""The publisher against the embedded broker: topics are created and envelopes arrive intact;
`engagement publish` gives every line of a file an outcome, and its summary adds up."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer

from schemas.common import Source
from schemas.events import Envelope
from schemas.topics import TopicNames
from stream.dev.stack import Endpoints
from stream.publisher import Publisher
from stream.topics import ensure_topics
from tests.integration.harness import TERM, Pipeline, swipe, wait_for

pytestmark = pytest.mark.integration

START = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)


def swipes(count: int) -> list[dict[str, object]]:
    """``count`` valid swipes spread over 50 students."""
    return [
        {
            "event_id": f"it-{n}",
            "student_id": f"S{n % 50:07d}",
            "occurred_at": (START + timedelta(seconds=n)).isoformat(),
            "reader_id": f"TUR-DOOR-{n % 3 + 1}",
            "building": "Turing",
            "direction": "in" if n % 2 else "out",
        }
        for n in range(count)
    ]


def consume(bootstrap: str, topic: str, expected: int, deadline_s: float = 60.0) -> list[Any]:
    """Read ``topic`` from the start until ``expected`` records arrived or the deadline passed."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    records: list[Any] = []
    deadline = time.monotonic() + deadline_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def test_thousand_events_in_envelopes_of_100_arrive_intact(stack: Endpoints, prefix: str) -> None:
    topics = TopicNames(f"{prefix}.")
    ensure_topics(stack.kafka_bootstrap, topics, partitions=3)
    events = swipes(1000)
    sent_after_ms = time.time() * 1000
    with Publisher(stack.kafka_bootstrap, topics=topics, envelope_size=100) as publisher:
        report = publisher.publish(Source.SWIPE, events)
    assert (report.sent, report.messages, report.refused) == (1000, 10, 0)

    records = consume(stack.kafka_bootstrap, topics.raw(Source.SWIPE), expected=10)
    assert len(records) == 10
    received: list[dict[str, object]] = []
    # One feed's envelopes share a key, so they keep their order on one raw partition.
    assert {record.key for record in records} == {b"engagement-publisher/swipe"}
    assert len({record.partition for record in records}) == 1
    for record in records:
        # CreateTime = when the publisher sent it: the worker's latency figures rely on it.
        assert sent_after_ms - 5_000 <= record.timestamp <= time.time() * 1000 + 5_000
        envelope = Envelope.model_validate_json(record.value)
        assert envelope.source is Source.SWIPE
        assert len(envelope.events) == 100
        received.extend(json.loads(record.value)["events"])
    assert sorted(received, key=lambda e: int(str(e["event_id"])[3:])) == events


def test_single_events_are_keyed_by_student(stack: Endpoints, prefix: str) -> None:
    topics = TopicNames(f"{prefix}.")
    ensure_topics(stack.kafka_bootstrap, topics, partitions=3)
    events = swipes(20)
    with Publisher(stack.kafka_bootstrap, topics=topics, envelope_size=1) as publisher:
        report = publisher.publish(Source.SWIPE, events)
        publisher.publish_raw(Source.SWIPE, b"{broken")
    assert report.messages == 20
    records = consume(stack.kafka_bootstrap, topics.raw(Source.SWIPE), expected=21)
    assert len(records) == 21
    plain = [r for r in records if r.value != b"{broken"]
    assert sorted((r.key, json.loads(r.value)["event_id"]) for r in plain) == sorted(
        (str(e["student_id"]).encode(), e["event_id"]) for e in events
    )
    by_student: dict[bytes, set[int]] = {}
    for record in plain:
        by_student.setdefault(record.key, set()).add(record.partition)
    assert all(len(partitions) == 1 for partitions in by_student.values())


def test_ensure_topics_is_idempotent_and_safe_to_race(stack: Endpoints, prefix: str) -> None:
    topics = TopicNames(f"{prefix}.")
    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [
            pool.submit(ensure_topics, stack.kafka_bootstrap, topics, 2) for _ in range(3)
        ]:
            future.result()
    ensure_topics(stack.kafka_bootstrap, topics, 2)
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    try:
        assert set(topics.all) <= set(admin.list_topics())
    finally:
        admin.close()


# -- issue 12, item 7: every line has an outcome, and the summary adds up -------------------

CSV_FIELDS = ["event_id", "student_id", "occurred_at", "reader_id", "building", "direction", "note"]


def test_21_swipes_after_a_csv_quote_that_never_closes_are_counted_by_the_worker(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    # The run that reported "refused 0" while 21 valid swipes were never counted: a note on
    # line 3 opens a quote that never closes, and the csv module read the remaining 21 lines
    # as the rest of that one cell.
    pipeline.start("worker", "worker")
    rows = []
    for n in range(23):
        event = swipe(n, "S-CSV", TERM + timedelta(minutes=n))
        event["note"] = '"door wedged open' if n == 1 else "ok"
        rows.append(",".join(str(event[name]) for name in CSV_FIELDS))
    path = tmp_path / "turnstile-export.csv"
    path.write_text(",".join(CSV_FIELDS) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")

    out = pipeline.cli("publish", str(path), "--source", "swipe").splitlines()

    assert out[:2] == [
        "sent 22 events in 1 messages; refused 1; skipped 1",
        "read 24 lines = 22 sent + 1 refused + 1 skipped (1 header)",
    ]
    assert any(line.startswith("  - line 3 refused (invalid_value)") for line in out)
    wait_for("22 swipes counted", lambda: pipeline.counts("S-CSV") == {"swipe": 22} or None)


def test_hostile_lines_are_refused_one_by_one_and_the_rest_arrives(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    good = [swipe(n, "S-HOSTILE", TERM + timedelta(minutes=n)) for n in range(6)]
    text = [json.dumps(event).encode() for event in good]
    bad_id = json.dumps({**good[0], "event_id": "\ud800"}).encode()  # "\ud800" as JSON escapes
    lines = [
        text[0],
        b"[" * 50_000 + b"]" * 50_000,  # the publisher died here (RecursionError)
        text[1],
        bad_id,  # and here (UnicodeEncodeError)
        text[2],
        b'{"event_id": "caf\xe9"}',  # not UTF-8
        b"",
        text[3][:-1] + b', "blob": "' + b"x" * 10_000_000 + b'"}',  # a 10 MB line
        text[4],
        text[4][:-1] + b', "n": NaN}',
        b"[1, 2]",
        text[5],
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    out = pipeline.cli("publish", str(path), "--source", "swipe").splitlines()

    assert out[:2] == [
        "sent 5 events in 1 messages; refused 6; skipped 1",
        "read 12 lines = 5 sent + 6 refused + 1 skipped (1 blank)",
    ]
    assert [line.split(":")[0] for line in out if line.startswith("  - ")] == [
        "  - line 2 refused (oversized)",
        "  - line 4 refused (invalid_value)",
        "  - line 6 refused (malformed_json)",
        "  - line 8 refused (oversized)",
        "  - line 10 refused (invalid_value)",
        "  - line 11 refused (not_an_object)",
    ]
    (envelope,) = pipeline.topic(pipeline.settings.topics.raw(Source.SWIPE), expected=1)
    assert envelope["events"] == [good[n] for n in (0, 1, 2, 4, 5)]
