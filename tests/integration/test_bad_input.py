"""Bad input against the running worker (issue 12, items 3, 4 and 9).

Implausible times are dead-lettered and never move state; one bad event in an envelope costs
that event only; and no dead letter, log line or metric of the worker holds an identifier
planted in bad input.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from agents.model.eventtime import local_day
from schemas.common import Source
from schemas.keys import Keys
from stream.dev.stack import Endpoints
from tests.integration.harness import TERM, Pipeline, swipe, vle, wait_for
from tests.unit.test_redaction import CORPUS, EMAIL, STUDENT_ID, leaks

pytestmark = pytest.mark.integration

TERM_START = "2026-09-28"  # TERM (5 October) is the second week


@pytest.fixture
def worker(stack: Endpoints, prefix: str, tmp_path: Path) -> Iterator[Pipeline]:
    """A fresh deployment with a term start, and its worker running."""
    pipeline = Pipeline(stack, prefix, tmp_path)
    pipeline.env["ENGAGEMENT_TERM_START"] = TERM_START
    try:
        pipeline.start("worker", "worker")
        yield pipeline
    finally:
        pipeline.stop()


def dead_letters(pipeline: Pipeline, expected: int, timeout: float = 60) -> list[dict[str, Any]]:
    """The dead letters, once there are ``expected`` of them or the deadline has passed (the
    caller's assertions then say what came instead)."""
    topic = pipeline.settings.topics.deadletter
    deadline = time.monotonic() + timeout
    found = pipeline.topic(topic, expected, timeout=2)
    while len(found) < expected and time.monotonic() < deadline:
        found = pipeline.topic(topic, expected, timeout=2)
    return found


def produce(pipeline: Pipeline, source: Source, payloads: list[bytes]) -> None:
    """Send bytes as they are, up to 16 MiB a message (the publisher stops at 1 MiB)."""
    producer = KafkaProducer(
        bootstrap_servers=pipeline.stack.kafka_bootstrap,
        acks="all",
        max_request_size=16 * 1024 * 1024,
    )
    try:
        for payload in payloads:
            producer.send(pipeline.settings.topics.raw(source), payload)
        producer.flush()
    finally:
        producer.close()


def test_implausible_times_are_dead_lettered_and_never_move_the_first_day(
    worker: Pipeline,
) -> None:
    implausible = {
        "S-EPOCH": "1970-01-01T00:00:00Z",
        "S-YEAR1": "0001-01-01T00:00:00+01:00",
        "S-9999": "9999-12-31T23:59:59Z",
        "S-BEFORE-TERM": "2026-09-01T09:00:00+01:00",  # before 28 Sep less 48 h
    }
    payloads = [
        json.dumps(vle(0, student, TERM) | {"occurred_at": when}).encode()
        for student, when in implausible.items()
    ]
    produce(worker, Source.VLE, payloads)  # first: in a fresh deployment they would set the day
    worker.publish(Source.VLE, [vle(0, "S-OK", TERM)], size=1)
    wait_for("the plausible event", lambda: worker.counts("S-OK") == {"vle": 1} or None)
    letters = dead_letters(worker, len(implausible))
    assert sorted(letter["reason"] for letter in letters) == ["implausible_time"] * 4
    for letter in letters:
        assert "fix the time" in letter["detail"]
    assert any("ENGAGEMENT_TERM_START" in letter["detail"] for letter in letters)
    for student in implausible:
        assert worker.state(student) == {}
    group = f"{worker.prefix}.engagement-worker"
    first = worker.redis.get(Keys(worker.prefix).first_day(group))
    assert first is not None and int(first) == local_day(TERM, worker.settings.zone)
    counted = worker.metrics().get("engagement_deadlettered_total{reason=implausible_time}")
    assert counted == len(implausible)


def test_one_bad_event_in_an_envelope_costs_that_event_only(worker: Pipeline) -> None:
    def good(n: int) -> bytes:
        return json.dumps(swipe(n, f"S-ENV-{n}", TERM + timedelta(minutes=n))).encode()

    def bad(n: int, raw: bytes) -> bytes:
        return good(n)[:-1] + b", " + raw + b"}"

    items = [
        good(0),
        good(1).replace(b'"s-S-ENV-1-1"', b'"s-\\ud800"'),  # a lone surrogate in the id
        good(2),
        good(3).replace(b"2026-10-05", b"0001-01-01"),  # year 0001
        good(4),
        bad(5, b'"battery": NaN'),
        good(6),
        bad(7, b'"x": ' + b"[" * 1000 + b"]" * 1000),  # 1,000 levels of nesting
        good(8),
        bad(9, b'"note": "' + b"x" * 10_000_000 + b'"'),  # a 10 MB string
        good(10),
        bad(11, b'"x": "\xff\xfe"'),  # bytes that are not UTF-8
        good(12),
    ]
    envelope = b'{"schema_version": 1, "source": "swipe", "events": [' + b", ".join(items) + b"]}"
    produce(worker, Source.SWIPE, [envelope])
    letters = dead_letters(worker, 6)
    assert sorted((letter["index"], letter["reason"]) for letter in letters) == [
        (1, "invalid_value"),
        (3, "implausible_time"),
        (5, "malformed_json"),
        (7, "oversized"),
        (9, "oversized"),
        (11, "malformed_json"),
    ]
    for n in (0, 2, 4, 6, 8, 10, 12):
        wait_for(f"S-ENV-{n}", lambda n=n: worker.counts(f"S-ENV-{n}") == {"swipe": 1} or None)
    assert worker.metric("engagement_events_received_total") == len(items)


def test_identifiers_planted_in_bad_input_reach_no_dead_letter_log_line_or_metric(
    worker: Pipeline,
) -> None:
    # The corpus's own future-dated event is dated for the unit tests' clock; this one is
    # ahead of the worker's.
    ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    future = swipe(1, STUDENT_ID, TERM) | {"event_id": f"{EMAIL}-1", "occurred_at": ahead}
    corpus = [(w, s, raw) for w, s, raw in CORPUS if w != "future dated"]
    corpus.append(("future dated", Source.SWIPE, json.dumps(future).encode()))
    by_source: dict[Source, list[bytes]] = {}
    for _, source, raw in corpus:
        by_source.setdefault(source, []).append(raw)
    for source, payloads in by_source.items():
        produce(worker, source, payloads)
    # Every corpus message is refused at least once (envelopes once per bad event).
    letters = dead_letters(worker, len(corpus))
    assert len(letters) >= len(corpus)
    # Everything published before has been decoded and applied. (After the corpus's one good
    # event, a swipe on 24 October: earlier barrier events would be too late.)
    worker.barrier("after-corpus", TERM + timedelta(days=28))
    letters = worker.topic(worker.settings.topics.deadletter, len(letters) + 1, timeout=3)
    assert len(letters) >= len(corpus)
    for letter in letters:
        assert leaks(json.dumps(letter, ensure_ascii=False)) == [], letter
    samples = worker.metrics()
    assert samples, "the worker's /metrics answered nothing"
    assert leaks("\n".join(f"{name} {value}" for name, value in samples.items())) == []
    log = worker.children[0].log_path.read_text(encoding="utf-8", errors="replace")
    assert log.strip(), "the worker wrote no log at all"
    assert leaks(log) == []
    signals = worker.topic(worker.settings.topics.signals, 1, timeout=3)
    assert leaks(json.dumps(signals)) == []
    assert {letter["reason"] for letter in letters} >= {
        "malformed_json", "invalid_value", "oversized", "implausible_time", "not_an_object",
        "assessment_data", "forbidden_field", "unknown_schema_version", "future_dated",
    }  # fmt: skip
