"""A broker that lost its log is noticed: offset regression, without a broker (fakes only).

Before, the state script skipped every signals message at or below the offset stored with the
state, so after the broker restarted empty everything published afterwards was skipped as
"already applied", silently. The end-to-end proof (a real broker restarted empty under a
running worker) is tests/integration/test_broker_reset.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from agents.context import Context
from agents.ingest import RawIngest
from agents.offsets import REDELIVERY_MAX, OffsetGuard, find_regression
from ops.health import PartitionLag
from ops.metrics import create_metrics
from schemas.rules import load_rules
from schemas.settings import ENV, load_settings
from stream.app import create_app
from stream.cli.offsets import describe

KEY = "k" * 24
GROUP = "t.engagement-worker"
SIGNALS = "t.engagement.signals"


# --- the decision -------------------------------------------------------------------------


def test_new_messages_are_never_doubted() -> None:
    assert find_regression(0, stored=None, first=0, last=5, highwater=6) is None
    assert find_regression(0, stored=41, first=42, last=50, highwater=51) is None


def test_a_redelivery_is_not_a_regression() -> None:
    # After a crash the consumer reads again from its last commit, a little below what the
    # state applied: the log still reaches past the stored offset.
    assert find_regression(0, stored=200, first=180, last=230, highwater=231) is None
    assert find_regression(0, stored=200, first=180, last=190, highwater=None) is None


def test_a_log_that_ends_at_or_before_the_stored_offset_is_a_new_log() -> None:
    found = find_regression(2, stored=200, first=0, last=4, highwater=5)
    assert found is not None and found.log_is_shorter
    assert found.resume_after("earliest") == -1  # the new log from its first message
    assert found.resume_after("latest") == 4  # what is in it counts as already applied
    # The exact edge: a log whose end is the stored offset lacks the message applied there.
    assert find_regression(2, stored=200, first=150, last=199, highwater=200) is not None


def test_a_message_further_back_than_any_redelivery_is_a_new_log() -> None:
    stored = 5 * REDELIVERY_MAX
    found = find_regression(1, stored=stored, first=10, last=20, highwater=stored + 100)
    assert found is not None and not found.log_is_shorter
    assert find_regression(1, stored, stored - REDELIVERY_MAX, stored, stored + 1) is None


def test_the_log_line_names_the_evidence_and_what_happens_next() -> None:
    found = find_regression(3, stored=200, first=0, last=4, highwater=5)
    assert found is not None
    line = found.describe(GROUP, SIGNALS, "earliest")
    assert "partition 3" in line and GROUP in line and SIGNALS in line
    assert "log ends at offset 5" in line and "up to offset 200" in line
    assert "ENGAGEMENT_OFFSET_REGRESSION=earliest" in line


# --- the guard in front of the state script --------------------------------------------------


class FakeStore:
    """The two offset methods of EngagementStore, over a dict."""

    def __init__(self, offsets: dict[int, int]) -> None:
        self.group = GROUP
        self.offsets = dict(offsets)
        self.reads: list[list[int]] = []

    async def applied_offsets(self, partitions: Iterable[int] | None = None) -> dict[int, int]:
        wanted = list(partitions) if partitions is not None else list(self.offsets)
        self.reads.append(wanted)
        return {p: self.offsets[p] for p in wanted if p in self.offsets}

    async def set_applied_offsets(self, offsets: Mapping[int, int | None]) -> None:
        for partition, offset in offsets.items():
            if offset is None or offset < 0:
                self.offsets.pop(partition, None)
            else:
                self.offsets[partition] = offset


class FakeConsumer:
    def __init__(self, highwaters: dict[int, int]) -> None:
        self.highwaters = highwaters

    def highwater(self, tp: Any) -> int | None:
        return self.highwaters.get(tp.partition)


def context(resume: str = "earliest", highwaters: dict[int, int] | None = None) -> Context:
    settings = load_settings(pseudonym_key=KEY, topic_prefix="t.", offset_regression=resume)
    ctx = Context(
        settings=settings,
        kafka_bootstrap="127.0.0.1:9",
        redis_url="redis://127.0.0.1:9/0",
        rules=load_rules(settings.rules_file),
        metrics=create_metrics(),
    )
    ctx.app = SimpleNamespace(consumer=FakeConsumer(highwaters or {}))
    return ctx


def regressions(ctx: Context, partition: int, group: str = GROUP, topic: str = SIGNALS) -> float:
    labels = {"group": group, "topic": topic, "partition": str(partition)}
    value = ctx.metrics.registry.get_sample_value("engagement_offset_regressions_total", labels)
    assert value is not None, "the series is created at zero when the process starts"
    return value


def batch(partition: int, offsets: range) -> list[tuple[int, int, bytes]]:
    return [(partition, offset, b"{}") for offset in offsets]


def test_a_new_log_is_reported_counted_and_applied_from_its_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = context(highwaters={0: 3, 1: 250})
    store = FakeStore({0: 200, 1: 200})
    guard = OffsetGuard(ctx, store)  # type: ignore[arg-type]  # the store's offset methods
    assert regressions(ctx, 0) == 0
    with caplog.at_level(logging.WARNING, logger="engagement.offsets"):
        found = asyncio.run(guard.check(batch(0, range(3)) + batch(1, range(201, 203))))
    assert [r.partition for r in found] == [0]
    assert 0 not in store.offsets  # forgotten: the state script applies offsets 0, 1, 2
    assert store.offsets[1] == 200  # the partition that carries on is untouched
    assert regressions(ctx, 0) == 1 and regressions(ctx, 1) == 0
    assert "offset regression" in caplog.text and "partition 0" in caplog.text


def test_later_batches_that_carry_on_ask_nothing_of_redis() -> None:
    ctx = context(highwaters={0: 3})
    store = FakeStore({0: 200})
    guard = OffsetGuard(ctx, store)  # type: ignore[arg-type]
    asyncio.run(guard.check(batch(0, range(3))))
    asyncio.run(guard.check(batch(0, range(3, 9))))
    assert store.reads == [[0]]
    assert regressions(ctx, 0) == 1  # counted once


def test_a_redelivered_batch_is_left_to_the_state_script_to_skip() -> None:
    ctx = context(highwaters={0: 260})
    store = FakeStore({0: 200})
    guard = OffsetGuard(ctx, store)  # type: ignore[arg-type]
    assert asyncio.run(guard.check(batch(0, range(190, 215)))) == []
    assert store.offsets == {0: 200}
    assert regressions(ctx, 0) == 0


def test_latest_takes_the_restored_log_as_applied_and_resumes_after_its_end() -> None:
    ctx = context("latest", highwaters={0: 40})
    store = FakeStore({0: 200})
    guard = OffsetGuard(ctx, store)  # type: ignore[arg-type]
    asyncio.run(guard.check(batch(0, range(30, 40))))
    assert store.offsets == {0: 39}


def test_the_setting_defaults_to_the_start_of_the_new_log() -> None:
    assert load_settings(pseudonym_key=KEY).offset_regression == "earliest"


# --- the raw topics' ingest -------------------------------------------------------------------


class FakeRawConsumer:
    """What RawIngest asks of its aiokafka consumer."""

    def __init__(self, highwater: int, position: int) -> None:
        self._highwater = highwater
        self._position = position
        self.rewound: list[Any] = []

    def assignment(self) -> set[Any]:
        return {TP_VLE}

    def highwater(self, tp: Any) -> int:
        return self._highwater

    async def position(self, tp: Any) -> int:
        return self._position

    async def seek_to_beginning(self, *partitions: Any) -> None:
        self.rewound.extend(partitions)
        self._position = 0


def ingest(consumer: FakeRawConsumer) -> tuple[RawIngest, Context]:
    ctx = context()
    ctx.app = SimpleNamespace(on_rebalance_complete=SimpleNamespace(connect=lambda f: None))
    raw = RawIngest(ctx, store=None)  # type: ignore[arg-type]  # not reached here
    raw.consumer = consumer  # type: ignore[assignment]
    return raw, ctx


TP_VLE = TopicPartition("t.engagement.raw.vle", 2)


def test_the_ingest_reports_a_raw_log_that_starts_again_below_its_commit() -> None:
    raw, ctx = ingest(FakeRawConsumer(highwater=5, position=0))
    raw.committed_offsets[TP_VLE] = 120
    raw.notice_regressions({TP_VLE: [SimpleNamespace(offset=0)]})  # type: ignore[dict-item]
    group = "t.engagement-ingest"
    assert regressions(ctx, 2, group, TP_VLE.topic) == 1
    assert TP_VLE not in raw.committed_offsets  # said once, and no lag computed from it
    raw.notice_regressions({TP_VLE: [SimpleNamespace(offset=1)]})  # type: ignore[dict-item]
    assert regressions(ctx, 2, group, TP_VLE.topic) == 1


def test_the_ingest_reads_a_new_raw_log_from_its_start_instead_of_waiting_past_its_end() -> None:
    consumer = FakeRawConsumer(highwater=5, position=120)
    raw, ctx = ingest(consumer)
    asyncio.run(raw.rewind_past_end())
    assert consumer.rewound == [TP_VLE]
    assert regressions(ctx, 2, "t.engagement-ingest", TP_VLE.topic) == 1
    asyncio.run(raw.rewind_past_end())  # now at the start of the new log: nothing more
    assert regressions(ctx, 2, "t.engagement-ingest", TP_VLE.topic) == 1


# --- `engagement offsets show` ---------------------------------------------------------------


def test_show_marks_a_partition_whose_stored_offset_is_ahead_of_the_log() -> None:
    assert "AHEAD of the log by 196" in describe(0, 200, 5)
    assert "AHEAD" not in describe(1, 200, 201)
    assert "nothing applied" in describe(2, None, 0)
    assert "log end unknown" in describe(3, 7, None)


# --- /readyz ---------------------------------------------------------------------------------


class FakeKafkaClient:
    """aiokafka's client as the app's producer holds it: a fresh metadata answer per call."""

    def __init__(self, topics: set[str]) -> None:
        self.topics = topics

    async def fetch_all_metadata(self) -> Any:
        return SimpleNamespace(topics=lambda: set(self.topics))


def readyz(monkeypatch: pytest.MonkeyPatch, present: set[str] | None) -> tuple[int, Any]:
    """The worker's real /readyz handler; every check but the topics answered in-process."""
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)

    async def answers(*args: object, **kwargs: object) -> None:
        return None

    monkeypatch.setattr("stream.app.redis_answers", answers)
    monkeypatch.setattr("stream.app.broker_answers", answers)
    monkeypatch.setattr(
        "stream.app.faust_partitions", lambda app, group: [PartitionLag(group, SIGNALS, 0, 9, 9)]
    )
    settings = load_settings(pseudonym_key=KEY)
    app, _ = create_app(
        settings, "worker", kafka_bootstrap="127.0.0.1:9", redis_url="redis://127.0.0.1:9/0"
    )
    try:
        topics = set(settings.topics.all) if present is None else present
        app.producer._producer = SimpleNamespace(client=FakeKafkaClient(topics))
        response = app.loop.run_until_complete(app.web.views["/readyz"].get(None))
    finally:
        app.loop.close()
        asyncio.set_event_loop(None)
    return response.status, json.loads(response.body)


def test_readyz_fails_while_a_required_topic_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    status, body = readyz(monkeypatch, {"engagement.nudges", "engagement.deadletter"})
    assert status == 503 and body["ready"] is False
    assert "engagement.signals" in body["checks"]["topics"]
    assert "engagement.raw.vle" in body["checks"]["topics"]


def test_readyz_fails_when_the_broker_has_no_topics_at_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    status, body = readyz(monkeypatch, set())  # a broker that restarted empty
    assert status == 503
    assert "missing" in body["checks"]["topics"]


def test_readyz_is_ready_once_every_topic_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    status, body = readyz(monkeypatch, None)
    assert body["checks"]["topics"] == "ok"
    assert status == 200 and body["ready"] is True
