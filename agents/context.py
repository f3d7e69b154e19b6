"""What the agents of one process share: settings, rules, metrics, Redis and the Faust app.

The composition root (``stream.compose``) builds it; agents and the notifier only read it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio as aioredis

from agents.store.retry import until_redis_answers
from ops.health import PartitionLag
from ops.metrics import Metrics
from schemas.rules import RuleSet
from schemas.settings import Settings

T = TypeVar("T")


@dataclass
class Context:
    """What the agents share: settings, rules, metrics and (lazily) Redis."""

    settings: Settings
    kafka_bootstrap: str
    redis_url: str
    rules: RuleSet
    metrics: Metrics
    app: Any = None
    _redis: aioredis.Redis | None = None
    # Partitions consumed outside Faust (the raw ingest's own consumer) report here too.
    lag_sources: list[Callable[[], list[PartitionLag]]] = field(default_factory=list)
    stuck: list[PartitionLag] = field(default_factory=list)

    @property
    def redis(self) -> aioredis.Redis:
        """The Redis client, created on first use inside the running event loop."""
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(
                self.redis_url,
                socket_timeout=5,
                socket_connect_timeout=2,
                retry_on_timeout=False,
            )
        return self._redis

    async def until_redis_answers(self, stage: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run ``step``; while Redis cannot be reached, wait and try again (nothing is lost)."""

        async def attempt(_waited_s: float) -> T:
            return await step()

        return await until_redis_answers(
            stage,
            attempt,
            waits=self.metrics.redis_waits,
            seconds=self.metrics.redis_seconds,
            first_delay_s=self.settings.redis_retry_s,
            max_delay_s=10.0,
        )
