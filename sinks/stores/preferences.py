"""Student preferences in Redis: read at send time by the notifier, changed from the topic.

Keys, under the deployment's prefix ``{p}``: ``{p}:prefs:{pseudonym}`` (current preferences),
``{p}:prefs:{pseudonym}:history`` (every change, oldest first, with time and source) and
``{p}:prefs:applied:{change_id}`` (a change already applied, so a redelivered message is not
applied or kept twice).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from schemas.keys import Keys
from schemas.preferences import PreferenceChange, PreferenceHistoryEntry, Preferences

APPLIED_TTL_S: Final = 90 * 86_400


class PreferenceStore:
    """Opt-outs keyed by pseudonym. A read failure raises: callers must fail closed."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix
        self.keys = Keys(prefix)

    def key(self, pseudonym: str) -> str:
        """Redis key of one student's preferences."""
        return self.keys.preferences(pseudonym)

    async def get(self, pseudonym: str) -> Preferences:
        """The student's preferences (defaults when none were ever set)."""
        raw = await self.redis.get(self.key(pseudonym))
        return Preferences.model_validate_json(raw) if raw is not None else Preferences()

    async def apply(self, pseudonym: str, change: PreferenceChange) -> Preferences | None:
        """Apply one change and keep it in the history; None when it was applied before."""
        key = self.key(pseudonym)
        applied = self.keys.preference_applied(change.change_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key, applied)
                    if await pipe.exists(applied):
                        await pipe.reset()  # type: ignore[no-untyped-call]  # redis-py stub gap
                        return None
                    raw = await pipe.get(key)
                    current = (
                        Preferences.model_validate_json(raw) if raw is not None else Preferences()
                    )
                    updated = change.applied_to(current)
                    entry = PreferenceHistoryEntry(
                        change_id=change.change_id,
                        changed_at=change.changed_at,
                        applied_at=datetime.now(UTC),
                        source=change.source,
                        opt_out_all=change.opt_out_all,
                        opt_out=change.opt_out,
                        opt_in=change.opt_in,
                        result=updated,
                    )
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py stub gap
                    pipe.set(key, updated.model_dump_json())
                    pipe.rpush(self.keys.preference_history(pseudonym), entry.model_dump_json())
                    pipe.set(applied, "1", ex=APPLIED_TTL_S)
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue

    async def history(self, pseudonym: str) -> list[PreferenceHistoryEntry]:
        """Every change the student made, oldest first."""
        rows = await self.redis.lrange(self.keys.preference_history(pseudonym), 0, -1)
        return [PreferenceHistoryEntry.model_validate_json(row) for row in rows]

    def add_read(
        self, pipe: aioredis.client.Pipeline, pseudonym: str
    ) -> Callable[[Any], Preferences]:
        """Add what ``get`` reads to ``pipe`` (for the notifier's batched read); the function
        returned decodes the reply the same way."""
        pipe.get(self.key(pseudonym))

        def decode(raw: Any) -> Preferences:
            return Preferences.model_validate_json(raw) if raw is not None else Preferences()

        return decode
