"""Who is sending: bearer tokens bound to a sender (``lms``, ``scanners``), several per sender
while one is rotated out.

Only SHA-256 hashes of the tokens are kept; an offered token is hashed and compared with every
known hash in constant time, so neither the time taken nor an early exit says how much of a
guess was right. xAPI clients that speak only HTTP Basic authentication (most LRS clients) give
the sender's name as the user and the token as the password.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Mapping

from schemas.ingest_settings import token_hash


class Tokens:
    """The configured (sender, token hash) pairs."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = [(sender, bytes.fromhex(digest)) for sender, digest in pairs]
        if not self._pairs:
            msg = "no ingest token is configured"
            raise ValueError(msg)

    @property
    def senders(self) -> list[str]:
        """Every sender with a token, each once."""
        return sorted({sender for sender, _ in self._pairs})

    def sender(self, headers: Mapping[str, str]) -> str | None:
        """The sender an ``Authorization`` header proves, or None."""
        offered = _offered(headers.get("Authorization", ""))
        if offered is None:
            return None
        claimed, token = offered
        digest = bytes.fromhex(token_hash(token))
        found = None
        for sender, known in self._pairs:  # every hash is compared: no early exit
            if hmac.compare_digest(digest, known) and found is None:
                found = sender
        if found is None or (claimed is not None and claimed != found):
            return None
        return found


def _offered(header: str) -> tuple[str | None, str] | None:
    """(the sender a Basic header names, or None for Bearer; the token), or None."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if not value or len(value) > 4096:
        return None
    if scheme.lower() == "bearer":
        return None, value
    if scheme.lower() == "basic":
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = text.partition(":")
        if not sep or not password:
            return None
        return user, password
    return None
