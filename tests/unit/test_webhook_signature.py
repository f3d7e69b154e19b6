"""Webhook signatures (Standard Webhooks v1) and the notifier's check of its secret: pure.

The over-HTTP behaviour, and the check by the Standard Webhooks library itself, are in
tests/integration/test_channels.py and test_receiver.py.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import ConfigError
from schemas.rules import load_rules
from schemas.settings import load_settings
from sinks.channels.webhook import refusal, secret_key, secret_keys, sign, verify
from sinks.config import load_notifier_config

# The test vector published with the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105  # published test vector
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

RAW = "raw-secret-of-enough-length"  # a test secret


def headers(msg_id: str, stamp: int, signature: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def test_the_specification_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    signed = headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_SIGNATURE)
    assert verify(SPEC_SECRET, SPEC_BODY, signed, now=SPEC_TIMESTAMP + 10)


def test_secrets_raw_or_whsec() -> None:
    assert secret_key(RAW) == RAW.encode()
    assert secret_key("whsec_" + base64.b64encode(b"k" * 24).decode()) == b"k" * 24
    assert secret_key("whsec_" + base64.b64encode(b"k" * 25).decode().rstrip("=")) == b"k" * 25
    assert secret_keys(f"{RAW}  {SPEC_SECRET}\n") == [RAW.encode(), secret_key(SPEC_SECRET)]
    assert secret_keys("   ") == []
    for bad in ("whsec_", "whsec_@@@@", "whsec_a=b"):
        with pytest.raises(ValueError, match="secret"):
            secret_key(bad)


def test_two_secrets_make_two_signatures_and_either_verifies() -> None:
    both = sign(f"{SPEC_SECRET} {RAW}", SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    first, second = both.split(" ")
    assert first == SPEC_SIGNATURE
    assert second == sign(RAW, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    signed = headers(SPEC_ID, SPEC_TIMESTAMP, both)
    for secret in (SPEC_SECRET, RAW, f"other-secret-nobody-has {RAW}"):
        assert verify(secret, SPEC_BODY, signed, now=SPEC_TIMESTAMP)
    assert not verify("other-secret-nobody-has", SPEC_BODY, signed, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize(
    ("change", "now_offset", "reason"),
    [
        ({}, 301, "old"),
        ({}, -301, "future"),
        ({"webhook-id": "msg_other"}, 0, "no webhook-signature matches"),
        ({"webhook-timestamp": str(SPEC_TIMESTAMP + 1)}, 0, "no webhook-signature matches"),
        ({"webhook-timestamp": "1614265330.5"}, 0, "whole number"),
        ({"webhook-timestamp": "-1"}, 0, "whole number"),
        ({"webhook-timestamp": "١٦١٤٢٦٥٣٣٠"}, 0, "whole number"),  # digits, not ASCII
        ({"webhook-timestamp": "9" * 40}, 0, "whole number"),
        ({"webhook-signature": SPEC_SIGNATURE[3:]}, 0, "no webhook-signature matches"),
        ({"webhook-signature": "v2," + SPEC_SIGNATURE[3:]}, 0, "no webhook-signature matches"),
        ({"webhook-signature": "v1,é"}, 0, "no webhook-signature matches"),
        ({"webhook-signature": ""}, 0, "required"),
        ({"webhook-id": ""}, 0, "required"),
        ({"webhook-id": "msg_\udcff"}, 0, "ASCII"),  # a stray byte, as aiohttp decodes it
    ],
)
def test_each_refusal_says_why(change: dict[str, str], now_offset: int, reason: str) -> None:
    signed = headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_SIGNATURE) | change
    said = refusal(SPEC_SECRET, SPEC_BODY, signed, now=SPEC_TIMESTAMP + now_offset)
    assert said is not None
    assert reason in said


def test_the_tolerance_is_five_minutes_either_way() -> None:
    signed = headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_SIGNATURE)
    for offset in (-300, 0, 300):
        assert verify(SPEC_SECRET, SPEC_BODY, signed, now=SPEC_TIMESTAMP + offset)
    assert not verify(SPEC_SECRET, SPEC_BODY, signed, now=SPEC_TIMESTAMP + 300.5)


def test_header_names_are_matched_whatever_their_case() -> None:
    signed = {k.upper(): v for k, v in headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_SIGNATURE).items()}
    assert verify(SPEC_SECRET, SPEC_BODY, signed, now=SPEC_TIMESTAMP)


@given(
    msg_id=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    stamp=st.integers(min_value=0, max_value=10**11),
    body=st.binary(max_size=200),
    secret=st.text(alphabet="abcdef0123456789", min_size=16, max_size=64),
)
def test_what_we_sign_verifies_and_never_raises(
    msg_id: str, stamp: int, body: bytes, secret: str
) -> None:
    signed = headers(msg_id, stamp, sign(secret, msg_id, stamp, body))
    assert verify(secret, body, signed, now=stamp)
    assert not verify(secret, body + b"x", signed, now=stamp)


# Any text, lone surrogates too (aiohttp turns a header's stray bytes into them).
ANY_TEXT = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=60)
HEADER_NAMES = st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"])


@given(st.dictionaries(HEADER_NAMES, ANY_TEXT))
def test_any_headers_give_a_reason_and_never_raise(given_headers: dict[str, str]) -> None:
    assert refusal(SPEC_SECRET, SPEC_BODY, given_headers, now=SPEC_TIMESTAMP) is not None


# -- the notifier's check of ENGAGEMENT_WEBHOOK_SECRET ----------------------------------------


def problems(secret: str | None) -> str:
    settings = load_settings(
        pseudonym_key="unit-test-pseudonym-key-0123",
        webhook_url="https://notify.example.ac.uk/notify",
        webhook_secret=secret,
    )
    try:
        load_notifier_config(settings, load_rules(None))
    except ConfigError as exc:
        return str(exc)
    return ""


def test_a_good_secret_raw_whsec_or_two_while_rotating() -> None:
    whsec = "whsec_" + base64.b64encode(b"s" * 32).decode()
    for good in (RAW, whsec, f"{whsec} {RAW}"):
        assert "ENGAGEMENT_WEBHOOK_SECRET" not in problems(good), good


@pytest.mark.parametrize(
    ("secret", "said"),
    [
        (None, "must be set"),
        ("   ", "must be set"),
        ("short", "too short"),
        (f"{RAW} short", "secret 2 of 2"),
        ("whsec_" + base64.b64encode(b"s" * 8).decode(), "too short"),
        ("whsec_not*base64!", "base64"),
        (f"{RAW} {RAW}x {RAW}y", "holds 3 secrets"),
    ],
)
def test_a_bad_secret_stops_the_notifier_saying_what_to_fix(secret: str | None, said: str) -> None:
    text = problems(secret)
    assert "ENGAGEMENT_WEBHOOK_SECRET" in text
    assert said in text
