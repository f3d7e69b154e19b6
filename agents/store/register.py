"""Everything Redis holds about one student, found through the key register.

Subject-access export, erasure on withdrawal and the retention job all start here: the keys
that are the student's own (their name carries the pseudonym, or they hold one of the
student's nudges), and the shared keys that hold entries about them (set members, hash
fields, list items).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from schemas.keys import REGISTER, KeyFamily, Keys

_SCAN_COUNT = 1000


@dataclass
class StudentKeys:
    """The keys about one pseudonym: whole keys, and shared keys with entries about them."""

    own: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _existing(
    client: aioredis.Redis, family: KeyFamily, prefix: str, **values: str
) -> list[str]:
    """Keys of a family for the given placeholders, the others found by SCAN."""
    if set(family.fields) <= values.keys():
        key = family.key(prefix, **values)
        return [key] if await client.exists(key) else []
    own = family.pattern(prefix)
    found = []
    async for raw in client.scan_iter(match=family.glob(prefix, **values), count=_SCAN_COUNT):
        key = _text(raw)
        if own.match(key):
            found.append(key)
    return found


async def _nudges(client: aioredis.Redis, keys: Keys, pseudonym: str) -> set[str]:
    """The nudge ids behind the student's intervention records."""
    rows = await client.lrange(keys.interventions(pseudonym), 0, -1)
    return {json.loads(row)["nudge_id"] for row in rows}


async def student_keys(client: aioredis.Redis, prefix: str, pseudonym: str) -> StudentKeys:
    """Every key holding data about ``pseudonym``, by the register's ``about`` column."""
    keys = Keys(prefix)
    out = StudentKeys()
    nudges = await _nudges(client, keys, pseudonym)
    for family in REGISTER:
        if family.about == "name":
            out.own.extend(await _existing(client, family, prefix, pseudonym=pseudonym))
        elif family.about == "value" and family.fields == ("nudge_id",):
            for nudge_id in sorted(nudges):
                out.own.extend(await _existing(client, family, prefix, nudge_id=nudge_id))
        elif family.about == "entries":
            for key in await _existing(client, family, prefix):
                if await _holds(client, family, key, pseudonym):
                    out.shared.append(key)
    out.own.sort()
    out.shared.sort()
    return out


async def _holds(client: aioredis.Redis, family: KeyFamily, key: str, pseudonym: str) -> bool:
    """Whether a shared key has an entry about the student."""
    if family.redis_type == "set":
        return bool(await client.sismember(key, pseudonym))
    if family.redis_type == "hash":
        return any(_text(v) == pseudonym for v in await client.hvals(key))
    rows = await client.lrange(key, 0, -1)
    return any(pseudonym in _text(row) for row in rows)
