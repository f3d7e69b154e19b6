"""Ingest decoding without a broker: raw bytes in, pseudonymous signals and dead letters out."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from agents.decode import Ingestor, IngestResult, Origin, approximate_size, redact
from agents.model.pseudonym import Pseudonymiser
from schemas.common import Reason, Source
from schemas.deadletter import DeadLetter
from schemas.signals import Signal

LONDON = ZoneInfo("Europe/London")
MIB = 1_048_576
KIB16 = 16_384
NOW = datetime(2026, 10, 26, 12, 0, tzinfo=UTC)
ORIGIN = Origin(topic="raw.test", partition=3, offset=42, published_at_ms=1_792_886_400_000)
PSEUDONYM = re.compile(r"^p_[0-9a-f]{32}$")
SIGNAL_KEYS = {
    "schema_version",
    "event_id",
    "pseudonym",
    "source",
    "occurred_at_ms",
    "day",
    "hour",
    "kind",
    "context",
    "published_at_ms",
    "raw_partition",
}

STUDENT = "S7654321"


def ingestor(source: Source) -> Ingestor:
    return Ingestor(
        source,
        Pseudonymiser(SecretStr("k" * 20)),
        LONDON,
        max_message_bytes=MIB,
        max_event_bytes=KIB16,
        clock=lambda: NOW,
    )


def swipe(n: int = 1, /, **changes: object) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"sw-{n}",
        "student_id": STUDENT,
        # 23:30 UTC on 24 Oct is 00:30 BST on Sunday 25 Oct in London.
        "occurred_at": "2026-10-24T23:30:00Z",
        "reader_id": "TUR-DOOR-1",
        "building": "Turing",
        "direction": "in",
    }
    event.update(changes)
    return event


def attendance(n: int = 1, /, **changes: object) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"at-{n}",
        "student_id": STUDENT,
        "occurred_at": "2026-10-26T09:05:00+00:00",
        "session_id": "CS1010-L-07",
        "module": "CS1010",
        "expected_start": "2026-10-26T09:00:00+00:00",
        "expected_end": "2026-10-26T10:00:00+00:00",
        "status": "present",
        "capture_method": "card",
    }
    event.update(changes)
    return event


def vle(n: int = 1, /, **changes: object) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"v-{n}",
        "student_id": STUDENT,
        "occurred_at": "2026-03-29T00:30:00+00:00",
        "platform": "moodle",
        "course": "CS1010",
        "action": "viewed",
        "resource": "CS1010/week-1/slides.pdf",
    }
    event.update(changes)
    return event


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def decode(source: Source, payload: Any) -> IngestResult:
    raw = payload if isinstance(payload, bytes) else encode(payload)
    return ingestor(source).decode(raw, ORIGIN)


def only_dead(result: IngestResult) -> DeadLetter:
    assert result.signals == []
    assert len(result.dead) == 1
    return result.dead[0]


def assert_no_student_id(result: IngestResult) -> None:
    for letter in result.dead:
        assert STUDENT not in letter.payload_excerpt
        assert STUDENT not in letter.detail
    for signal in result.signals:
        assert STUDENT not in json.dumps(signal)


# -- valid events -------------------------------------------------------------------------


def test_a_swipe_becomes_one_pseudonymous_signal_on_the_london_day() -> None:
    result = decode(Source.SWIPE, swipe())
    assert result.dead == []
    assert result.events == 1
    (signal,) = result.signals
    assert set(signal) == SIGNAL_KEYS
    assert PSEUDONYM.match(signal["pseudonym"])
    assert signal["pseudonym"] == Pseudonymiser(SecretStr("k" * 20))(STUDENT)
    assert signal["source"] == "swipe"
    assert signal["kind"] == "in"
    assert signal["context"] == "Turing"
    assert signal["event_id"] == "sw-1"
    # 00:30 BST on the 25th, not the 24th as the UTC date would say.
    assert signal["day"] == date(2026, 10, 25).toordinal()
    assert (
        signal["occurred_at_ms"]
        == int(datetime(2026, 10, 24, 23, 30, tzinfo=UTC).timestamp()) * 1000
    )
    assert signal["published_at_ms"] == ORIGIN.published_at_ms
    assert signal["raw_partition"] == ORIGIN.partition  # the feed's watermark is per partition
    assert_no_student_id(result)
    # The signal is a valid message on the signals topic.
    Signal.model_validate(signal)
    # The identity is kept only in the side map used for delivery.
    assert result.identities == {signal["pseudonym"]: STUDENT}


def test_an_attendance_mark_becomes_one_signal_with_status_and_module() -> None:
    result = decode(Source.ATTENDANCE, attendance(status="late"))
    assert result.dead == []
    (signal,) = result.signals
    assert signal["source"] == "attendance"
    assert signal["kind"] == "late"
    assert signal["context"] == "CS1010"
    # 09:05 UTC on 26 Oct is 09:05 GMT (after the clocks went back).
    assert signal["day"] == date(2026, 10, 26).toordinal()
    assert PSEUDONYM.match(signal["pseudonym"])
    assert_no_student_id(result)
    Signal.model_validate(signal)


def test_a_vle_action_becomes_one_signal_with_action_and_course() -> None:
    result = decode(Source.VLE, vle())
    assert result.dead == []
    (signal,) = result.signals
    assert signal["source"] == "vle"
    assert signal["kind"] == "viewed"
    assert signal["context"] == "CS1010"
    # 00:30 UTC on 29 March is 00:30 GMT: the clocks go forward at 01:00 UTC.
    assert signal["day"] == date(2026, 3, 29).toordinal()
    assert_no_student_id(result)
    Signal.model_validate(signal)


def test_the_london_day_follows_the_offset_given_by_the_publisher() -> None:
    # 23:30 at -05:00 on the 25th is 04:30 UTC / GMT on the 26th.
    result = decode(Source.SWIPE, swipe(occurred_at="2026-10-25T23:30:00-05:00"))
    assert result.signals[0]["day"] == date(2026, 10, 26).toordinal()


def test_the_same_student_always_gets_the_same_pseudonym_and_others_differ() -> None:
    events = [swipe(1), swipe(2), swipe(3, student_id="S0000001")]
    result = decode(Source.SWIPE, {"events": events})
    pseudonyms = [signal["pseudonym"] for signal in result.signals]
    assert pseudonyms[0] == pseudonyms[1] != pseudonyms[2]


def test_unknown_fields_are_dropped_from_the_signal() -> None:
    event = swipe(
        favourite_colour="mauve",
        ip_address="192.0.2.77",
        home_postcode="CB2 1TN",
        extra={"nested": "thing"},
    )
    result = decode(Source.SWIPE, event)
    (signal,) = result.signals
    assert set(signal) == SIGNAL_KEYS
    text = json.dumps(signal)
    for value in ("mauve", "192.0.2.77", "CB2 1TN", "nested"):
        assert value not in text


# -- envelopes ----------------------------------------------------------------------------


def test_an_envelope_of_n_events_gives_n_signals_in_order() -> None:
    events = [swipe(n, student_id=f"S{n:07d}") for n in range(25)]
    result = decode(Source.SWIPE, {"schema_version": 1, "source": "swipe", "events": events})
    assert result.dead == []
    assert result.events == 25
    assert [s["event_id"] for s in result.signals] == [f"sw-{n}" for n in range(25)]
    assert len({s["pseudonym"] for s in result.signals}) == 25


def test_a_large_envelope_of_small_events_is_not_refused_as_oversized() -> None:
    events = [swipe(n) for n in range(400)]
    raw = encode({"events": events})
    assert len(raw) > KIB16  # event sizes are checked for this envelope
    result = decode(Source.SWIPE, raw)
    assert result.dead == []
    assert len(result.signals) == 400


def test_one_bad_event_in_an_envelope_is_dead_lettered_and_its_neighbours_pass() -> None:
    events = [swipe(0), swipe(1, occurred_at=12), swipe(2)]
    result = decode(Source.SWIPE, {"events": events})
    assert [s["event_id"] for s in result.signals] == ["sw-0", "sw-2"]
    (letter,) = result.dead
    assert letter.reason is Reason.WRONG_TYPE
    assert letter.index == 1
    assert letter.event_id == "sw-1"
    assert (letter.topic, letter.partition, letter.offset) == ("raw.test", 3, 42)
    assert letter.received_at == NOW
    assert result.events == 3
    assert_no_student_id(result)


def test_every_bad_event_in_an_envelope_is_dead_lettered_with_its_own_index() -> None:
    events = [
        swipe(0),
        "not an object",
        swipe(2, grade="A"),
        swipe(3),
        swipe(4, direction="sideways"),
    ]
    result = decode(Source.SWIPE, {"events": events})
    assert [s["event_id"] for s in result.signals] == ["sw-0", "sw-3"]
    assert [(d.index, d.reason) for d in result.dead] == [
        (1, Reason.NOT_AN_OBJECT),
        (2, Reason.ASSESSMENT_DATA),
        (4, Reason.INVALID_VALUE),
    ]


def test_an_oversized_event_inside_an_envelope_is_refused_alone() -> None:
    events = [swipe(0), swipe(1, note="x" * (KIB16 + 100)), swipe(2)]
    result = decode(Source.SWIPE, {"events": events})
    assert [s["event_id"] for s in result.signals] == ["sw-0", "sw-2"]
    (letter,) = result.dead
    assert letter.reason is Reason.OVERSIZED
    assert letter.index == 1
    assert str(KIB16) in letter.detail
    assert_no_student_id(result)


def test_an_event_over_the_byte_limit_is_refused_in_an_envelope_as_it_is_alone() -> None:
    # 6,000 euro signs are 18,000 bytes of UTF-8: over the 16 KiB event limit.
    event = swipe(1, note="\u20ac" * 6000)
    alone = ingestor(Source.SWIPE).decode(json.dumps(event, ensure_ascii=False).encode(), ORIGIN)
    assert only_dead(alone).reason is Reason.OVERSIZED
    raw = json.dumps({"events": [swipe(0), event]}, ensure_ascii=False).encode()
    enveloped = ingestor(Source.SWIPE).decode(raw, ORIGIN)
    assert [(d.index, d.reason) for d in enveloped.dead] == [(1, Reason.OVERSIZED)]
    assert [s["event_id"] for s in enveloped.signals] == ["sw-0"]


def test_an_envelope_with_an_unknown_schema_version_says_what_to_do() -> None:
    result = decode(Source.SWIPE, {"schema_version": 2, "events": [swipe(0), swipe(1)]})
    letter = only_dead(result)
    assert letter.reason is Reason.UNKNOWN_SCHEMA_VERSION
    assert "2" in letter.detail
    assert "upgrade the worker" in letter.detail or "publish version 1" in letter.detail
    assert_no_student_id(result)


def test_an_empty_envelope_is_dead_lettered_not_silently_dropped() -> None:
    result = decode(Source.SWIPE, {"schema_version": 1, "events": []})
    assert len(result.dead) == 1


def test_an_event_with_an_extra_events_field_is_not_silently_dropped() -> None:
    # Unknown fields are dropped (minimisation); the event itself must not be.
    result = decode(Source.SWIPE, swipe(1, events=[]))
    assert len(result.signals) + len(result.dead) == 1


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", Reason.MALFORMED_JSON),
        (b"", Reason.MALFORMED_JSON),
        (b"\xff\xfe\x00garbage", Reason.MALFORMED_JSON),
        (b"[1, 2, 3]", Reason.NOT_AN_OBJECT),
        (b'"just a string"', Reason.NOT_AN_OBJECT),
        (b"42", Reason.NOT_AN_OBJECT),
        (b"null", Reason.NOT_AN_OBJECT),
    ],
)
def test_messages_that_are_not_json_objects_are_refused(raw: bytes, reason: Reason) -> None:
    letter = only_dead(ingestor(Source.SWIPE).decode(raw, ORIGIN))
    assert letter.reason is reason
    assert letter.index is None
    assert letter.detail


def test_a_message_with_no_value_is_refused() -> None:
    letter = only_dead(ingestor(Source.SWIPE).decode(None, ORIGIN))
    assert letter.reason is Reason.NOT_AN_OBJECT


def test_malformed_json_excerpt_is_redacted() -> None:
    raw = b'{"event_id": "sw-1", "student_id": "S7654321", "occurred_at": '
    letter = only_dead(ingestor(Source.SWIPE).decode(raw, ORIGIN))
    assert letter.reason is Reason.MALFORMED_JSON
    assert STUDENT not in letter.payload_excerpt
    assert "sw-1" in letter.payload_excerpt


@pytest.mark.parametrize("field", ["event_id", "student_id", "occurred_at", "building"])
def test_a_missing_field_is_named(field: str) -> None:
    event = swipe()
    del event[field]
    letter = only_dead(decode(Source.SWIPE, event))
    assert letter.reason is Reason.MISSING_FIELD
    assert field in letter.detail


@pytest.mark.parametrize("value", [12, 1.5, ["2026-10-24T23:30:00Z"], {"at": "now"}, True])
def test_an_occurred_at_of_the_wrong_type_is_wrong_type(value: object) -> None:
    result = decode(Source.SWIPE, swipe(occurred_at=value))
    letter = only_dead(result)
    assert letter.reason is Reason.WRONG_TYPE
    assert "occurred_at" in letter.detail
    assert letter.event_id == "sw-1"
    assert_no_student_id(result)


def test_a_naive_datetime_is_an_invalid_value() -> None:
    letter = only_dead(decode(Source.SWIPE, swipe(occurred_at="2026-10-24T23:30:00")))
    assert letter.reason is Reason.INVALID_VALUE
    assert "occurred_at" in letter.detail


def test_an_unknown_attendance_status_is_an_invalid_value() -> None:
    letter = only_dead(decode(Source.ATTENDANCE, attendance(status="maybe")))
    assert letter.reason is Reason.INVALID_VALUE
    assert "status" in letter.detail


def test_a_session_that_ends_before_it_starts_is_an_invalid_value() -> None:
    event = attendance(expected_end="2026-10-26T08:00:00+00:00")
    assert only_dead(decode(Source.ATTENDANCE, event)).reason is Reason.INVALID_VALUE


@pytest.mark.parametrize(
    "extra",
    [
        {"grade": "A"},
        {"score": 71},
        {"result": "pass"},
        {"Final_Result": "2:1"},
        {"finalResult": "2:1"},
        {"exam-mark": 55},
        {"GPA": 3.1},
        {"context": {"assessment": {"Raw Score": 12}}},
        {"attachments": [{"ok": 1}, {"marks": [1, 2]}]},
        # The names Caliper and Canvas give results, in the product's own events too.
        {"generated": {"scoreGiven": 7}},
        {"current_score": 61.5},
        {"final_score": 58},
        {"resultScore": 0.8},
    ],
)
def test_assessment_results_are_refused_even_nested_and_oddly_spelt(
    extra: dict[str, object],
) -> None:
    result = decode(Source.VLE, vle(**extra))
    letter = only_dead(result)
    assert letter.reason is Reason.ASSESSMENT_DATA
    assert "assessment" in letter.detail
    assert_no_student_id(result)


@pytest.mark.parametrize(
    "extra",
    [
        {"ethnicity": "x"},
        {"Disability": True},
        {"religion": "x"},
        {"profile": {"sexual_orientation": "x"}},
        {"health": "x"},
    ],
)
def test_special_category_data_is_refused(extra: dict[str, object]) -> None:
    result = decode(Source.SWIPE, swipe(**extra))
    letter = only_dead(result)
    assert letter.reason is Reason.FORBIDDEN_FIELD
    assert_no_student_id(result)


@pytest.mark.parametrize("action", ["graded", "Graded", "grade_updated", "assignment-graded"])
def test_a_vle_action_reporting_a_grade_is_assessment_data(action: str) -> None:
    letter = only_dead(decode(Source.VLE, vle(action=action)))
    assert letter.reason is Reason.ASSESSMENT_DATA


def test_an_oversized_message_is_refused_without_parsing() -> None:
    raw = encode({"events": [swipe(0)], "padding": "x" * MIB})
    assert len(raw) > MIB
    result = ingestor(Source.SWIPE).decode(raw, ORIGIN)
    letter = only_dead(result)
    assert letter.reason is Reason.OVERSIZED
    assert str(MIB) in letter.detail
    assert len(letter.payload_excerpt) <= 512
    assert_no_student_id(result)


def test_an_oversized_single_event_is_refused() -> None:
    letter = only_dead(decode(Source.SWIPE, swipe(note="y" * KIB16)))
    assert letter.reason is Reason.OVERSIZED


def test_an_event_with_an_unknown_schema_version_says_what_to_do() -> None:
    letter = only_dead(decode(Source.SWIPE, swipe(schema_version=2)))
    assert letter.reason is Reason.UNKNOWN_SCHEMA_VERSION
    assert "2" in letter.detail
    assert "upgrade the worker" in letter.detail
    assert "publish version 1" in letter.detail


def test_dead_letter_excerpts_never_contain_the_student_id() -> None:
    events = [
        swipe(0, occurred_at=12),
        swipe(1, grade="B"),
        swipe(2, ethnicity="x"),
        swipe(3, direction="up"),
        vle(4, student_id=STUDENT, building=None),
    ]
    result = decode(Source.SWIPE, {"events": events})
    assert len(result.dead) == 5
    assert_no_student_id(result)
    for letter in result.dead:
        assert "[redacted]" in letter.payload_excerpt


def test_a_numeric_student_id_is_not_leaked_into_the_excerpt() -> None:
    # A feed sending the id as a number is refused (wrong type); the id must still not leak.
    result = decode(Source.SWIPE, swipe(student_id=98765432))
    letter = only_dead(result)
    assert letter.reason is Reason.WRONG_TYPE
    assert "98765432" not in letter.payload_excerpt


def test_deeply_nested_json_is_dead_lettered_not_raised() -> None:
    result = ingestor(Source.SWIPE).decode(b"[" * 100_000, ORIGIN)
    assert len(result.dead) == 1
    assert result.signals == []


# -- helpers ------------------------------------------------------------------------------


def test_redact_hides_identifying_values_and_shortens() -> None:
    text = json.dumps(
        {"studentId": "A1", "user_name": "bob", "Email": "b@example.ac.uk", "x": "y" * 2000}
    )
    out = redact(text)
    assert "A1" not in out
    assert "bob" not in out
    assert "b@example.ac.uk" not in out
    assert len(out) == 512


def test_approximate_size_grows_with_the_event() -> None:
    small = approximate_size(swipe())
    assert approximate_size(swipe(note="z" * 1000)) >= small + 1000
    assert approximate_size(swipe(nested={"a": "b" * 500})) >= small + 500
    assert approximate_size([1, 2, 3]) == len("[1, 2, 3]")


# -- properties ---------------------------------------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_field_values = (
    st.sampled_from(["2026-10-24T23:30:00Z", "2026-10-24T23:30:00", "in", "", " ", "S1"])
    | _json_scalars
)


@st.composite
def _mutated_swipes(draw: st.DrawFn) -> Any:
    event = swipe(draw(st.integers(0, 999)))
    for key in draw(st.lists(st.sampled_from(sorted(event)), max_size=3)):
        if draw(st.booleans()):
            event.pop(key, None)
        else:
            event[key] = draw(_field_values)
    extra = draw(
        st.dictionaries(
            st.sampled_from(["grade", "note", "religion", "x"]), _json_values, max_size=2
        )
    )
    event.update(extra)
    return event


_messages = st.one_of(
    st.binary(max_size=300),
    _json_values.map(encode),
    _mutated_swipes().map(encode),
    st.fixed_dictionaries(
        {"events": st.lists(_mutated_swipes() | _json_values, max_size=6)},
        optional={"schema_version": st.sampled_from([1, 2, "1"])},
    ).map(encode),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_messages)
def test_decode_never_raises_and_accounts_for_every_input(raw: bytes) -> None:
    result = ingestor(Source.SWIPE).decode(raw, ORIGIN)
    # Every input ends up somewhere: a message-level refusal, or one outcome per event.
    assert len(result.signals) + len(result.dead) == max(result.events, 1)
    for signal in result.signals:
        Signal.model_validate(signal)
        assert STUDENT not in json.dumps(signal)
    for letter in result.dead:
        assert STUDENT not in letter.payload_excerpt
        assert len(letter.payload_excerpt) <= 512


def test_the_signal_carries_the_local_hour_for_source_health() -> None:
    (signal,) = decode(Source.SWIPE, swipe()).signals
    assert signal["hour"] == 0  # 23:30 UTC is 00:30 BST


def test_an_event_dated_beyond_the_clock_skew_is_refused_as_future_dated() -> None:
    ahead = (NOW + timedelta(minutes=6)).isoformat()
    letter = only_dead(decode(Source.SWIPE, swipe(occurred_at=ahead)))
    assert letter.reason is Reason.FUTURE_DATED
    assert "6 minutes in the future" in letter.detail
    assert "ENGAGEMENT_MAX_CLOCK_SKEW_S" in letter.detail


def test_an_event_within_the_clock_skew_is_accepted() -> None:
    ahead = (NOW + timedelta(minutes=4)).isoformat()
    assert len(decode(Source.SWIPE, swipe(occurred_at=ahead)).signals) == 1


def test_a_future_dated_event_in_a_clean_envelope_is_refused_alone() -> None:
    ahead = (NOW + timedelta(days=400)).isoformat()
    envelope = {"events": [swipe(1), swipe(2, occurred_at=ahead), swipe(3)]}
    result = decode(Source.SWIPE, envelope)
    assert [s["event_id"] for s in result.signals] == ["sw-1", "sw-3"]
    assert [d.reason for d in result.dead] == [Reason.FUTURE_DATED]
