"""Erasure of one student: every key and entry about them goes; a tombstone and a receipt stay.

Driven by the key register (``agents.store.register.student_keys`` and the ``about`` column):
keys named by the pseudonym or holding one of the student's nudges are deleted; entries about
the student in shared keys (set members, hash fields, list entries, sorted-set members) are
removed, found by the pseudonym or, where one is known, by the student id (the identity map
holds ids, not pseudonyms); the student's nudge ids leave every sorted set (review queues,
deferred prompts). Keys of the classes in ``keep`` stay: by default the UKVI record, which
the sponsor must keep for its own period after sponsorship ends (a legal obligation that
erasure does not override); it expires by ``ENGAGEMENT_UKVI_RETENTION_DAYS``.

Order: the receipt first (so a re-run repeats the same tombstone and time; it is taken back
if the tombstone cannot be published, and nothing is erased), then the tombstone on the log
of record, then the entries in shared keys, and the student's own keys
last, in one DEL. A failure part-way leaves the receipt, the tombstone and the student's own
keys (their withdrawal among them): running the erasure again, or the next day's job,
finishes it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import redis.asyncio as aioredis
from pydantic import SecretStr, ValidationError

from agents.store.register import student_keys
from schemas.keys import REGISTER, KeyFamily, Keys, Retention, family_of
from sinks.retention.expire import keys_of
from sinks.retention.tombstone import (
    ErasureReceipt,
    ErasureTombstone,
    check_reason,
    new_tombstone_id,
    receipt_id,
)

log = logging.getLogger("engagement.retention")

KEEP: Final = frozenset({Retention.UKVI})
Publish = Callable[[ErasureTombstone], Awaitable[None]]


@dataclass
class Erasure:
    """What one erasure did (counts and families only: it names nobody)."""

    receipt: ErasureReceipt
    keys_deleted: int = 0
    entries_removed: int = 0
    kept: list[str] = field(default_factory=list)  # families kept (e.g. ukvi)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


async def read_receipt(
    client: aioredis.Redis, prefix: str, key: SecretStr, pseudonym: str
) -> ErasureReceipt | None:
    """The receipt of the student behind ``pseudonym``: erased when and why, or None."""
    raw = await client.get(Keys(prefix).erasure_receipt(receipt_id(key, pseudonym)))
    if raw is None:
        return None
    try:
        return ErasureReceipt.model_validate_json(raw)
    except ValidationError:
        return None


async def erase(
    client: aioredis.Redis,
    prefix: str,
    key: SecretStr,
    pseudonym: str,
    *,
    reason: str,
    now: datetime,
    student_id: str | None = None,
    publish: Publish | None = None,
    keep: Collection[Retention] = KEEP,
) -> Erasure:
    """Erase every key and entry about ``pseudonym`` but those of ``keep``'s classes."""
    keys = Keys(prefix)
    if student_id is None:  # the identity key, while it lasts, gives the id for shared maps
        raw = await client.get(keys.identity(pseudonym))
        student_id = None if raw is None else _text(raw)
    text = check_reason(reason, student_id, pseudonym)
    nudges = await _nudges(client, keys, pseudonym)
    found = await student_keys(client, prefix, pseudonym)
    doomed, kept = [], []
    for name in found.own:
        family = family_of(name, prefix)
        if family is not None and family.retention in keep:
            kept.append(family.name)
        else:
            doomed.append(name)
    receipt = await _announce(client, prefix, key, pseudonym, text, now, len(doomed), publish)
    done = Erasure(receipt, kept=kept)
    who = _Who(pseudonym, student_id)
    cleaned = [f for f in REGISTER if f.retention not in keep]
    for family in cleaned:  # also items whose records have already expired
        if family.about == "value":
            done.keys_deleted += await _delete_if_names(client, family, prefix, who, nudges)
    for family in cleaned:
        if family.about == "entries" or family.redis_type == "zset":
            for name in await keys_of(client, family, prefix):
                done.entries_removed += await _remove_entries(client, family, name, who, nudges)
    if doomed:  # last: while the student's own keys (their withdrawal) last, a re-run finds them
        done.keys_deleted += int(await client.delete(*doomed))
    log.info(
        "erased one student: %d keys, %d entries; kept %s",
        done.keys_deleted,
        done.entries_removed,
        ", ".join(done.kept) or "nothing",
    )
    return done


async def _announce(  # each argument is one part of the receipt or the tombstone
    client: aioredis.Redis,
    prefix: str,
    key: SecretStr,
    pseudonym: str,
    reason: str,
    now: datetime,
    doomed: int,
    publish: Publish | None,
) -> ErasureReceipt:
    """Write the receipt (or find the one a previous run wrote) and publish the tombstone;
    a receipt this call wrote is taken back if the tombstone cannot be published."""
    receipt_key = Keys(prefix).erasure_receipt(receipt_id(key, pseudonym))
    receipt = await read_receipt(client, prefix, key, pseudonym)
    first = receipt is None
    if receipt is None:
        receipt = ErasureReceipt(erased_at=now, reason=reason, tombstone_id=new_tombstone_id())
        await client.set(receipt_key, receipt.model_dump_json())
    tombstone = ErasureTombstone(
        tombstone_id=receipt.tombstone_id,
        erased_at=receipt.erased_at,
        reason=receipt.reason,
        keys_deleted=doomed,
    )
    try:
        if publish is not None:
            await publish(tombstone)
    except BaseException:
        if first:  # nothing was erased: no receipt may say it was
            await client.delete(receipt_key)
        raise
    return receipt


async def _nudges(client: aioredis.Redis, keys: Keys, pseudonym: str) -> set[str]:
    rows: list[Any] = await client.lrange(keys.interventions(pseudonym), 0, -1)
    out = set()
    for row in rows:
        try:
            out.add(str(json.loads(row)["nudge_id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out


@dataclass(frozen=True)
class _Who:
    """How an entry names the student: the pseudonym anywhere (its shape is unique), the
    student id as a whole value or a JSON string (an id such as S1 is inside S10)."""

    pseudonym: str
    student_id: str | None

    def named_in(self, text: str) -> bool:
        if self.pseudonym in text:
            return True
        sid = self.student_id
        return bool(sid) and (text == sid or json.dumps(sid) in text)


async def _remove_entries(
    client: aioredis.Redis, family: KeyFamily, key: str, who: _Who, nudges: set[str]
) -> int:
    """Remove the entries of one shared key that are about the student."""
    kind = family.redis_type
    if kind == "set":
        members = [_text(m) for m in await client.smembers(key)]
        gone = [m for m in members if who.named_in(m)]
        return int(await client.srem(key, *gone)) if gone else 0
    if kind == "zset":
        ranked: list[Any] = await client.zrange(key, 0, -1)
        members = [_text(m) for m in ranked]
        gone = [m for m in members if m in nudges or who.named_in(m)]
        return int(await client.zrem(key, *gone)) if gone else 0
    if kind == "hash":
        pairs: dict[Any, Any] = await client.hgetall(key)
        gone = [
            _text(k) for k, v in pairs.items() if who.named_in(_text(k)) or who.named_in(_text(v))
        ]
        return int(await client.hdel(key, *gone)) if gone else 0
    if kind == "list":
        rows: list[Any] = await client.lrange(key, 0, -1)
        removed = 0
        for row in {r for r in rows if who.named_in(_text(r))}:
            removed += int(await client.lrem(key, 0, row))
        return removed
    return 0


async def _delete_if_names(
    client: aioredis.Redis, family: KeyFamily, prefix: str, who: _Who, nudges: set[str]
) -> int:
    """Delete the keys of a value family (a review item, a signed-in session) whose value
    names the student; the nudge ids in their names join ``nudges``."""
    deleted = 0
    pattern = family.pattern(prefix)
    for name in await keys_of(client, family, prefix):
        kind = _text(await client.type(name))
        if kind == "string":
            raw = await client.get(name)
            text = "" if raw is None else _text(raw)
        elif kind == "hash":
            text = " ".join(_text(v) for v in (await client.hvals(name)))
        else:
            continue
        if who.named_in(text):
            deleted += int(await client.delete(name))
            match = pattern.match(name)
            if match and match.groupdict().get("nudge_id"):
                nudges.add(match.group("nudge_id"))
    return deleted
