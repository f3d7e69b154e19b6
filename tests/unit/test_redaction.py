"""Dead letters carry no identity (issue 12, item 9).

A corpus of bad inputs with identifiers planted everywhere (identifying fields, keys, event
ids, allowed fields, broken JSON, Python reprs, CSV lines, envelopes): no dead letter and no
log line holds one. The end-to-end check, with the worker's metrics and log, is
tests/integration/test_bad_input.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from agents.decode import Ingestor, Origin
from agents.model.pseudonym import Pseudonymiser
from agents.redact import EXCERPT_FIELDS, REDACTED, Redactor, identities, looks_identifying
from schemas.common import Reason, Source
from schemas.deadletter import DeadLetter
from schemas.feeds import CardSwipe
from schemas.sources import SOURCES
from tests.unit.test_decode import KIB16, LONDON, MIB, NOW, attendance, swipe, vle

ORIGIN = Origin(topic="raw.swipe", partition=0, offset=7)
# Planted identifiers: each must never appear in a dead letter or a log line.
STUDENT_ID = "S7654321"
STUDENT_NUMBER = "20987654"
UPN = "jbloggs7@student.example.ac.uk"
EMAIL = "joe.bloggs@example.ac.uk"
SID = "zqk8wm"  # no shape at all: known only because it sits under an identifying key
SIS_ID = "SIS-4410-2291"
ACTOR_IRI = "https://sso.example.ac.uk/people/jbloggs"
IP_V4 = "192.0.2.44"
IP_V6 = "2001:db8::4:44"
NAME = "Joe Bloggs"
PLANTED = (
    STUDENT_ID, STUDENT_NUMBER, UPN, EMAIL, SID, SIS_ID, ACTOR_IRI, IP_V4, IP_V6, NAME,
    "jbloggs", "joe.bloggs", "jbloggs7",
)  # fmt: skip

IDENTITY = {
    "student_number": STUDENT_NUMBER,
    "upn": UPN,
    "sid": SID,
    "email": EMAIL,
    "sis_id": SIS_ID,
    "ip_address": IP_V4,
    "client_ip": IP_V6,
    "actor": {"objectType": "Agent", "name": NAME, "mbox": f"mailto:{EMAIL}"},
    "account": {"homePage": ACTOR_IRI, "name": "jbloggs"},
}


def ingestor(source: Source) -> Ingestor:
    return Ingestor(
        source,
        Pseudonymiser(SecretStr("k" * 20)),
        LONDON,
        max_message_bytes=MIB,
        max_event_bytes=KIB16,
        clock=lambda: NOW,
    )


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def corpus() -> Iterator[tuple[str, Source, bytes]]:
    """(what, feed, message): every one of them is refused, and every one holds identifiers."""
    bad = {"occurred_at": "not a time"}
    ids = {**IDENTITY, "student_id": STUDENT_ID}
    yield "every identifying field", Source.SWIPE, js(swipe(1, **ids, **bad))
    yield "in the student id", Source.SWIPE, js(swipe(1, student_id=STUDENT_ID, direction="up"))
    yield "numeric student id", Source.SWIPE, js(swipe(1, student_id=int(STUDENT_NUMBER)))
    yield "upn as the student id", Source.VLE, js(vle(1, student_id=UPN, action="graded"))
    for field, value in (("event_id", f"sw-{STUDENT_ID}-1"), ("event_id", f"sw-{SID}-2")):
        yield f"{field} holds it", Source.SWIPE, js(swipe(1, **{field: value}, sid=SID, **bad))
    yield "event id is a number", Source.SWIPE, js(swipe(1, event_id=f"{STUDENT_NUMBER}", **bad))
    yield "event id is an e-mail", Source.SWIPE, js(swipe(1, event_id=EMAIL, **bad))
    yield "event id is an IRI", Source.VLE, js(vle(1, event_id=ACTOR_IRI, **bad))
    for field, value in (
        ("building", STUDENT_NUMBER),
        ("reader_id", EMAIL),
        ("building", IP_V4),
        ("reader_id", IP_V6),
        ("building", ACTOR_IRI),
        ("reader_id", f"door-{SID}"),
        ("building", SIS_ID),
        ("occurred_at", STUDENT_NUMBER),
        ("occurred_at", STUDENT_ID),
        ("direction", STUDENT_ID),
    ):
        event = swipe(1, **{field: value}, sid=SID, sis_id=SIS_ID, schema_version=3)
        yield f"allowed field {field} holds it", Source.SWIPE, js(event)
    yield "resource path", Source.VLE, js(vle(1, resource=f"/user/{STUDENT_NUMBER}", **bad))
    yield "course is an e-mail", Source.VLE, js(vle(1, course=EMAIL, grade="A"))
    yield "session id", Source.ATTENDANCE, js(attendance(1, session_id=STUDENT_NUMBER, **bad))
    yield "a key", Source.SWIPE, js(swipe(1, **{STUDENT_ID: "present", EMAIL: 1}, **bad))
    yield "a key above a forbidden field", Source.SWIPE, js(swipe(1, **{STUDENT_ID: {"grade": 1}}))
    yield "a key above special category", Source.SWIPE, js(swipe(1, x={EMAIL: {"religion": 1}}))
    yield "a key holding NaN", Source.SWIPE, js(swipe(1, **{STUDENT_NUMBER: float("nan")}))
    yield "not an object", Source.SWIPE, js([STUDENT_ID, EMAIL])
    yield "a bare string", Source.SWIPE, js(STUDENT_ID)
    yield "a bare number", Source.SWIPE, js(int(STUDENT_NUMBER))
    yield (
        "xAPI statement",
        Source.VLE,
        js(
            {
                "id": f"{STUDENT_NUMBER}-stmt",
                "actor": IDENTITY["actor"] | {"account": IDENTITY["account"]},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                "object": {"id": f"https://vle.example.ac.uk/user/profile.php?id={STUDENT_NUMBER}"},
                "context": {"extensions": {"ip": IP_V4}},
            }
        ),
    )
    yield "oversized", Source.SWIPE, js(swipe(1, **ids, note="x" * 20_000))
    yield (
        "too deep",
        Source.SWIPE,
        js(swipe(1, **ids))[:-1]
        + b', "x": '
        + b"[" * 40
        + (json.dumps(EMAIL).encode() + b"]" * 40 + b"}"),
    )
    yield (
        "far too deep",
        Source.SWIPE,
        js(swipe(1, **ids))[:-1] + b', "x": ' + b"[" * 2000 + (b"]" * 2000 + b"}"),
    )
    yield (
        "implausible time",
        Source.SWIPE,
        js(swipe(1, **ids, event_id=f"sw-{STUDENT_ID}", occurred_at="1970-01-01T00:00:00Z")),
    )
    yield (
        "future dated",
        Source.SWIPE,
        js(swipe(1, event_id=f"{EMAIL}-1", occurred_at=(NOW + timedelta(hours=1)).isoformat())),
    )
    yield "lone surrogate", Source.SWIPE, js(swipe(1, student_id=STUDENT_ID + "\ud800", sid=SID))
    yield "schema version is an id", Source.SWIPE, js(swipe(1, schema_version=STUDENT_ID))
    yield (
        "envelope version is an id",
        Source.SWIPE,
        js({"schema_version": STUDENT_NUMBER, "sender": EMAIL, "events": [swipe(1)]}),
    )
    yield (
        "envelope of 2",
        Source.SWIPE,
        js({"schema_version": 2, "upn": UPN, "client_ip": IP_V4, "events": [swipe(1)]}),
    )
    yield (
        "envelope with bad events",
        Source.SWIPE,
        js({"events": [swipe(1, **ids, **bad), [STUDENT_ID], STUDENT_NUMBER, {EMAIL: NAME}]}),
    )
    # Not JSON.
    broken = js(swipe(1, **ids))
    for cut in (40, 80, 120, 200, 300, len(broken) - 2):
        yield f"broken JSON cut at {cut}", Source.SWIPE, broken[:cut]
    yield "python dict repr", Source.SWIPE, repr(swipe(1, **ids)).encode()
    yield (
        "pydantic repr",
        Source.SWIPE,
        (
            f"CardSwipe(event_id='sw-1', student_id='{STUDENT_ID}', upn='{UPN}', "
            f"sid={SID}, ip_address={IP_V4}, building='Turing'"
        ).encode(),
    )
    yield (
        "csv line",
        Source.ATTENDANCE,
        (f"{STUDENT_ID},{STUDENT_NUMBER},{EMAIL},2026-10-26T09:05:00Z,CS1010,present\n").encode(),
    )
    yield "not UTF-8", Source.SWIPE, js(swipe(1, **ids))[:-1] + b', "x": "\xff\xfe"}'
    yield (
        "not UTF-8 in an envelope",
        Source.SWIPE,
        (b'{"events": [' + js(swipe(1, **ids))[:-1] + b', "x": "\xff"}, ' + js(swipe(2)) + b"]}"),
    )
    yield (
        "broken event in an envelope",
        Source.SWIPE,
        (b'{"events": [' + js(swipe(1, **ids))[:-1] + b' "x" 1}, ' + js([1]) + b"]}"),
    )
    yield (
        "deep event in an envelope",
        Source.SWIPE,
        (
            b'{"events": [{"student_id": "'
            + STUDENT_ID.encode()
            + b'", "upn": "'
            + UPN.encode()
            + b'", "x": '
            + b"[" * 2000
            + b"]" * 2000
            + b"}]}"
        ),
    )


CORPUS = list(corpus())


def leaks(text: str) -> list[str]:
    """Planted identifiers found in ``text``, also in JSON-escaped or case-changed form."""
    folded = text.casefold()
    found = []
    for value in PLANTED:
        forms = {value, json.dumps(value)[1:-1], value.replace("/", "\\/")}
        if any(form.casefold() in folded for form in forms):
            found.append(value)
    return found


@pytest.mark.parametrize(("what", "source", "raw"), CORPUS, ids=[c[0] for c in CORPUS])
def test_no_dead_letter_or_log_line_holds_a_planted_identifier(
    what: str, source: Source, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = ingestor(source).decode(raw, ORIGIN)
    assert result.dead, f"{what}: expected a refusal"
    assert len(result.dead) + len(result.signals) == result.events
    for letter in result.dead:
        record = letter.model_dump_json()
        assert leaks(record) == [], f"{what}: {record}"
        assert letter.detail and len(letter.payload_excerpt) <= 512
        DeadLetter.model_validate_json(record)
    for signal in result.signals:
        assert leaks(json.dumps(signal)) == [], what
    assert leaks(caplog.text) == [], what


def test_the_corpus_plants_every_identifier_and_a_dead_letter_still_says_what_was_wrong() -> None:
    everything = b"\n".join(raw for _, _, raw in CORPUS).decode("utf-8", "replace")
    assert leaks(everything) == sorted(set(PLANTED), key=PLANTED.index)
    (letter,) = ingestor(Source.SWIPE).decode(CORPUS[0][2], ORIGIN).dead
    assert letter.reason is Reason.INVALID_VALUE and "occurred_at" in letter.detail
    excerpt = json.loads(letter.payload_excerpt)
    assert excerpt["event_id"] == "sw-1"  # opaque: kept, so the sender can find the event
    assert excerpt["student_id"] == REDACTED
    assert excerpt["building"] == "Turing" and excerpt["occurred_at"] == "not a time"
    assert excerpt["[left out]"] == len(IDENTITY)  # fields the schema does not know: counted


def test_an_event_id_that_is_not_opaque_is_hashed_with_the_key() -> None:
    def letter_id(event_id: str, key: str = "k" * 20) -> str | None:
        decoder = Ingestor(
            Source.SWIPE,
            Pseudonymiser(SecretStr(key)),
            LONDON,
            max_message_bytes=MIB,
            max_event_bytes=KIB16,
            clock=lambda: NOW,
        )
        raw = js(swipe(1, event_id=event_id, occurred_at="x"))
        (letter,) = decoder.decode(raw, ORIGIN).dead
        return letter.event_id

    for opaque in ("sw-1", "bench-42", "3f2a9c1e-5b7d-4e21-9c3a-123456789012", "A1b2-C3d4"):
        assert letter_id(opaque) == opaque
    hashed = letter_id(f"sw-{STUDENT_ID}")
    assert hashed is not None and hashed.startswith("h_") and len(hashed) == 26
    assert hashed == letter_id(f"sw-{STUDENT_ID}")  # the same id gets the same hash
    assert hashed != letter_id(f"sw-{STUDENT_ID}", key="j" * 20)  # keyed: not guessable
    for identifying in (STUDENT_NUMBER, f"oulad-AAA-2013J-{STUDENT_NUMBER}-1", EMAIL, IP_V4):
        assert letter_id(identifying) != identifying


def test_an_accepted_event_travels_on_with_the_id_a_dead_letter_would_show() -> None:
    """Post-ingest topics carry no student identifier: an accepted event whose id holds one
    goes on with the keyed hash, the same for every copy (so it is still de-duplicated)."""
    decoder = ingestor(Source.SWIPE)

    def signal_id(event_id: str, student_id: str = STUDENT_ID) -> str:
        raw = js(swipe(1, event_id=event_id, student_id=student_id))
        (signal,) = decoder.decode(raw, ORIGIN).signals
        return str(signal["event_id"])

    assert signal_id("sw-1") == "sw-1"  # opaque: kept, so the sender can find the event
    hashed = signal_id(f"sw-{STUDENT_ID}")
    assert hashed.startswith("h_") and leaks(hashed) == []
    assert hashed == signal_id(f"sw-{STUDENT_ID}")
    bad = js(swipe(1, event_id=f"sw-{STUDENT_ID}", student_id=STUDENT_ID, occurred_at="x"))
    (letter,) = decoder.decode(bad, ORIGIN).dead
    assert letter.event_id == hashed  # the sender's two reports name the event alike
    for identifying in (f"{STUDENT_NUMBER}-1", f"{EMAIL}-1", f"from-{IP_V4}"):
        assert leaks(signal_id(identifying)) == []
    assert signal_id("bench-42") == "bench-42"


def test_every_feed_has_an_allow_list_without_the_student_id() -> None:
    for name, kind in SOURCES.items():
        allowed = EXCERPT_FIELDS[kind.model]
        assert "student_id" not in allowed, name
        assert allowed <= set(kind.model.model_fields), name
        assert {"event_id", "occurred_at"} <= allowed, name


def test_identifiers_are_found_under_identifying_keys_at_any_depth() -> None:
    found = identities({"a": [{"b": IDENTITY}], "student_id": STUDENT_ID})
    for value in (STUDENT_ID, STUDENT_NUMBER, UPN, EMAIL, SID, SIS_ID, IP_V4, NAME):
        assert value.casefold() in found
    assert "jbloggs" in found  # the account name, and the last part of the actor IRI
    assert "joe.bloggs" in found  # the local part of the e-mail address
    for shaped in (STUDENT_NUMBER, EMAIL, ACTOR_IRI, IP_V4, IP_V6, f"u{STUDENT_NUMBER[:6]}"):
        assert looks_identifying(shaped)
    for plain in ("Turing", "CS1010-L-07", "moodle", "2026-10-26T09:05:00Z", "in"):
        assert not looks_identifying(plain)


# -- property: an identifier planted anywhere never comes out -----------------------------

_PLACES = st.sampled_from(
    ["student_id", "key", "event_id", "building", "reader_id", "note", "nested", "upn", "sid"]
)
_SHAPED = st.sampled_from([STUDENT_ID, STUDENT_NUMBER, EMAIL, ACTOR_IRI, IP_V4, UPN])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    place=_PLACES,
    planted=_SHAPED,
    breakage=st.sampled_from(["occurred_at", "grade", "schema_version", "nan", "cut", "none"]),
    cut=st.integers(1, 400),
)
def test_a_planted_identifier_never_reaches_a_dead_letter(
    place: str, planted: str, breakage: str, cut: int
) -> None:
    event: dict[str, Any] = swipe(1)
    if place == "key":
        event[planted] = "x"
    elif place == "nested":
        event["context"] = {"extensions": [{"who": planted}]}
    elif place == "event_id":
        event["event_id"] = f"sw-{planted}"
    else:
        event[place] = planted
    raw = js(event)
    if breakage == "occurred_at":
        raw = js({**event, "occurred_at": 12})
    elif breakage == "grade":
        raw = js({**event, "grade": "A"})
    elif breakage == "schema_version":
        raw = js({**event, "schema_version": 7})
    elif breakage == "nan":
        raw = js({**event, "score_x": float("nan")})
    elif breakage == "cut":
        raw = raw[: min(cut, len(raw) - 1)]
    result = ingestor(Source.SWIPE).decode(raw, ORIGIN)
    for letter in result.dead:
        assert planted not in letter.model_dump_json()


def test_the_redactor_shows_a_type_for_values_it_cannot_show() -> None:
    redactor = Redactor(CardSwipe, Pseudonymiser(SecretStr("k" * 20)))
    shown = json.loads(redactor.excerpt({"building": ["a", "b"], "direction": {"x": 1}}))
    assert shown == {"building": "[a list of 2 items]", "direction": "[an object of 1 fields]"}
    assert json.loads(redactor.excerpt([1, 2])) == "[a list of 2 items]"


_keys = st.sampled_from(["grade", "Final_Result", "religion", "context", "a.b", "x", STUDENT_ID])
_values = st.recursive(
    st.none() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(_keys, _values, max_size=4))
def test_the_forbidden_field_is_the_one_the_shared_policy_finds(value: dict[str, Any]) -> None:
    from agents.rawjson import forbidden_keys
    from schemas.common import find_forbidden

    mine = forbidden_keys(value)
    shared = find_forbidden(value)
    if shared is None:
        assert mine is None
        return
    assert mine is not None and mine[0] is shared[0]
    dotted = ""
    for key in mine[1]:
        dotted += f"[{key}]" if isinstance(key, int) else ("." if dotted else "") + key
    assert dotted == shared[1]


def test_a_key_that_identifies_is_hidden_in_the_sentence_naming_a_forbidden_field() -> None:
    raw = js(swipe(1, x={EMAIL: {"religion": 1}}, context={STUDENT_ID: [{"grade": "A"}]}))
    (letter,) = ingestor(Source.SWIPE).decode(raw, ORIGIN).dead
    assert "field 'x.[key].religion'" in letter.detail
    raw = js(swipe(1, context={"assessment": [{"ok": 1}, {STUDENT_ID: {"Raw Score": 1}}]}))
    (letter,) = ingestor(Source.SWIPE).decode(raw, ORIGIN).dead
    assert "field 'context.assessment[1].[key].Raw Score'" in letter.detail
