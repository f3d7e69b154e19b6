"""Reference data in Redis: roster, timetable and exemptions, loaded from compacted topics.

Keys: the ``roster``, ``timetable``, ``timetable_days``, ``exemptions``,
``exemption_owners``, ``actors`` (the identity map) and ``readers`` (the reader map) families
of the key register (``schemas/keys/``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from pydantic import ValidationError

from agents.model.pseudonym import Pseudonymiser
from agents.model.reference import Enrolment, Period, Session
from schemas.common import classify_validation_error
from schemas.keys import Keys
from schemas.reference import (
    REFERENCE_MODELS,
    Exemption,
    IdentityLink,
    ReaderLocation,
    RosterEntry,
    TimetableSession,
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _enrolment(data: dict[str, Any]) -> Enrolment:
    """A stored roster entry as the model reads it (entries stored before the term start was
    kept have none)."""
    return Enrolment(
        frozenset(data["modules"]),
        bool(data["sponsored_visa"]),
        data["personal_tutor"],
        data.get("term_start"),
    )


class ReferenceStore:
    """Applies reference records and answers the detector's questions about them."""

    def __init__(
        self, client: aioredis.Redis, prefix: str, pseudonymise: Pseudonymiser, zone: ZoneInfo
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.pseudonymise = pseudonymise
        self.zone = zone

    async def apply(self, kind: str, key: bytes | None, value: bytes | None) -> str | None:
        """Apply one record (or a tombstone); returns why it was refused, or None."""
        if not value:
            if not key:
                return "a tombstone needs the record's id as its key"
            await self._delete(kind, key.decode("utf-8", errors="replace"))
            return None
        try:
            record = REFERENCE_MODELS[kind].model_validate_json(value)
        except ValidationError as exc:
            return classify_validation_error(exc)[1]
        if isinstance(record, RosterEntry):
            await self.put_roster(record)
        elif isinstance(record, TimetableSession):
            await self.put_session(record)
        elif isinstance(record, IdentityLink):
            await self.redis.hset(self.keys.actors(), record.actor, record.student_id)
        elif isinstance(record, ReaderLocation):
            where = {"building": record.building, "campus": record.campus}
            await self.redis.hset(self.keys.readers(), record.reader_id, json.dumps(where))
        else:
            await self.put_exemption(record)
        return None

    async def _delete(self, kind: str, key: str) -> None:
        if kind == "roster":
            student = self.pseudonymise(key)
            await self.redis.delete(self.keys.roster(student), self.keys.roster_identity(student))
        elif kind == "identity":
            await self.redis.hdel(self.keys.actors(), key)
        elif kind == "readers":
            await self.redis.hdel(self.keys.readers(), key)
        elif kind == "timetable":
            day = await self.redis.hget(self.keys.timetable_days(), key)
            if day is not None:
                await self.redis.hdel(self.keys.timetable(_text(day)), key)
                await self.redis.hdel(self.keys.timetable_days(), key)
        else:
            who = await self.redis.hget(self.keys.exemption_owners(), key)
            if who is not None:
                await self.redis.hdel(self.keys.exemptions(_text(who)), key)
                await self.redis.hdel(self.keys.exemption_owners(), key)

    async def put_roster(self, entry: RosterEntry) -> None:
        """Store one roster entry under the student's pseudonym."""
        value = {
            "modules": sorted(entry.modules),
            "sponsored_visa": entry.sponsored_visa,
            "personal_tutor": entry.personal_tutor,
            "course": entry.course,
            "term_start": entry.term_starts_on.toordinal() if entry.term_starts_on else None,
        }
        who = self.pseudonymise(entry.student_id)
        # The id itself is kept apart from the entry, in the one family an authorised reader
        # (a compliance report) re-identifies from; the entry stays pseudonymous.
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.roster(who), json.dumps(value))
            pipe.set(self.keys.roster_identity(who), entry.student_id)
            await pipe.execute()

    async def put_session(self, session: TimetableSession) -> None:
        """Store one session under its local day (moving it if its day changed)."""
        start = session.starts_at.astimezone(self.zone)
        end = session.ends_at.astimezone(self.zone)
        day = start.date().toordinal()
        end_hour = 24 if end.date() > start.date() else math.ceil(end.hour + end.minute / 60)
        value = {
            "module": session.module,
            "building": session.building,
            "start_hour": start.hour,
            "end_hour": max(end_hour, start.hour + 1),
        }
        await self._delete("timetable", session.session_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.timetable(day), session.session_id, json.dumps(value))
            pipe.hset(self.keys.timetable_days(), session.session_id, day)
            await pipe.execute()

    async def put_exemption(self, exemption: Exemption) -> None:
        """Store one exemption under the student's pseudonym."""
        who = self.pseudonymise(exemption.student_id)
        value = {
            "kind": exemption.kind.value,
            "start": exemption.starts_on.toordinal(),
            "end": exemption.ends_on.toordinal() if exemption.ends_on else None,
        }
        await self._delete("exemptions", exemption.exemption_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.exemptions(who), exemption.exemption_id, json.dumps(value))
            pipe.hset(self.keys.exemption_owners(), exemption.exemption_id, who)
            await pipe.execute()

    async def enrolments(self, pseudonyms: Sequence[str]) -> dict[str, Enrolment]:
        """Roster entries of the students that have one."""
        if not pseudonyms:
            return {}
        values = await self.redis.mget([self.keys.roster(who) for who in pseudonyms])
        out = {}
        for who, value in zip(pseudonyms, values, strict=True):
            if value is not None:
                out[who] = _enrolment(json.loads(value))
        return out

    async def exemptions(self, pseudonyms: Sequence[str]) -> dict[str, tuple[Period, ...]]:
        """Exemption periods of the students that have any, in start order."""
        return await read_exemptions(self.redis, self.keys, pseudonyms)

    async def sessions(self, day: int) -> list[Session]:
        """The timetable of one local day, in session-id order."""
        raw = await self.redis.hgetall(self.keys.timetable(day))
        sessions = []
        for session_id, value in sorted(raw.items()):
            data = json.loads(value)
            sessions.append(
                Session(
                    _text(session_id),
                    data["module"],
                    data["building"],
                    data["start_hour"],
                    data["end_hour"],
                )
            )
        return sessions

    def add_enrolment_read(
        self, pipe: aioredis.client.Pipeline, pseudonym: str
    ) -> Callable[[Any], Enrolment | None]:
        """Add the read of one student's roster entry to ``pipe`` (for the notifier's batched
        read); the function returned decodes it as ``enrolments`` does."""
        pipe.get(self.keys.roster(pseudonym))

        def decode(value: Any) -> Enrolment | None:
            if value is None:
                return None
            return _enrolment(json.loads(value))

        return decode


async def read_exemptions(
    client: aioredis.Redis, keys: Keys, pseudonyms: Sequence[str]
) -> dict[str, tuple[Period, ...]]:
    """Exemption periods of the students that have any, in start order (one pipeline)."""
    async with client.pipeline(transaction=False) as pipe:
        for who in pseudonyms:
            pipe.hvals(keys.exemptions(who))
        replies = await pipe.execute()
    out = {}
    for who, values in zip(pseudonyms, replies, strict=True):
        if values:
            periods = [json.loads(v) for v in values]
            found = [Period(p["kind"], p["start"], p["end"]) for p in periods]
            out[who] = tuple(sorted(found, key=lambda p: (p.start, p.kind)))
    return out
