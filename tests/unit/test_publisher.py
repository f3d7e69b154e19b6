"""Publisher without a broker: validation, refusal reasons, envelope packing and file reading."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import stream.publisher.producer as publisher_module
from schemas.common import Reason, Source, classify_validation_error
from schemas.events import CardSwipe, Envelope, VleActivity
from schemas.topics import TopicNames
from stream.publisher import (
    MAX_EVENT_BYTES,
    Checked,
    Publisher,
    PublishError,
    PublishReport,
    Refusal,
    Unreadable,
    check_event,
    pack_events,
    publish_file,
    read_file,
)

T0 = datetime(2026, 10, 5, 9, 0, tzinfo=timezone(timedelta(hours=1)))


def swipe(n: int, **changes: object) -> dict[str, object]:
    """A valid card swipe numbered ``n``, with ``changes`` applied (None deletes a field)."""
    event: dict[str, object] = {
        "event_id": f"e-{n}",
        "student_id": f"S{n % 7:07d}",
        "occurred_at": (T0 + timedelta(seconds=n)).isoformat(),
        "reader_id": "TUR-DOOR-1",
        "building": "Turing",
        "direction": "in",
    }
    for key, value in changes.items():
        if value is None:
            del event[key]
        else:
            event[key] = value
    return event


def vle(n: int, **changes: object) -> dict[str, object]:
    """A valid VLE action numbered ``n``."""
    event: dict[str, object] = {
        "event_id": f"v-{n}",
        "student_id": "S0000001",
        "occurred_at": T0.isoformat(),
        "platform": "moodle",
        "course": "CS1010",
        "action": "viewed",
        "resource": "CS1010/week-1/slides.pdf",
    }
    event.update(changes)
    return event


def envelopes(messages: list[tuple[bytes | None, bytes]]) -> list[dict[str, Any]]:
    """Decode envelope messages, checking each against the worker's Envelope model."""
    decoded = []
    for key, value in messages:
        assert key is None
        Envelope.model_validate_json(value)
        decoded.append(json.loads(value))
    return decoded


# -- packing ------------------------------------------------------------------------------


def test_events_are_packed_into_envelopes_of_the_requested_size() -> None:
    events = [swipe(n) for n in range(1050)]
    report = PublishReport()
    messages = list(pack_events(Source.SWIPE, events, report, envelope_size=500))
    decoded = envelopes(messages)
    assert [len(envelope["events"]) for envelope in decoded] == [500, 500, 50]
    assert (report.sent, report.messages, report.refused) == (1050, 3, 0)
    first = decoded[0]
    assert first["schema_version"] == 1
    assert first["source"] == "swipe"
    sent_at = datetime.fromisoformat(first["sent_at"])
    assert sent_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - sent_at) < timedelta(minutes=1)
    # The events travel exactly as the caller gave them, in order.
    assert [event for envelope in decoded for event in envelope["events"]] == events


def test_envelope_size_one_sends_plain_events_keyed_by_student() -> None:
    events = [swipe(n) for n in range(5)]
    report = PublishReport()
    messages = list(pack_events("swipe", events, report, envelope_size=1))
    assert report.messages == report.sent == 5
    for (key, value), event in zip(messages, events, strict=True):
        assert key == str(event["student_id"]).encode()
        assert json.loads(value) == event
        CardSwipe.model_validate_json(value)


def test_key_is_the_validated_student_id() -> None:
    (message,) = pack_events(
        "swipe", [swipe(1, student_id="  S1  ")], PublishReport(), envelope_size=1
    )
    assert message[0] == b"S1"


def test_datetimes_are_sent_as_iso_strings_and_enums_as_values() -> None:
    event = swipe(1, occurred_at=T0)
    event["schema_version"] = 1
    (message,) = pack_events(Source.SWIPE, [event], PublishReport(), envelope_size=1)
    assert json.loads(message[1])["occurred_at"] == "2026-10-05T09:00:00+01:00"
    event = vle(1, course=Source.VLE)
    (message,) = pack_events(Source.VLE, [event], PublishReport(), envelope_size=1)
    assert json.loads(message[1])["course"] == "vle"


def test_an_envelope_is_cut_early_rather_than_exceed_the_message_limit() -> None:
    events = [vle(n, resource="r" * 250) for n in range(40)]
    size = len(json.dumps(events[0], separators=(",", ":")))
    report = PublishReport()
    messages = list(
        pack_events(Source.VLE, events, report, envelope_size=500, max_message_bytes=10 * size)
    )
    counts = [len(envelope["events"]) for envelope in envelopes(messages)]
    assert sum(counts) == 40
    assert len(counts) > 1
    assert all(len(value) <= 10 * size for _, value in messages)


def test_envelope_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="envelope_size"):
        list(pack_events(Source.VLE, [vle(1)], PublishReport(), envelope_size=0))


@settings(max_examples=60, deadline=None)
@given(
    flags=st.lists(st.booleans(), max_size=120),
    envelope_size=st.integers(min_value=1, max_value=40),
)
def test_packing_keeps_every_valid_event_once_in_order(
    flags: list[bool], envelope_size: int
) -> None:
    events = [swipe(n) if ok else swipe(n, reader_id=None) for n, ok in enumerate(flags)]
    report = PublishReport()
    messages = list(pack_events(Source.SWIPE, events, report, envelope_size=envelope_size))
    if envelope_size == 1:
        sent = [json.loads(value) for _, value in messages]
    else:
        batches = [json.loads(value)["events"] for _, value in messages]
        assert all(1 <= len(batch) <= envelope_size for batch in batches)
        sent = [event for batch in batches for event in batch]
    assert sent == [event for event, ok in zip(events, flags, strict=True) if ok]
    assert report.sent == sum(flags)
    assert report.refused == len(flags) - sum(flags)
    assert report.reasons == ({"missing_field": report.refused} if report.refused else {})
    assert report.messages == len(messages)


# -- validation and refusal ---------------------------------------------------------------

REFUSALS: list[tuple[Source, object, Reason]] = [
    (Source.SWIPE, swipe(1, occurred_at=None), Reason.MISSING_FIELD),
    (Source.SWIPE, swipe(1, occurred_at=12), Reason.WRONG_TYPE),
    (Source.SWIPE, swipe(1, occurred_at=["2026-10-05"]), Reason.WRONG_TYPE),
    (Source.SWIPE, swipe(1, student_id=123), Reason.WRONG_TYPE),
    (Source.SWIPE, swipe(1, occurred_at="2026-10-05T09:00:00"), Reason.INVALID_VALUE),
    (Source.SWIPE, swipe(1, occurred_at=datetime(2026, 10, 5, 9)), Reason.INVALID_VALUE),  # noqa: DTZ001
    (Source.SWIPE, swipe(1, direction="sideways"), Reason.INVALID_VALUE),
    (Source.SWIPE, swipe(1, schema_version=2), Reason.UNKNOWN_SCHEMA_VERSION),
    (Source.SWIPE, swipe(1, grade="B+"), Reason.ASSESSMENT_DATA),
    (Source.SWIPE, swipe(1, Final_Result="2:1"), Reason.ASSESSMENT_DATA),
    (Source.SWIPE, swipe(1, ethnicity="not stated"), Reason.FORBIDDEN_FIELD),
    (Source.SWIPE, swipe(1, extra={"nested": [{"disability": "yes"}]}), Reason.FORBIDDEN_FIELD),
    (Source.VLE, vle(1, action="graded"), Reason.ASSESSMENT_DATA),
    (Source.VLE, vle(1, resource="x" * 20_000), Reason.OVERSIZED),
    (Source.VLE, vle(1, resource="x" * 300), Reason.INVALID_VALUE),
    (Source.VLE, vle(1, note=float("nan")), Reason.INVALID_VALUE),
    (Source.VLE, vle(1, note=object()), Reason.WRONG_TYPE),
    (Source.VLE, ["not", "an", "object"], Reason.NOT_AN_OBJECT),
    (Source.VLE, "a string", Reason.NOT_AN_OBJECT),
    (Source.ATTENDANCE, {"event_id": "a"}, Reason.MISSING_FIELD),
    (Source.VLE, Unreadable(3, Reason.MALFORMED_JSON, "not valid JSON"), Reason.MALFORMED_JSON),
]


@pytest.mark.parametrize(("source", "event", "reason"), REFUSALS)
def test_invalid_events_are_refused_with_a_reason(
    source: Source, event: object, reason: Reason
) -> None:
    result = check_event(source, event)
    assert not isinstance(result, Checked)
    assert result[0] is reason
    assert result[1]  # a sentence, not just a code


def test_valid_events_pass_including_extra_fields_the_worker_ignores() -> None:
    assert isinstance(check_event(Source.SWIPE, swipe(1)), Checked)
    assert isinstance(check_event(Source.VLE, vle(1, campus="North")), Checked)


def test_refused_events_are_counted_and_not_sent() -> None:
    events = [swipe(0), swipe(1, grade="A"), swipe(2), swipe(3, building=None), swipe(4)]
    report = PublishReport()
    messages = list(pack_events(Source.SWIPE, events, report, envelope_size=10))
    (envelope,) = envelopes(messages)
    assert [event["event_id"] for event in envelope["events"]] == ["e-0", "e-2", "e-4"]
    assert report.sent == 3
    assert report.refused == 2
    assert report.reasons == {"assessment_data": 1, "missing_field": 1}
    assert [(r.index, r.reason) for r in report.examples] == [
        (1, Reason.ASSESSMENT_DATA),
        (3, Reason.MISSING_FIELD),
    ]
    assert report.sentences[1].startswith("event 3 refused (missing_field)")
    assert "building" in report.sentences[1]


def test_the_oversize_limit_is_configurable() -> None:
    event = vle(1, padding="p" * 1000)
    assert isinstance(check_event(Source.VLE, event), Checked)
    result = check_event(Source.VLE, event, max_event_bytes=512)
    assert not isinstance(result, Checked)
    assert result[0] is Reason.OVERSIZED
    assert MAX_EVENT_BYTES == 16_384


def test_validation_errors_report_the_most_fundamental_problem() -> None:
    with pytest.raises(ValidationError) as caught:
        VleActivity.model_validate({"event_id": "x", "occurred_at": 12, "action": "viewed"})
    reason, detail = classify_validation_error(caught.value)
    assert reason is Reason.MISSING_FIELD
    assert "more problems" in detail


def test_report_merge_and_summary() -> None:
    first, second = PublishReport(sent=2, messages=1), PublishReport(sent=3, messages=3, raw=1)
    for index in range(12):
        second.refuse(Refusal(index, Reason.WRONG_TYPE, "bad"))
    first.merge(second)
    assert (first.sent, first.messages, first.raw, first.refused) == (5, 4, 1, 12)
    assert first.reasons == {"wrong_type": 12}
    assert len(first.examples) == 10
    summary = first.summary()
    assert "sent 5 events in 4 messages" in summary
    assert "wrong_type: 12" in summary


# -- files --------------------------------------------------------------------------------


def test_jsonl_with_a_bad_line_keeps_going_and_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "swipes.jsonl"
    lines = [
        json.dumps(swipe(0)),
        '{"event_id": "e-1", "student_id": ',  # cut off
        "",  # blank lines are skipped
        json.dumps(swipe(2)),
        "[1, 2, 3]",
        json.dumps(swipe(4, reader_id=None)),
        json.dumps(swipe(5)),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    events = list(read_file(path))
    assert len(events) == 6
    assert isinstance(events[1], Unreadable)
    assert events[1].line == 2
    report = PublishReport()
    messages = list(pack_events(Source.SWIPE, read_file(path), report, envelope_size=500))
    (envelope,) = envelopes(messages)
    assert [event["event_id"] for event in envelope["events"]] == ["e-0", "e-2", "e-5"]
    assert report.reasons == {"malformed_json": 1, "not_an_object": 1, "missing_field": 1}
    assert [(r.line, r.reason) for r in report.examples] == [
        (2, Reason.MALFORMED_JSON),
        (5, Reason.NOT_AN_OBJECT),
        (6, Reason.MISSING_FIELD),
    ]
    assert report.sentences[0].startswith("line 2 refused (malformed_json)")


def test_jsonl_with_invalid_utf8_is_refused_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "vle.ndjson"
    path.write_bytes(json.dumps(vle(1)).encode() + b"\n\xff\xfe{oops\n")
    report = PublishReport()
    list(pack_events(Source.VLE, read_file(path), report))
    assert (report.sent, report.reasons) == (1, {"malformed_json": 1})


def test_csv_columns_are_field_names_and_empty_cells_take_defaults(tmp_path: Path) -> None:
    path = tmp_path / "marks.csv"
    path.write_text(
        "\ufeffschema_version,event_id,student_id,occurred_at,session_id,module,"
        "expected_start,expected_end,status,capture_method\n"
        "1,a-1,S0000001,2026-10-05T09:03:00+01:00,CS1010-LEC1-20261005,CS1010,"
        "2026-10-05T09:00:00+01:00,2026-10-05T09:50:00+01:00,present,card\n"
        ",a-2,S0000002,2026-10-05T10:00:00+01:00,CS1010-LEC1-20261005,CS1010,"
        "2026-10-05T09:00:00+01:00,2026-10-05T09:50:00+01:00,absent,\n"
        "1,a-3,S0000003,2026-10-05T10:00:00+01:00,CS1010-LEC1-20261005,CS1010,"
        "2026-10-05T09:00:00+01:00,2026-10-05T09:50:00+01:00,absent,card,surplus\n"
        "1,a-4,S0000004,2026-10-05T10:00:00,CS1010-LEC1-20261005,CS1010,"
        "2026-10-05T09:00:00+01:00,2026-10-05T09:50:00+01:00,absent,card\n",
        encoding="utf-8",
    )
    events = list(read_file(path))
    assert events[0]["schema_version"] == 1
    assert "capture_method" not in events[1]
    report = PublishReport()
    messages = list(pack_events(Source.ATTENDANCE, events, report, envelope_size=1))
    assert [json.loads(value)["event_id"] for _, value in messages] == ["a-1", "a-2"]
    assert report.reasons == {"invalid_value": 2}
    assert [r.line for r in report.examples] == [4, 5]
    assert "cells" in report.examples[0].detail


def test_tsv_is_read_with_tabs(tmp_path: Path) -> None:
    path = tmp_path / "swipes.tsv"
    fields = ["event_id", "student_id", "occurred_at", "reader_id", "building"]
    row = swipe(1)
    path.write_text(
        "\t".join(fields) + "\n" + "\t".join(str(row[f]) for f in fields) + "\n",
        encoding="utf-8",
    )
    (event,) = read_file(path)
    assert isinstance(check_event(Source.SWIPE, event), Checked)


def test_unknown_file_types_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown file type"):
        read_file(tmp_path / "events.xml")


# -- the Publisher against a fake producer ------------------------------------------------


class FakeFuture:
    """Stands in for kafka-python's FutureRecordMetadata."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def add_errback(self, callback: Callable[[Exception], None]) -> FakeFuture:
        if self.error is not None:
            callback(self.error)
        return self


class FakeProducer:
    """Records what would have been sent."""

    fail_next = False

    def __init__(self, **config: object) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.flushes = 0
        self.closed = False

    def send(self, topic: str, *, value: bytes, key: bytes | None) -> FakeFuture:
        self.sent.append((topic, key, value))
        error, FakeProducer.fail_next = (
            (RuntimeError("broker said no") if FakeProducer.fail_next else None),
            False,
        )
        return FakeFuture(error)

    def flush(self, timeout: float | None = None) -> None:
        self.flushes += 1

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


@pytest.fixture
def fake_producer(monkeypatch: pytest.MonkeyPatch) -> type[FakeProducer]:
    monkeypatch.setattr(publisher_module, "KafkaProducer", FakeProducer)
    return FakeProducer


def test_publisher_sends_to_the_sources_raw_topic(fake_producer: type[FakeProducer]) -> None:
    with Publisher("localhost:1", topics=TopicNames("x."), envelope_size=2) as publisher:
        producer = publisher._producer
        assert producer.config["acks"] == "all"
        assert producer.config["enable_idempotence"] is True
        assert producer.config["max_request_size"] == 1_048_576
        report = publisher.publish("swipe", [swipe(0), swipe(1), swipe(2), swipe(3, grade=1)])
        publisher.publish_raw(Source.VLE, b"{not json", key=b"k")
    assert producer.closed
    assert producer.flushes >= 1
    assert (report.sent, report.messages, report.refused) == (3, 2, 1)
    assert [topic for topic, _, _ in producer.sent] == [
        "x.engagement.raw.swipe",
        "x.engagement.raw.swipe",
        "x.engagement.raw.vle",
    ]
    assert producer.sent[-1][1:] == (b"k", b"{not json")


def test_flush_raises_when_a_message_was_not_delivered(
    fake_producer: type[FakeProducer],
) -> None:
    publisher = Publisher("localhost:1", topics=TopicNames(), envelope_size=1)
    fake_producer.fail_next = True
    publisher.publish(Source.SWIPE, [swipe(0), swipe(1)])
    with pytest.raises(PublishError, match="1 message"):
        publisher.flush()
    publisher.close()  # the failure was reported once; closing is clean


def test_publish_file_sends_the_file_and_flushes(
    fake_producer: type[FakeProducer], tmp_path: Path
) -> None:
    path = tmp_path / "swipes.jsonl"
    path.write_text("\n".join(json.dumps(swipe(n)) for n in range(7)) + "\nnope\n", "utf-8")
    publisher = Publisher("localhost:1", topics=TopicNames(), envelope_size=5)
    report = publish_file(path, "swipe", publisher)
    producer = publisher._producer
    assert producer.flushes == 1
    assert (report.sent, report.messages, report.refused) == (7, 2, 1)
    assert report.examples[0].line == 8
    publisher.close()


def test_publish_stream_keeps_the_order_of_a_mixed_feed(fake_producer: type[FakeProducer]) -> None:
    publisher = Publisher("localhost:1", topics=TopicNames(), envelope_size=1)
    items: list[tuple[Source | str, dict[str, object] | bytes]] = [
        (Source.SWIPE, swipe(0)),
        ("vle", vle(1)),
        (Source.VLE, b"{raw"),
        (Source.SWIPE, swipe(3, reader_id=None)),
        (Source.SWIPE, swipe(4)),
    ]
    report = publisher.publish_stream(items)
    sent = [(topic.rsplit(".", 1)[1], value[:12]) for topic, _, value in publisher._producer.sent]
    assert sent == [
        ("swipe", b'{"event_id":'),
        ("vle", b'{"event_id":'),
        ("vle", b"{raw"),
        ("swipe", b'{"event_id":'),
    ]
    assert (report.sent, report.messages, report.raw, report.refused) == (3, 3, 1, 1)
    assert report.examples[0].index == 3


def test_publish_stream_fills_envelopes_per_source(fake_producer: type[FakeProducer]) -> None:
    publisher = Publisher("localhost:1", topics=TopicNames(), envelope_size=2)
    items: list[tuple[Source | str, dict[str, object] | bytes]] = [
        (Source.SWIPE, swipe(0)),
        (Source.VLE, vle(1)),
        (Source.SWIPE, swipe(2, grade="A")),
        (Source.SWIPE, swipe(3)),
        (Source.VLE, vle(4)),
        (Source.VLE, vle(5)),
    ]
    report = publisher.publish_stream(items)
    sent = [
        (topic.rsplit(".", 1)[1], [e["event_id"] for e in json.loads(value)["events"]])
        for topic, _, value in publisher._producer.sent
    ]
    assert sent == [("swipe", ["e-0", "e-3"]), ("vle", ["v-1", "v-4"]), ("vle", ["v-5"])]
    assert [(r.index, r.reason) for r in report.examples] == [(2, Reason.ASSESSMENT_DATA)]
    assert (report.sent, report.messages) == (5, 3)
