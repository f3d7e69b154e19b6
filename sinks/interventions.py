"""The intervention log of record: the topic, plus a per-student index in Redis to read back."""

from __future__ import annotations

import hashlib
from typing import Any

import redis.asyncio as aioredis

from schemas.interventions import InterventionRecord

_APPEND = """
local added = redis.call('SET', KEYS[1], '1', 'NX')
if added then redis.call('RPUSH', KEYS[2], ARGV[1]) end
redis.call('SET', KEYS[3], 'done')
if added then return 1 end
return 0
"""


def record_id(nudge_id: str, stage: str) -> str:
    """Deterministic id of the record one stage writes about one nudge."""
    return "r_" + hashlib.sha256(f"{nudge_id}|{stage}".encode()).hexdigest()[:32]


class InterventionLog:
    """Appends records; one record per nudge and stage, even when a write is repeated."""

    def __init__(self, client: aioredis.Redis, prefix: str, topic: Any) -> None:
        self.redis = client
        self.prefix = prefix
        self.topic = topic
        self._append_script = client.register_script(_APPEND)

    def _index(self, pseudonym: str) -> str:
        return f"{self.prefix}:iv:{pseudonym}"

    def _done(self, nudge_id: str) -> str:
        return f"{self.prefix}:nudge:{nudge_id}"

    async def status(self, nudge_id: str) -> str | None:
        """``sending`` while a delivery may be in flight, ``done`` once recorded, else None."""
        value = await self.redis.get(self._done(nudge_id))
        return value.decode() if isinstance(value, bytes) else value

    async def mark_sending(self, nudge_id: str) -> None:
        """Note that a delivery is about to be attempted (a restart then re-sends it with the
        same idempotency key instead of guessing)."""
        await self.redis.set(self._done(nudge_id), "sending", nx=True)

    async def append(self, record: InterventionRecord) -> bool:
        """Publish and index ``record`` unless it was already; True when this call indexed it.

        The Redis index is written atomically with the nudge's ``done`` mark. A crash between
        the topic write and the index can repeat the topic entry (same ``record_id``, which
        consumers of the topic use to de-duplicate); the index never holds it twice.
        """
        await (
            await self.topic.send(
                key=record.pseudonym.encode(), value=record.model_dump_json().encode(), force=True
            )
        )
        added = await self._append_script(
            keys=[
                f"{self.prefix}:recorded:{record.record_id}",
                self._index(record.pseudonym),
                self._done(record.nudge_id),
            ],
            args=[record.model_dump_json()],
        )
        return bool(added)

    async def for_student(self, pseudonym: str) -> list[InterventionRecord]:
        """Every record about one student, oldest first."""
        rows = await self.redis.lrange(self._index(pseudonym), 0, -1)
        return [InterventionRecord.model_validate_json(row) for row in rows]
