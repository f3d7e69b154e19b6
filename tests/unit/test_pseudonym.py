"""Keyed pseudonyms: deterministic per key, unlinkable without it, and cache-independent."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from agents.model.pseudonym import Pseudonymiser

KEY = SecretStr("k" * 20)
FORMAT = re.compile(r"^p_[0-9a-f]{32}$")


def test_the_format_is_p_and_32_hex_digits() -> None:
    pseudonym = Pseudonymiser(KEY)("S1234567")
    assert FORMAT.match(pseudonym)


def test_the_pseudonym_is_the_keyed_hmac_truncated_to_128_bits() -> None:
    expected = hmac.new(b"k" * 20, b"S1234567", hashlib.sha256).hexdigest()[:32]
    assert Pseudonymiser(KEY)("S1234567") == f"p_{expected}"
    # An unkeyed hash of the id (guessable from a list of ids) is not what is produced.
    assert hashlib.sha256(b"S1234567").hexdigest()[:32] != expected


def test_the_same_key_gives_the_same_pseudonym_across_instances() -> None:
    assert Pseudonymiser(KEY)("S1234567") == Pseudonymiser(SecretStr("k" * 20))("S1234567")


def test_different_keys_give_different_pseudonyms() -> None:
    one = Pseudonymiser(KEY)("S1234567")
    other = Pseudonymiser(SecretStr("j" * 20))("S1234567")
    assert one != other


def test_different_students_get_different_pseudonyms() -> None:
    pseudonymise = Pseudonymiser(KEY)
    ids = [f"S{n:07d}" for n in range(2000)]
    assert len({pseudonymise(i) for i in ids}) == len(ids)


@settings(max_examples=200, deadline=None)
@given(student_id=st.text(min_size=1, max_size=64))
def test_pseudonyms_never_contain_the_id(student_id: str) -> None:
    pseudonym = Pseudonymiser(KEY)(student_id)
    assert FORMAT.match(pseudonym)
    if len(student_id) >= 4:
        assert student_id not in pseudonym
    assert Pseudonymiser(KEY)(student_id) == pseudonym


def test_the_key_is_not_shown_in_the_repr() -> None:
    pseudonymise = Pseudonymiser(SecretStr("a-very-secret-key-value"))
    assert "a-very-secret-key-value" not in repr(pseudonymise)


def test_results_do_not_change_once_the_cache_is_past_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Pseudonymiser, "_CACHE_LIMIT", 3)
    cached = Pseudonymiser(KEY)
    ids = [f"S{n:07d}" for n in range(10)]
    first = [cached(i) for i in ids]
    again = [cached(i) for i in reversed(ids)][::-1]
    fresh = [Pseudonymiser(KEY)(i) for i in ids]
    assert first == again == fresh
    # The cache stays bounded.
    assert len(cached._cache) <= 3
