"""What an import looks up in Redis, once per batch: the identity map and the lookup tables.

:class:`RedisLookups` is the import's ``lookup``: called with identity-map keys it answers from
``{p}:actors`` (as before), and its :meth:`~RedisLookups.table` answers from a lookup table
such as the reader map ``{p}:readers``. :func:`resolve_tables` is the batch step
``stream.ingest.imports`` runs after the identity step; with a ``lookup`` that has no tables
(or none at all) every cell counts as missing from its table, as the mapping's ``missing``
says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from agents.adapters.mapping_refs import apply_lookups, looked_up, wanted
from agents.adapters.units import Unit
from schemas.keys import Keys
from schemas.mappings import Mapping as SourceMapping


@runtime_checkable
class Tables(Protocol):
    """Something that reads stored entries of a lookup table."""

    def table(self, name: str, keys: Sequence[str]) -> Mapping[str, str]:
        """The stored entries (JSON text) of those ``keys`` that exist."""
        ...


def _decoded(keys: Sequence[str], values: Sequence[Any]) -> dict[str, str]:
    return {
        k: v.decode() if isinstance(v, bytes) else str(v)
        for k, v in zip(keys, values, strict=True)
        if v is not None
    }


class RedisLookups:
    """The identity map and the lookup tables on one (synchronous) Redis client."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        keys = Keys(prefix)
        self._actors = keys.actors()
        self._tables = {"readers": keys.readers()}

    def __call__(self, keys: Sequence[str]) -> Mapping[str, str]:
        """Identity-map entries (actor key → student id) of those keys that exist."""
        return _decoded(keys, self.client.hmget(self._actors, list(keys)))

    def table(self, name: str, keys: Sequence[str]) -> Mapping[str, str]:
        """Entries of one lookup table, one HMGET."""
        return _decoded(keys, self.client.hmget(self._tables[name], list(keys)))


def resolve_tables(units: list[Unit], mapping: SourceMapping, lookup: object) -> list[Unit]:
    """The batch's looked-up fields resolved (a no-op for a mapping without any)."""
    fields = looked_up(mapping)
    if not fields:
        return units
    found: dict[str, Mapping[str, str]] = {}
    if isinstance(lookup, Tables):
        found = {
            table: lookup.table(table, cells) for table, cells in wanted(units, fields).items()
        }
    return apply_lookups(units, fields, found)
