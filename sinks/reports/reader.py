"""The reports' reads from Redis: the UKVI records, and the roster and state for SLC.

Keys: the ``ukvi``, ``roster``, ``identity``, ``exemptions`` and ``state`` families of the key
register. Student ids come from the UKVI record itself (written while the identity was held),
then the identity key, then the roster entry when it carries one; a report row without one
names the student's pseudonym only. Nothing here logs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from agents.model.contacts import decode
from agents.model.corrections import apply_corrections
from agents.model.eventtime import local_day_of_ms
from agents.store.reference import read_exemptions
from agents.store.state import EngagementStore
from schemas.keys import ROSTER, UKVI, Keys
from sinks.reports.slc import SlcStudent
from sinks.reports.ukvi import UkviStudent

_SCAN_COUNT = 1000
_CHUNK = 500  # students per pipeline when reading state for a census period


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ReportReader:
    """Reads what the UKVI and SLC reports are computed from."""

    def __init__(self, client: aioredis.Redis, prefix: str, zone: ZoneInfo) -> None:
        self.redis = client
        self.zone = zone
        self.prefix = prefix
        self.keys = Keys(prefix)
        # Only load_students is used: the group and TTLs are not read by it.
        self._state = EngagementStore(
            client, prefix=prefix, group="reports", dedup_ttl_s=1, state_ttl_s=1
        )

    async def _pseudonyms(self, family: Any) -> list[str]:
        pattern = family.pattern(self.prefix)
        found = set()
        async for raw in self.redis.scan_iter(match=family.glob(self.prefix), count=_SCAN_COUNT):
            matched = pattern.match(_text(raw))
            if matched:
                found.add(matched.group("pseudonym"))
        return sorted(found)

    async def _ids(self, pseudonyms: Sequence[str]) -> dict[str, str]:
        """Student ids from the identity keys, else from the roster's identity keys."""
        if not pseudonyms:
            return {}
        ids = await self.redis.mget([self.keys.identity(p) for p in pseudonyms])
        rostered = await self.redis.mget([self.keys.roster_identity(p) for p in pseudonyms])
        out = {}
        for who, sid, rid in zip(pseudonyms, ids, rostered, strict=True):
            if sid is not None:
                out[who] = _text(sid)
            elif rid is not None:
                out[who] = _text(rid)
        return out

    async def ukvi_students(self) -> list[UkviStudent]:
        """Every student with a UKVI record, with the days recorded."""
        names = await self._pseudonyms(UKVI)
        async with self.redis.pipeline(transaction=False) as pipe:
            for who in names:
                pipe.hgetall(self.keys.ukvi(who))
            replies = await pipe.execute()
        ids = await self._ids(names)
        out = []
        for who, raw in zip(names, replies, strict=True):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            records = {}
            for name, value in fields.items():
                record = decode(value) if name.lstrip("-").isdigit() else None
                if record is not None:
                    records[int(name)] = record
            out.append(UkviStudent(who, fields.get("id") or ids.get(who), records))
        return out

    async def slc_students(self, first: date, last: date) -> list[SlcStudent]:
        """Every student on the roster, with the days in [first, last] their state shows them
        engaged (an attended contact point, or any other event), corrections applied."""
        names = await self._pseudonyms(ROSTER)
        rosters = await self.redis.mget([self.keys.roster(p) for p in names]) if names else []
        ids = await self._ids(names)
        out = []
        for start in range(0, len(names), _CHUNK):
            chunk = names[start : start + _CHUNK]
            held = {
                s.pseudonym: s
                for s in await self._state.load_students(chunk, first.toordinal(), last.toordinal())
            }
            exemptions = await read_exemptions(self.redis, self.keys, chunk)
            for offset, who in enumerate(chunk):
                raw = rosters[start + offset]
                entry = json.loads(raw) if raw is not None else {}
                item = held.get(who)
                engaged: frozenset[int] = frozenset()
                first_day = None
                if item is not None:
                    facts = apply_corrections(item.facts, item.corrections)
                    engaged = frozenset(
                        d
                        for d, f in facts.items()
                        if f.attended or f.swipes or f.vle or any(n for _, n in f.others)
                    )
                    first_day = local_day_of_ms(item.first_ms, self.zone)
                out.append(
                    SlcStudent(
                        pseudonym=who,
                        student_id=ids.get(who),
                        term_start=entry.get("term_start"),
                        first_day=first_day,
                        engaged_days=engaged,
                        exemptions=exemptions.get(who, ()),
                    )
                )
        return out
