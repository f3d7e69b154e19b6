"""Reference data in Redis: roster, timetable and exemptions, loaded from compacted topics.

Keys (``{p}`` is the key prefix):

- ``{p}:roster:{pseudonym}``  JSON: modules, sponsored-visa flag, personal tutor, course
- ``{p}:tt:{day}``            hash: session id → JSON (module, building, local start/end hour)
- ``{p}:ttday``               hash: session id → day (so a moved or deleted session is found)
- ``{p}:ex:{pseudonym}``      hash: exemption id → JSON (kind, first and last day)
- ``{p}:exwho``               hash: exemption id → pseudonym
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from pydantic import ValidationError

from agents.model.pseudonym import Pseudonymiser
from agents.model.rules import Period
from schemas.common import classify_validation_error
from schemas.reference import REFERENCE_MODELS, Exemption, RosterEntry, TimetableSession


@dataclass(frozen=True)
class Enrolment:
    """What the rules and health checks need from the roster."""

    modules: frozenset[str]
    sponsored_visa: bool
    personal_tutor: str | None


@dataclass(frozen=True)
class Session:
    """A timetabled session on one local day, in local hours [start_hour, end_hour)."""

    session_id: str
    module: str
    building: str
    start_hour: int
    end_hour: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ReferenceStore:
    """Applies reference records and answers the detector's questions about them."""

    def __init__(
        self, client: aioredis.Redis, prefix: str, pseudonymise: Pseudonymiser, zone: ZoneInfo
    ) -> None:
        self.redis = client
        self.prefix = prefix
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
        else:
            await self.put_exemption(record)
        return None

    async def _delete(self, kind: str, key: str) -> None:
        p = self.prefix
        if kind == "roster":
            await self.redis.delete(f"{p}:roster:{self.pseudonymise(key)}")
        elif kind == "timetable":
            day = await self.redis.hget(f"{p}:ttday", key)
            if day is not None:
                await self.redis.hdel(f"{p}:tt:{_text(day)}", key)
                await self.redis.hdel(f"{p}:ttday", key)
        else:
            who = await self.redis.hget(f"{p}:exwho", key)
            if who is not None:
                await self.redis.hdel(f"{p}:ex:{_text(who)}", key)
                await self.redis.hdel(f"{p}:exwho", key)

    async def put_roster(self, entry: RosterEntry) -> None:
        """Store one roster entry under the student's pseudonym."""
        value = {
            "modules": sorted(entry.modules),
            "sponsored_visa": entry.sponsored_visa,
            "personal_tutor": entry.personal_tutor,
            "course": entry.course,
        }
        who = self.pseudonymise(entry.student_id)
        await self.redis.set(f"{self.prefix}:roster:{who}", json.dumps(value))

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
            pipe.hset(f"{self.prefix}:tt:{day}", session.session_id, json.dumps(value))
            pipe.hset(f"{self.prefix}:ttday", session.session_id, day)
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
            pipe.hset(f"{self.prefix}:ex:{who}", exemption.exemption_id, json.dumps(value))
            pipe.hset(f"{self.prefix}:exwho", exemption.exemption_id, who)
            await pipe.execute()

    async def enrolments(self, pseudonyms: Sequence[str]) -> dict[str, Enrolment]:
        """Roster entries of the students that have one."""
        if not pseudonyms:
            return {}
        values = await self.redis.mget([f"{self.prefix}:roster:{who}" for who in pseudonyms])
        out = {}
        for who, value in zip(pseudonyms, values, strict=True):
            if value is not None:
                data = json.loads(value)
                out[who] = Enrolment(
                    frozenset(data["modules"]), bool(data["sponsored_visa"]), data["personal_tutor"]
                )
        return out

    async def exemptions(self, pseudonyms: Sequence[str]) -> dict[str, tuple[Period, ...]]:
        """Exemption periods of the students that have any, in start order."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for who in pseudonyms:
                pipe.hvals(f"{self.prefix}:ex:{who}")
            replies = await pipe.execute()
        out = {}
        for who, values in zip(pseudonyms, replies, strict=True):
            if values:
                periods = [json.loads(v) for v in values]
                found = [Period(p["kind"], p["start"], p["end"]) for p in periods]
                out[who] = tuple(sorted(found, key=lambda p: (p.start, p.kind)))
        return out

    async def sessions(self, day: int) -> list[Session]:
        """The timetable of one local day, in session-id order."""
        raw = await self.redis.hgetall(f"{self.prefix}:tt:{day}")
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
