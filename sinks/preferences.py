"""Student preferences in Redis: read at send time by the notifier, written by the CLI."""

from __future__ import annotations

import redis.asyncio as aioredis

from schemas.preferences import Preferences


class PreferenceStore:
    """Opt-outs keyed by pseudonym. A read failure raises: callers must fail closed."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix

    def key(self, pseudonym: str) -> str:
        """Redis key of one student's preferences."""
        return f"{self.prefix}:prefs:{pseudonym}"

    async def get(self, pseudonym: str) -> Preferences:
        """The student's preferences (defaults when none were ever set)."""
        raw = await self.redis.get(self.key(pseudonym))
        return Preferences.model_validate_json(raw) if raw is not None else Preferences()

    async def set(self, pseudonym: str, preferences: Preferences) -> None:
        """Replace the student's preferences; the change history is kept alongside."""
        payload = preferences.model_dump_json()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.key(pseudonym), payload)
            pipe.rpush(f"{self.key(pseudonym)}:history", payload)
            await pipe.execute()
