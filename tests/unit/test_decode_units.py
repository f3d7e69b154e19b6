"""One bad event costs one event, and implausible times never count (issue 12, items 3 and 4).

Every unit the decoder is given gets exactly one outcome: a signal, or a dead letter carrying
its index in the envelope (or batch). Nothing raises, whatever the unit holds.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from agents.decode import Ingestor, IngestResult
from agents.model.pseudonym import Pseudonymiser
from agents.plausible import FLOOR, TimeBounds
from schemas.common import Reason, Source
from schemas.settings import load_settings
from schemas.signals import Signal
from tests.unit.test_decode import KIB16, LONDON, MIB, NOW, ORIGIN, STUDENT, swipe

KEY = "k" * 20


def ingestor(source: Source = Source.SWIPE, times: TimeBounds | None = None) -> Ingestor:
    bounds: dict[str, Any] = {} if times is None else {"times": times}  # default: the floor
    return Ingestor(
        source,
        Pseudonymiser(SecretStr(KEY)),
        LONDON,
        max_message_bytes=MIB,
        max_event_bytes=KIB16,
        clock=lambda: NOW,
        **bounds,
    )


def text(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def with_field(event: dict[str, Any], name: str, raw_value: str) -> bytes:
    """An event's JSON text with one more field whose value is given as raw JSON text."""
    return text(event)[:-1] + f', "{name}": {raw_value}}}'.encode()


def envelope(*items: bytes) -> bytes:
    return b'{"schema_version": 1, "events": [' + b", ".join(items) + b"]}"


def outcomes(result: IngestResult) -> tuple[list[str], list[tuple[int | None, Reason]]]:
    return [s["event_id"] for s in result.signals], [(d.index, d.reason) for d in result.dead]


DEEP = "[" * 1000 + "]" * 1000
BAD_EVENTS: dict[str, tuple[bytes, Reason]] = {
    # A JSON escape: valid UTF-8 bytes, but the id is not Unicode text.
    "lone surrogate escaped in the event id": (
        text(swipe(1)).replace(b'"sw-1"', b'"sw-\\ud800"'),
        Reason.INVALID_VALUE,
    ),
    "lone surrogate escaped in the student id": (
        text(swipe(1)).replace(STUDENT.encode(), b"S765\\udfff"),
        Reason.INVALID_VALUE,
    ),
    # The surrogate's own bytes (json.loads reads bytes with "surrogatepass").
    "lone surrogate as bytes in the event id": (
        text(swipe(1)).replace(b'"sw-1"', '"sw-\ud800"'.encode("utf-8", "surrogatepass")),
        Reason.INVALID_VALUE,
    ),
    # Bytes that are not UTF-8: json.loads refuses the whole message; the event is found alone.
    "bytes that are not UTF-8 in the event id": (
        text(swipe(1)).replace(b'"sw-1"', b'"sw-\xff\xfe"'),
        Reason.MALFORMED_JSON,
    ),
    "year 0001": (text(swipe(1, occurred_at="0001-01-01T00:00:00Z")), Reason.IMPLAUSIBLE_TIME),
    "year 0001 east of Greenwich": (
        text(swipe(1, occurred_at="0001-01-01T00:30:00+01:00")),
        Reason.IMPLAUSIBLE_TIME,
    ),
    "year 9999 west of Greenwich": (
        text(swipe(1, occurred_at="9999-12-31T23:30:00-05:00")),
        Reason.IMPLAUSIBLE_TIME,
    ),
    "1970": (text(swipe(1, occurred_at="1970-01-01T00:00:00Z")), Reason.IMPLAUSIBLE_TIME),
    "NaN in a field of the schema": (
        with_field(swipe(1), "direction", "NaN"),
        Reason.MALFORMED_JSON,
    ),
    "NaN in another field": (with_field(swipe(1), "battery", "NaN"), Reason.MALFORMED_JSON),
    "Infinity": (with_field(swipe(1), "x", "-Infinity"), Reason.MALFORMED_JSON),
    "1,000 levels of nesting": (with_field(swipe(1), "x", DEEP), Reason.OVERSIZED),
    "1,000 levels of objects": (
        with_field(swipe(1), "x", '{"a":' * 1000 + "1" + "}" * 1000),
        Reason.OVERSIZED,
    ),
    "a 100 kB string": (text(swipe(1, note="x" * 100_000)), Reason.OVERSIZED),
    "not JSON at all": (b'{"event_id": "sw-1" "student_id"}', Reason.MALFORMED_JSON),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_one_bad_event_in_an_envelope_is_dead_lettered_alone_with_its_index(case: str) -> None:
    bad, reason = BAD_EVENTS[case]
    raw = envelope(text(swipe(0)), bad, text(swipe(2)))
    result = ingestor().decode(raw, ORIGIN)
    assert outcomes(result) == (["sw-0", "sw-2"], [(1, reason)])
    (letter,) = result.dead
    assert letter.detail
    assert (letter.topic, letter.partition, letter.offset) == ("raw.test", 3, 42)
    assert result.events == 3
    assert STUDENT not in letter.model_dump_json()  # the record can be produced, and is safe


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_a_bad_event_sent_alone_is_one_dead_letter(case: str) -> None:
    bad, _ = BAD_EVENTS[case]
    result = ingestor().decode(bad, ORIGIN)
    assert result.signals == []
    assert [d.index for d in result.dead] == [None]
    assert result.events == 1


def test_every_bad_kind_together_costs_only_the_bad_events() -> None:
    items: list[bytes] = [text(swipe(0))]
    expected: list[tuple[int | None, Reason]] = []
    for bad, reason in BAD_EVENTS.values():
        expected.append((len(items), reason))
        items.append(bad)
    items.append(text(swipe(99)))
    result = ingestor().decode(envelope(*items), ORIGIN)
    assert outcomes(result) == (["sw-0", "sw-99"], expected)


def test_a_10_mb_string_costs_its_event_even_though_the_envelope_is_over_the_limit() -> None:
    raw = envelope(text(swipe(0)), text(swipe(1, note="x" * 10_000_000)), text(swipe(2)))
    assert len(raw) > 9 * MIB
    result = ingestor().decode(raw, ORIGIN)
    assert outcomes(result) == (["sw-0", "sw-2"], [(1, Reason.OVERSIZED)])
    assert str(KIB16) in result.dead[0].detail
    assert len(result.dead[0].payload_excerpt) <= 512


def test_an_envelope_too_big_without_its_oversized_events_is_still_refused_whole() -> None:
    events = [text(swipe(n, note="y" * 10_000)) for n in range(120)]  # each within 16 KiB
    raw = envelope(*events, text(swipe(999, note="x" * 2 * MIB)))
    result = ingestor().decode(raw, ORIGIN)
    assert outcomes(result) == ([], [(None, Reason.OVERSIZED)])
    assert "split it into smaller envelopes" in result.dead[0].detail


def test_a_message_far_over_the_limit_is_refused_without_being_read() -> None:
    raw = envelope(text(swipe(0)), text(swipe(1, note="x" * 17 * MIB)))
    result = ingestor().decode(raw, ORIGIN)
    assert outcomes(result) == ([], [(None, Reason.OVERSIZED)])


def test_a_replayed_batch_also_costs_one_event_per_bad_event() -> None:
    deep: Any = []
    for _ in range(1000):  # built without recursion, as a parser with a higher limit would
        deep = [deep]
    batch = [
        swipe(0),
        swipe(1, event_id="sw-\ud800"),
        swipe(2, occurred_at="0001-01-01T00:00:00Z"),
        swipe(3, note="x" * 10_000_000),
        swipe(4, battery=float("nan")),
        swipe(5, x=deep),
        "not an event",
        swipe(7),
    ]
    result = ingestor().decode_events(batch, ORIGIN)
    assert outcomes(result) == (
        ["sw-0", "sw-7"],
        [
            (1, Reason.INVALID_VALUE),
            (2, Reason.IMPLAUSIBLE_TIME),
            (3, Reason.OVERSIZED),
            (4, Reason.MALFORMED_JSON),
            (5, Reason.OVERSIZED),
            (6, Reason.NOT_AN_OBJECT),
        ],
    )


def test_a_bad_event_in_a_clean_envelope_keeps_its_index() -> None:
    # Only schema fields: the fast path validates the list at once, then checks each time.
    events = [swipe(0), swipe(1, occurred_at="1970-01-01T00:00:00Z"), swipe(2)]
    result = ingestor().decode(json.dumps({"events": events}).encode(), ORIGIN)
    assert outcomes(result) == (["sw-0", "sw-2"], [(1, Reason.IMPLAUSIBLE_TIME)])


def test_a_failure_inside_the_decoder_costs_one_event_and_logs_no_input(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    decoder = ingestor()
    real = decoder._kind_and_context

    def breaks_on_the_second(event: Any) -> Any:
        if event.event_id == "sw-1":
            raise KeyError(event.student_id)  # a bug whose message holds the student id
        return real(event)

    monkeypatch.setattr(decoder, "_kind_and_context", breaks_on_the_second)
    caplog.set_level(logging.DEBUG)
    for raw in (
        json.dumps({"events": [swipe(0), swipe(1), swipe(2)]}).encode(),  # the fast path
        json.dumps({"events": [swipe(0), swipe(1, x=1), swipe(2)]}).encode(),  # per event
    ):
        result = decoder.decode(raw, ORIGIN)
        assert outcomes(result) == (["sw-0", "sw-2"], [(1, Reason.PROCESSING_ERROR)])
        assert "KeyError" in result.dead[0].detail
        assert STUDENT not in result.dead[0].model_dump_json()
    assert "decoding failed" in caplog.text and "KeyError" in caplog.text
    assert STUDENT not in caplog.text


# -- implausible times (item 3) -----------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [
        "1970-01-01T00:00:00Z",
        "1970-01-01T01:00:00+01:00",
        "1900-01-01T00:00:00Z",
        "1753-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "9999-12-31T23:59:59Z",
        "2099-12-31T00:00:00Z",
        "2038-01-19T03:14:08Z",
    ],
)
def test_an_implausible_time_is_refused_as_implausible_time(when: str) -> None:
    result = ingestor().decode(json.dumps(swipe(1, occurred_at=when)).encode(), ORIGIN)
    assert outcomes(result) == ([], [(None, Reason.IMPLAUSIBLE_TIME)])
    detail = result.dead[0].detail
    assert "occurred_at is" in detail and "fix the time" in detail
    assert result.dead[0].event_id == "sw-1"


def test_the_floor_is_2000_and_replayed_history_after_it_is_accepted() -> None:
    assert FLOOR == datetime(2000, 1, 1, tzinfo=UTC)
    for when in ("2000-01-01T00:00:00Z", "2013-10-07T12:00:00+01:00"):  # OULAD starts 2013
        result = ingestor().decode(json.dumps(swipe(1, occurred_at=when)).encode(), ORIGIN)
        assert result.dead == [] and len(result.signals) == 1


def test_far_in_the_future_is_two_years_and_closer_is_a_clock_problem() -> None:
    def reason(ahead: timedelta) -> Reason:
        event = swipe(1, occurred_at=(NOW + ahead).isoformat())
        (letter,) = ingestor().decode(json.dumps(event).encode(), ORIGIN).dead
        return letter.reason

    assert reason(timedelta(minutes=6)) is Reason.FUTURE_DATED
    assert reason(timedelta(days=400)) is Reason.FUTURE_DATED  # a source clock a year out
    assert reason(timedelta(days=729)) is Reason.FUTURE_DATED
    assert reason(timedelta(days=731)) is Reason.IMPLAUSIBLE_TIME


def test_before_term_start_less_the_grace_is_implausible() -> None:
    # Term starts Monday 28 September 2026 (London, BST): 27 Sep 23:00 UTC; less 48 h.
    times = TimeBounds.of(date(2026, 9, 28), LONDON, 48)
    assert times.earliest == datetime(2026, 9, 25, 23, 0, tzinfo=UTC)
    decoder = ingestor(times=times)
    events = [
        swipe(0, occurred_at="2026-09-25T22:59:59Z"),
        swipe(1, occurred_at="2026-09-25T23:00:00Z"),
        swipe(2, occurred_at="2026-05-01T09:00:00Z"),
    ]
    result = decoder.decode(json.dumps({"events": events}).encode(), ORIGIN)
    assert outcomes(result) == (
        ["sw-1"],
        [(0, Reason.IMPLAUSIBLE_TIME), (2, Reason.IMPLAUSIBLE_TIME)],
    )
    assert "ENGAGEMENT_TERM_START" in result.dead[0].detail
    assert "2026-09-28" in result.dead[0].detail and "48-hour grace" in result.dead[0].detail


def test_a_term_start_before_the_floor_still_has_the_floor() -> None:
    assert TimeBounds.of(date(1999, 9, 1), LONDON, 48) == TimeBounds()
    assert TimeBounds.of(None, LONDON, 48).earliest == FLOOR


def test_the_worker_reads_the_term_start_from_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agents.ingest import raw_ingestors  # the worker's own wiring of the decoders

    monkeypatch.setenv("ENGAGEMENT_TERM_START", "2026-09-28")
    settings = load_settings(pseudonym_key=KEY)
    assert settings.term_start == date(2026, 9, 28)
    decoders = raw_ingestors(settings)
    swipes = next(d for d in decoders.values() if d.source == "swipe")
    early = json.dumps(swipe(1, occurred_at="2026-09-01T09:00:00Z")).encode()
    (letter,) = swipes.decode(early, ORIGIN).dead
    assert letter.reason is Reason.IMPLAUSIBLE_TIME
    monkeypatch.setenv("ENGAGEMENT_TERM_START", "")
    assert load_settings(pseudonym_key=KEY).term_start is None


# -- the property: count in = count out ---------------------------------------------------

_BAD = st.sampled_from([bad for bad, _ in BAD_EVENTS.values()]) | st.sampled_from(
    [
        b"1",
        b'"text"',
        b"null",
        b"[]",
        b"{}",
        text(swipe(0, grade="A")),
        text(swipe(0, religion="x")),
        text(swipe(0, direction="up")),
        text(swipe(0, occurred_at=12)),
        text(swipe(0, schema_version=2)),
        text(swipe(0, occurred_at=(NOW + timedelta(days=3)).isoformat())),
    ]
)
_NOTES = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)  # any text, brackets too


@st.composite
def _envelopes(draw: st.DrawFn) -> tuple[bytes, list[str | None]]:
    """An envelope of good and bad events; the event id expected of each position (None: bad)."""
    units = draw(st.lists(st.tuples(st.booleans(), _BAD, _NOTES), min_size=1, max_size=8))
    items: list[bytes] = []
    expected: list[str | None] = []
    for position, (good, bad_text, note) in enumerate(units):
        if good:
            extra = {"note": note} if note else {}  # an extra field takes the per-event path
            items.append(text(swipe(position, event_id=f"ev-{position}", **extra)))
            expected.append(f"ev-{position}")
        else:
            items.append(bad_text)
            expected.append(None)
    return envelope(*items), expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_envelopes())
def test_every_event_of_an_envelope_is_accepted_or_dead_lettered_exactly_once(
    case: tuple[bytes, list[str | None]],
) -> None:
    raw, expected = case
    result = ingestor().decode(raw, ORIGIN)  # never raises
    dead = sorted(d.index for d in result.dead if d.index is not None)
    assert len(result.signals) + len(result.dead) == len(expected)  # count in = count out
    assert dead == [i for i, e in enumerate(expected) if e is None]
    assert [s["event_id"] for s in result.signals] == [e for e in expected if e is not None]
    assert result.events == len(expected)
    for signal in result.signals:
        Signal.model_validate(signal)
    for letter in result.dead:
        letter.model_dump_json()  # every record can be produced
        assert len(letter.payload_excerpt) <= 512


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.binary(max_size=400)
    | _envelopes().map(lambda case: case[0][: len(case[0]) // 2])  # cut short
    | st.sampled_from([bad for bad, _ in BAD_EVENTS.values()])
)
def test_any_message_gets_exactly_one_outcome_per_unit(raw: bytes) -> None:
    result = ingestor().decode(raw, ORIGIN)  # never raises
    assert len(result.signals) + len(result.dead) == result.events >= 1
    for letter in result.dead:
        letter.model_dump_json()
