"""Corrections students ask for, and the staff decisions on them, in Redis.

A student says "I attended this session" (``attended``) or "this activity is not mine"
(``not_mine``); the request waits for a member of staff who may see the student, who accepts
or rejects it with a reason. Accepting an ``attended`` correction makes the API publish an
attendance mark (present) for the session on the raw attendance topic, under a deterministic
event id, so the worker's register-correction rule replaces the earlier mark, and a replay of
the topic gives the same result. An accepted ``not_mine`` correction is recorded and shown to
staff; it changes no count by itself.

Keys: the ``corrections`` (one request, named by the student's pseudonym and its id; JSON in
field ``c``; field ``decided`` is taken once by the decision), ``corrections_owners`` (id →
pseudonym, for a decision made by id), ``corrections_queue`` (every id by the time asked) and
``corrections_student`` (one student's ids) families of the key register: erasure finds every
one of a student's by the register, and what it leaves in the queue are bare ids.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Final, Literal

import redis.asyncio as aioredis
from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.errors import EngagementError
from schemas.keys import Keys
from schemas.signals import Pseudonym

MAX_OPEN_PER_STUDENT: Final = 20
"""Open requests one student may have at once (a form is not a way to fill Redis)."""
LIST_LIMIT: Final = 2000


class CorrectionKind(StrEnum):
    """What the student says is wrong."""

    ATTENDED = "attended"
    NOT_MINE = "not_mine"


class CorrectionStatus(StrEnum):
    """Where a request stands."""

    OPEN = "open"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class CorrectionError(EngagementError):
    """A correction cannot be asked for or decided; ``kind`` says why, the message what to do."""

    def __init__(
        self, message: str, kind: Literal["not_found", "already_decided", "too_many"]
    ) -> None:
        super().__init__(message)
        self.kind = kind


class CorrectionRequest(BaseModel):
    """One request and, once decided, its decision (v1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    correction_id: str
    pseudonym: Pseudonym
    kind: CorrectionKind
    day: date
    session_id: str | None = None
    module: str | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    note: str | None = None
    asked_at: AwareDatetime
    status: CorrectionStatus = CorrectionStatus.OPEN
    decided_by: str | None = None
    decided_at: AwareDatetime | None = None
    reason: str | None = None
    event_id: str | None = None
    """The attendance mark an accepted ``attended`` correction published."""


def new_id() -> str:
    """A fresh correction id (random: two requests are two corrections)."""
    return "c_" + secrets.token_hex(16)


def mark_event_id(correction_id: str) -> str:
    """The event id of the attendance mark an accepted correction publishes: the same every
    time, so a second publication (a retry, a replay) counts once."""
    return f"correction-{correction_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CorrectionStore:
    """CorrectionRequest requests and decisions; see the module docstring."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.redis = client
        self.keys = Keys(prefix)

    async def ask(self, correction: CorrectionRequest) -> CorrectionRequest:
        """Store a new request; refused when the student already has many open."""
        mine = await self.of_student(correction.pseudonym)
        if sum(1 for c in mine if c.status is CorrectionStatus.OPEN) >= MAX_OPEN_PER_STUDENT:
            msg = (
                f"you have {MAX_OPEN_PER_STUDENT} corrections waiting already: staff will "
                "answer them first"
            )
            raise CorrectionError(msg, "too_many")
        score = correction.asked_at.timestamp()
        async with self.redis.pipeline(transaction=True) as pipe:
            key = self.keys.corrections(correction.pseudonym, correction.correction_id)
            pipe.hset(key, "c", correction.model_dump_json())
            pipe.hset(
                self.keys.corrections_owners(), correction.correction_id, correction.pseudonym
            )
            pipe.zadd(self.keys.corrections_queue(), {correction.correction_id: score})
            pipe.zadd(
                self.keys.corrections_student(correction.pseudonym),
                {correction.correction_id: score},
            )
            await pipe.execute()
        return correction

    async def _load(self, ids: Sequence[str]) -> list[CorrectionRequest]:
        """The requests of these ids that are still held (erased ones are skipped)."""
        if not ids:
            return []
        owners = await self.redis.hmget(self.keys.corrections_owners(), list(ids))
        held = [(i, _text(o)) for i, o in zip(ids, owners, strict=True) if o is not None]
        async with self.redis.pipeline(transaction=False) as pipe:
            for correction_id, pseudonym in held:
                pipe.hget(self.keys.corrections(pseudonym, correction_id), "c")
            rows = await pipe.execute()
        return [CorrectionRequest.model_validate_json(row) for row in rows if row is not None]

    async def get(self, correction_id: str) -> CorrectionRequest | None:
        """One request, or None."""
        found = await self._load([correction_id])
        return found[0] if found else None

    async def of_student(self, pseudonym: str) -> list[CorrectionRequest]:
        """Every request of one student, newest first."""
        ids = await self.redis.zrevrange(self.keys.corrections_student(pseudonym), 0, -1)
        return await self._load([_text(i) for i in ids])

    async def listing(self, *, status: CorrectionStatus | None) -> list[CorrectionRequest]:
        """The newest requests (up to LIST_LIMIT), oldest first; only ``status`` if given."""
        ids = await self.redis.zrange(self.keys.corrections_queue(), -LIST_LIMIT, -1)
        found = await self._load([_text(i) for i in ids])
        return [c for c in found if status is None or c.status is status]

    async def decide(
        self,
        correction_id: str,
        *,
        accept: bool,
        staff_id: str,
        reason: str,
        now: datetime,
        publish: Callable[[CorrectionRequest], Awaitable[None]] | None = None,
    ) -> CorrectionRequest:
        """Accept or reject an open request, once: a second decision is refused. ``publish``
        runs (for an accepted ``attended`` one) after the decision is taken and before it is
        stored; if it fails, the request is open again and the failure is raised."""
        found = await self.get(correction_id)
        if found is None:
            msg = f"no correction {correction_id}"
            raise CorrectionError(msg, "not_found")
        key = self.keys.corrections(found.pseudonym, correction_id)
        if found.status is not CorrectionStatus.OPEN or not await self.redis.hsetnx(
            key, "decided", staff_id
        ):
            msg = f"correction {correction_id} is already decided"
            raise CorrectionError(msg, "already_decided")
        accepted = accept and found.kind is CorrectionKind.ATTENDED
        decided = found.model_copy(
            update={
                "status": CorrectionStatus.ACCEPTED if accept else CorrectionStatus.REJECTED,
                "decided_by": staff_id,
                "decided_at": now,
                "reason": reason,
                "event_id": mark_event_id(correction_id) if accepted else None,
            }
        )
        if publish is not None and accepted:
            try:
                await publish(decided)
            except BaseException:
                await self.redis.hdel(key, "decided")
                raise
        await self.redis.hset(key, "c", decided.model_dump_json())
        return decided
