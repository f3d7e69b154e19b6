"""The one Redis retry: while Redis cannot be reached, wait and try the same step again.

Every step passed here is safe to repeat: state batches carry their offsets, deliveries carry
their idempotency key, and decisions are re-made from what Redis holds. Nothing is dropped
while Redis is away; the waits are counted per stage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, TypeVar

from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("engagement")

T = TypeVar("T")
REDIS_ERRORS: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ConnectionError,
    TimeoutError,
    OSError,
)


class _Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Histogram(Protocol):
    def observe(self, amount: float) -> None: ...


class _Labelled(Protocol):
    def labels(self, *values: str) -> _Counter: ...


class _LabelledHistogram(Protocol):
    def labels(self, *values: str) -> _Histogram: ...


async def until_redis_answers(
    stage: str,
    step: Callable[[float], Awaitable[T]],
    *,
    waits: _Labelled,
    seconds: _LabelledHistogram | None = None,
    first_delay_s: float = 0.5,
    max_delay_s: float = 10.0,
) -> T:
    """Run ``step(waited_s)`` until Redis answers, doubling the pause up to ``max_delay_s``.

    ``waited_s`` is how long this step has been waiting, so that a decision can record it.
    ``waits`` counts each failed try by stage; ``seconds``, when given, times the try that
    answered.
    """
    delay = first_delay_s
    first_failure: float | None = None
    while True:
        waited = 0.0 if first_failure is None else time.monotonic() - first_failure
        started = time.perf_counter()
        try:
            result = await step(waited)
        except REDIS_ERRORS as exc:
            if first_failure is None:
                first_failure = time.monotonic()
            waits.labels(stage).inc()
            log.warning("redis unavailable in %s (%s); retrying in %.1fs", stage, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
            continue
        if seconds is not None:
            seconds.labels(stage).observe(time.perf_counter() - started)
        return result
