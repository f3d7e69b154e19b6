"""The audit log: who read whose data, what, when, and whether they were allowed.

Every read of one student's data through the API (and the review queue's reads) appends one
entry. Entries are only ever appended; nothing rewrites them, and they are trimmed by age
(``ENGAGEMENT_AUDIT_RETENTION_DAYS``) on write. The log names whose data it was by the
student's pseudonym, never their id; a student reading their own data is named by their
pseudonym too, so the log holds no student id at all.

Keys: the ``audit_log`` family (one global list, oldest first: what compliance reviews) and
the ``audit_student`` family (one list per pseudonym, oldest first: "who has looked at my
data" in one read). Both are Redis lists, as the key register's export reads shared lists;
the two appends go in one pipeline, the student's key expires with the retention period.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final, Literal

import redis.asyncio as aioredis
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from redis.exceptions import WatchError

from schemas.api_settings import ApiSettings
from schemas.keys import Keys

log = logging.getLogger("engagement.audit")

Outcome = Literal["read", "refused", "listed", "decided", "erased"]
DEFAULT_RETENTION_DAYS: Final = int(ApiSettings.model_fields["audit_retention_days"].default)
# How many of the oldest entries one trim looks at; the rest wait for the next write.
TRIM_BATCH: Final = 200


class AuditEntry(BaseModel):
    """One read (or refused read) of one student's data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    who: str
    role: str
    pseudonym: str | None = Field(
        description="Whose data; None for an erasure, which leaves nothing that names them."
    )
    action: str
    at: AwareDatetime
    outcome: Outcome = "read"


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        msg = f"a timezone-aware time is needed, got {moment!r}"
        raise ValueError(msg)
    return moment


class AuditLog:
    """Appends audit entries and answers who has looked at one student's data."""

    def __init__(self, client: aioredis.Redis, prefix: str, *, retention_days: int) -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self.retention = timedelta(days=retention_days)

    async def record(
        self,
        *,
        who: str,
        role: str,
        pseudonym: str | None,
        action: str,
        now: datetime,
        outcome: Outcome = "read",
    ) -> None:
        """Append one entry to the global log and to the student's own index (an entry about
        an erasure names nobody and goes to the global log only)."""
        await self.record_many(
            who=who, role=role, pseudonyms=[pseudonym], action=action, now=now, outcome=outcome
        )

    async def record_many(
        self,
        *,
        who: str,
        role: str,
        pseudonyms: Sequence[str | None],
        action: str,
        now: datetime,
        outcome: Outcome = "read",
    ) -> None:
        """One entry per student of a read that showed several (a report, a review queue), in
        one round trip: each appended to the global log and to that student's own index."""
        if not pseudonyms:
            return
        at = _aware(now)
        entries = [
            AuditEntry(who=who, role=role, pseudonym=p, action=action, at=at, outcome=outcome)
            for p in pseudonyms
        ]
        rows = [entry.model_dump_json() for entry in entries]
        keys = [self.keys.audit_log()]
        ttl = int(self.retention.total_seconds())
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(keys[0], *rows)
            pipe.lindex(keys[0], 0)
            for entry, row in zip(entries, rows, strict=True):
                if entry.pseudonym is not None:
                    keys.append(self.keys.audit_student(entry.pseudonym))
                    pipe.rpush(keys[-1], row)
                    pipe.expire(keys[-1], ttl)
                    pipe.lindex(keys[-1], 0)
            replies = await pipe.execute()
        # Each list's oldest entry came back with the append: trim (a transaction) only a list
        # that holds something past the retention, not on every read.
        cutoff = at - self.retention
        for key, head in zip(keys, [replies[1], *replies[4::3]], strict=True):
            if head is not None and AuditEntry.model_validate_json(head).at < cutoff:
                await self._trim(key, cutoff)

    async def about(self, pseudonym: str, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries about one student, newest first."""
        if limit <= 0:
            return []
        rows = await self.redis.lrange(self.keys.audit_student(pseudonym), -limit, -1)
        return [AuditEntry.model_validate_json(row) for row in reversed(rows)]

    async def latest(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries of the global log, newest first."""
        if limit <= 0:
            return []
        rows = await self.redis.lrange(self.keys.audit_log(), -limit, -1)
        return [AuditEntry.model_validate_json(row) for row in reversed(rows)]

    async def trim(self, now: datetime, pseudonym: str | None = None) -> int:
        """Drop entries older than the retention period from the global log (and from one
        student's index); the number dropped from the global log."""
        cutoff = _aware(now) - self.retention
        dropped = await self._trim(self.keys.audit_log(), cutoff)
        if pseudonym is not None:
            await self._trim(self.keys.audit_student(pseudonym), cutoff)
        return dropped

    async def _trim(self, key: str, cutoff: datetime) -> int:
        # Entries are appended in time order, so the old ones are at the head. WATCH makes
        # two processes trimming at once drop them once; a lost race leaves it to the next.
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                rows = await pipe.lrange(key, 0, TRIM_BATCH - 1)
                old = 0
                for row in rows:
                    if AuditEntry.model_validate_json(row).at >= cutoff:
                        break
                    old += 1
                if not old:
                    await pipe.reset()  # type: ignore[no-untyped-call]  # redis-py stub gap
                    return 0
                pipe.multi()  # type: ignore[no-untyped-call]  # redis-py stub gap
                pipe.ltrim(key, old, -1)
                await pipe.execute()
            except WatchError:
                return 0
        return old
