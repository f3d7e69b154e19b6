"""Prompts deferred by quiet hours, waiting in Redis until they are due.

``{p}:deferred`` is a sorted set of nudge ids scored by the time (ms) they are due, and
``{p}:deferred:nudge:{nudge_id}`` holds each nudge. A notifier takes a due prompt by moving
its score forward by a lease, in one script, so two notifiers never take the same one; a
notifier that dies holding it loses the lease and the prompt is taken again. It leaves the
set only after its decision is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from agents.store.scripts import script
from schemas.keys import Keys
from schemas.nudges import Nudge


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class DeferredPrompts:
    """Add, take when due, and finish deferred prompts."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self.key = self.keys.deferred()
        self._claim = script(client, "deferred_take")

    def _nudge(self, nudge_id: str) -> str:
        return self.keys.deferred_nudge(nudge_id)

    async def add(self, nudge: Nudge, due: datetime) -> None:
        """Keep ``nudge`` until ``due`` (adding it again only moves its time)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._nudge(nudge.nudge_id), nudge.model_dump_json())
            pipe.zadd(self.key, {nudge.nudge_id: _ms(due)})
            await pipe.execute()

    async def take_due(self, now: datetime, *, lease_s: float, limit: int = 100) -> list[Nudge]:
        """Prompts due at ``now``, each held for ``lease_s`` by this caller."""
        ids = await self._claim(
            keys=[self.key], args=[_ms(now), _ms(now) + int(lease_s * 1000), limit]
        )
        if not ids:
            return []
        rows = await self.redis.mget([self._nudge(i.decode()) for i in ids])
        return [Nudge.model_validate_json(row) for row in rows if row is not None]

    async def due(self, nudge_id: str) -> datetime | None:
        """When a deferred prompt is due (or taken until), or None if it is not deferred."""
        score = await self.redis.zscore(self.key, nudge_id)
        return None if score is None else datetime.fromtimestamp(score / 1000, tz=UTC)

    async def finish(self, nudge_id: str) -> None:
        """The prompt's decision is recorded: forget it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.key, nudge_id)
            pipe.delete(self._nudge(nudge_id))
            await pipe.execute()

    async def waiting(self) -> int:
        """How many prompts are deferred."""
        return int(await self.redis.zcard(self.key))

    def add_due_read(
        self, pipe: aioredis.client.Pipeline, nudge_id: str
    ) -> Callable[[Any], datetime | None]:
        """Add what ``due`` reads to ``pipe`` (for the notifier's batched read); the function
        returned decodes the reply the same way."""
        pipe.zscore(self.key, nudge_id)

        def decode(score: Any) -> datetime | None:
            return None if score is None else datetime.fromtimestamp(float(score) / 1000, tz=UTC)

        return decode
