"""The UKVI attendance record: one hash per visa-sponsored student, one field per day.

Keys: the ``ukvi`` family of the key register (``schemas/keys/``), kept under its own
retention class: the hash expires ``ENGAGEMENT_UKVI_RETENTION_DAYS`` after the last day written
to it, so a student's record is kept while they are sponsored and attending, and for the
retention period after. The detector calls :meth:`UkviRecorder.record` for the days it has just
closed (``agents/detect.py``); a day's record is rebuilt from the state, the roster, the
timetable, the exemptions and the day's data gaps, with the marks as known when it is written
(every register correction applied), so closing a day again (a replay, a second worker) writes
the same record. A correction made on a later day rewrites the record of the day it corrects
when the day it was made closes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from agents.model.contacts import day_record
from agents.model.corrections import apply_corrections
from agents.model.health import covers
from agents.model.reference import Enrolment
from agents.store.reference import ReferenceStore
from agents.store.state import EngagementStore
from schemas.keys import ROSTER, Keys
from schemas.report_settings import UKVI_RETENTION_DAYS

_SCAN_COUNT = 1000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class UkviRecorder:
    """Writes the daily contact-point records of visa-sponsored students."""

    def __init__(
        self, client: aioredis.Redis, prefix: str, *, retention_days: int = UKVI_RETENTION_DAYS
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.ttl_s = retention_days * 86_400

    async def sponsored(self, reference: ReferenceStore) -> dict[str, Enrolment]:
        """Every student the roster marks as visa-sponsored, by pseudonym (one SCAN a pass:
        a pass closes a day, so this runs about once a day)."""
        pattern = ROSTER.pattern(self.prefix)
        names = []
        async for raw in self.redis.scan_iter(match=ROSTER.glob(self.prefix), count=_SCAN_COUNT):
            found = pattern.match(_text(raw))
            if found:
                names.append(found.group("pseudonym"))
        enrolments = await reference.enrolments(sorted(names))
        return {who: e for who, e in enrolments.items() if e.sponsored_visa}

    async def record(
        self, store: EngagementStore, reference: ReferenceStore, first: int, last: int
    ) -> int:
        """Write the records of days [first, last] (just closed) for every sponsored student,
        and rewrite earlier days that a correction made in [first, last] changed; returns how
        many student-days were written."""
        sponsored = await self.sponsored(reference)
        if not sponsored or first > last:
            return 0
        names = sorted(sponsored)
        # Corrections made in the pass may reach back to days before it: read those too.
        held = {s.pseudonym: s for s in await store.load_students(names, first, last)}
        low = min(
            (c.day for s in held.values() for c in s.corrections if first <= c.effective <= last),
            default=first,
        )
        if low < first:
            held = {s.pseudonym: s for s in await store.load_students(names, low, last)}
        days = range(low, last + 1)
        sessions = {day: await reference.sessions(day) for day in days}
        gaps = await store.gaps(list(days))
        exemptions = await reference.exemptions(names)
        # Sponsored students are on the roster, whose identity key names them even when they
        # have sent no event.
        ids = await self.redis.mget([self.keys.roster_identity(who) for who in names])
        written = 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for who, student_id in zip(names, ids, strict=True):
                enrolment = sponsored[who]
                item = held.get(who)
                facts = {}
                wanted = set(range(first, last + 1))
                if item is not None:
                    # The marks as known now, every correction applied, so that writing any
                    # day again gives the same record; a day a correction made in the pass
                    # changed is written again.
                    facts = apply_corrections(item.facts, item.corrections)
                    wanted |= {c.day for c in item.corrections if first <= c.effective <= last}
                key = self.keys.ukvi(who)
                fields: dict[str, str] = {}
                empty: list[str] = []
                for day in sorted(d for d in wanted if d >= low):
                    gap = any(
                        "attendance" in g.affects and covers(g, enrolment)
                        for g in gaps.get(day, ())
                    )
                    record = day_record(
                        day,
                        facts.get(day),
                        sessions[day],
                        enrolment,
                        exemptions.get(who, ()),
                        gap=gap,
                    )
                    if record is None:
                        empty.append(str(day))
                    else:
                        fields[str(day)] = record.encode()
                if empty:
                    pipe.hdel(key, *empty)  # a day that holds nothing any more (idempotence)
                if fields:
                    if student_id is not None:
                        fields["id"] = _text(student_id)
                    pipe.hset(key, mapping={k: v for k, v in fields.items()})
                    pipe.expire(key, self.ttl_s)
                    written += len(fields) - ("id" in fields)
            await pipe.execute()
        return written

    async def read(self, pseudonyms: Sequence[str]) -> list[dict[str, str]]:
        """The stored records of these students (field → value), in order."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for who in pseudonyms:
                pipe.hgetall(self.keys.ukvi(who))
            replies = await pipe.execute()
        return [{_text(k): _text(v) for k, v in reply.items()} for reply in replies]
