"""Keyed pseudonyms: the only form of a student id that leaves the ingest boundary."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr


class Pseudonymiser:
    """HMAC-SHA256 of the student id under a secret key, truncated to 128 bits.

    Without the key a pseudonym cannot be linked back to a student id (nor guessed from a
    list of ids). A small cache avoids recomputing the HMAC for the same student in a batch.
    """

    _CACHE_LIMIT = 200_000

    def __init__(self, key: SecretStr) -> None:
        self._key = key.get_secret_value().encode()
        self._cache: dict[str, str] = {}

    def __call__(self, student_id: str) -> str:
        """Return the pseudonym ``p_<32 hex>`` of ``student_id``."""
        cached = self._cache.get(student_id)
        if cached is not None:
            return cached
        digest = hmac.new(self._key, student_id.encode(), hashlib.sha256).hexdigest()
        pseudonym = f"p_{digest[:32]}"
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[student_id] = pseudonym
        return pseudonym
