"""At most one automated prompt per student in a cooling-off period, whichever rule decided it.

Rules have their own cooldowns (a rule does not decide again about the same student for a
while); this one is about the student's inbox: two rules firing on the same day must not
send two messages. The first prompt to be delivered claims the student's period with
``SET NX``; a prompt that finds it claimed by another nudge is suppressed as ``cooldown``. A
delivery that fails gives the claim back; a notifier restarted mid-delivery finds its own
claim and carries on.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis

from agents.store.scripts import script
from schemas.keys import Keys


class PromptCooldown:
    """Claims and releases a student's cooling-off period in Redis (one script each, so two
    notifiers deciding prompts for the same student at once cannot both claim it)."""

    def __init__(self, client: aioredis.Redis, prefix: str, hours: float) -> None:
        self.redis = client
        self.prefix = prefix
        self.ms = int(hours * 3_600_000)
        self.keys = Keys(prefix)
        self._claim = script(client, "cooldown_claim")
        self._release = script(client, "cooldown_release")

    def _key(self, pseudonym: str) -> str:
        return self.keys.cooldown(pseudonym)

    async def claim(self, pseudonym: str, nudge_id: str, now: datetime) -> datetime | None:
        """None when ``nudge_id`` may be sent (the period is now its own); else the time the
        prompt holding the period claimed it. Times are the notifier's clock."""
        if self.ms <= 0:
            return None
        held = await self._claim(
            keys=[self._key(pseudonym)], args=[nudge_id, int(now.timestamp() * 1000), self.ms]
        )
        if not held:
            return None
        text = held.decode() if isinstance(held, bytes) else str(held)
        return datetime.fromtimestamp(int(text.rsplit("|", 1)[1]) / 1000, tz=UTC)

    async def release(self, pseudonym: str, nudge_id: str) -> None:
        """Give the period back if ``nudge_id`` holds it (the prompt was not delivered)."""
        if self.ms > 0:
            await self._release(keys=[self._key(pseudonym)], args=[nudge_id])
