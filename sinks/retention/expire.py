"""Expiry by retention class: remove what ``sinks.retention.plan`` says has outlived its period.

Walks the key register, so a family added later is covered by its retention class. A list's
expired head is trimmed under WATCH, so an entry appended (at the tail) or trimmed by its
store meanwhile is never lost or removed twice; whole keys are deleted only if they still say
what was read. With ``dry_run`` nothing is removed and the counts say what would be.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from schemas.keys import REGISTER, KeyFamily, Retention
from sinks.retention.plan import (
    Periods,
    Target,
    closed_expired,
    cutoff,
    dated_expired,
    expired_head,
    targets,
)

log = logging.getLogger("engagement.retention")

SCAN_COUNT: Final = 1000
HEAD_BATCH: Final = 500  # list entries read per round
MGET_BATCH: Final = 500


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


async def keys_of(client: aioredis.Redis, family: KeyFamily, prefix: str) -> list[str]:
    """Every existing key of one family (SCAN, then the family's own pattern)."""
    own = family.pattern(prefix)
    found = []
    async for raw in client.scan_iter(match=family.glob(prefix), count=SCAN_COUNT):
        key = _text(raw)
        if own.match(key):
            found.append(key)
    return sorted(found)


async def expire(
    client: aioredis.Redis, prefix: str, by_class: Periods, now: datetime, *, dry_run: bool
) -> Counter[Retention]:
    """Remove every entry and key older than its class's period; how many, per class."""
    removed: Counter[Retention] = Counter()
    for target in targets(by_class, REGISTER):
        before = cutoff(now, target.days)
        keys = await keys_of(client, target.family, prefix)
        count = await _expire_family(client, target, keys, before, prefix, dry_run=dry_run)
        if count:
            removed[target.family.retention] += count
            log.info("retention: %d expired from %s", count, target.family.name)
    return removed


async def _expire_family(
    client: aioredis.Redis,
    target: Target,
    keys: list[str],
    before: datetime,
    prefix: str,
    *,
    dry_run: bool,
) -> int:
    if target.shape == "head":
        return sum([await _trim_head(client, key, before, dry_run=dry_run) for key in keys])
    if target.shape == "closed":
        count = 0
        for key in keys:
            count += await _drop_closed(client, target, key, before, prefix, dry_run=dry_run)
        return count
    return await _drop_dated(client, keys, before, dry_run=dry_run)


async def _trim_head(client: aioredis.Redis, key: str, before: datetime, *, dry_run: bool) -> int:
    """Trim the expired head of one oldest-first list, a batch at a time."""
    total = 0
    if dry_run:  # count only: read on past each full batch
        while True:
            rows: list[Any] = await client.lrange(key, total, total + HEAD_BATCH - 1)
            count = expired_head(rows, before)
            total += count
            if count < HEAD_BATCH:
                return total
    while True:
        async with client.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                rows = await pipe.lrange(key, 0, HEAD_BATCH - 1)
                count = expired_head(rows, before)
                if count == 0:
                    await pipe.reset()  # type: ignore[no-untyped-call]  # redis-py stub gap
                    return total
                pipe.multi()  # type: ignore[no-untyped-call]  # redis-py stub gap
                pipe.ltrim(key, count, -1)
                await pipe.execute()
            except WatchError:
                continue  # appended or trimmed meanwhile: read the head again
        total += count
        if count < HEAD_BATCH:
            return total


async def _drop_closed(
    client: aioredis.Redis,
    target: Target,
    key: str,
    before: datetime,
    prefix: str,
    *,
    dry_run: bool,
) -> int:
    """Delete a decided item older than the period, and its id from its class's sorted sets."""
    raw: dict[Any, Any] = await client.hgetall(key)
    fields = {_text(k): _text(v) for k, v in raw.items()}
    if not closed_expired(fields, before):
        return 0
    if dry_run:
        return 1
    match = target.family.pattern(prefix).match(key)
    ids = [v for v in (match.groupdict().values() if match else ()) if v]
    zsets = [
        k
        for family in REGISTER
        if family.redis_type == "zset" and family.retention is target.family.retention
        for k in await keys_of(client, family, prefix)
    ]
    async with client.pipeline(transaction=True) as pipe:
        try:
            await pipe.watch(key)
            if _text(await pipe.hget(key, "decided") or b"") != "1":
                await pipe.reset()  # type: ignore[no-untyped-call]  # redis-py stub gap
                return 0
            pipe.multi()  # type: ignore[no-untyped-call]  # redis-py stub gap
            pipe.delete(key)
            for zset in zsets:
                if ids:
                    pipe.zrem(zset, *ids)
            await pipe.execute()
        except WatchError:
            return 0  # changed meanwhile: the next run decides again
    return 1


async def _drop_dated(
    client: aioredis.Redis, keys: list[str], before: datetime, *, dry_run: bool
) -> int:
    """Delete string keys whose dated value is older than the period."""
    count = 0
    for start in range(0, len(keys), MGET_BATCH):
        chunk = keys[start : start + MGET_BATCH]
        values = await client.mget(chunk)
        old = [k for k, v in zip(chunk, values, strict=True) if dated_expired(v, before)]
        if old and not dry_run:
            await client.delete(*old)
        count += len(old)
    return count
