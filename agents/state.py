"""Per-student engagement state in Redis, applied per batch together with the partition offsets.

Keys (``{p}`` is the key prefix, ``{g}`` the consumer group, ``{n}`` a signals partition):

- ``{p}:s:{pseudonym}``        hash: ``d:{day}:{source}`` counts, ``a:{day}`` attendance marks
                               as ``present,late,absent,excused``,
                               ``first`` and ``ls:{source}`` (epoch ms), ``nudged:{rule}``
- ``{p}:seen:{pseudonym}:{day}`` set of the event ids applied for that day (expires)
- ``{p}:offsets:{g}``          hash: partition → last applied offset of the signals topic
- ``{p}:wm:{g}``               hash: ``{partition}:{source}:{raw partition}`` → max event
                               time (ms); a feed's watermark is the lowest over raw partitions
- ``{p}:due:vle:{n}``          sorted set: pseudonym scored by the start of its VLE absence
- ``{p}:pending:att:{n}``      hash: pseudonym → ``first_day:last_day:published_ms`` to evaluate
- ``{p}:id:{pseudonym}``       the student id, for re-identification at delivery only (expires)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from agents.rules import AttendanceDay

_SCRIPT = resources.files("agents").joinpath("state.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Gap:
    """A VLE absence that ended (the student came back) before any nudge was sent for it."""

    pseudonym: str
    partition: int
    last_seen_ms: int
    returned_ms: int


@dataclass(frozen=True)
class Late:
    """An event that arrived more than the grace period behind its feed, and was not counted."""

    event_id: str
    source: str
    late_ms: int
    partition: int
    offset: int


@dataclass
class ApplyResult:
    """What one batch did to the state."""

    applied: int = 0
    duplicates: int = 0
    skipped_messages: int = 0
    gaps: list[Gap] = field(default_factory=list)
    watermarks: dict[tuple[int, str], int] = field(default_factory=dict)
    late: list[Late] = field(default_factory=list)


@dataclass(frozen=True)
class Pending:
    """A student whose attendance changed on days [first_day, last_day] and awaits evaluation."""

    pseudonym: str
    first_day: int
    last_day: int
    published_at_ms: int | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EngagementStore:
    """Reads and writes the engagement state of one consumer group."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        group: str,
        dedup_ttl_s: int,
        state_ttl_s: int,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.group = group
        self._dedup_ttl = dedup_ttl_s
        self._state_ttl = state_ttl_s
        self._script = client.register_script(_SCRIPT)
        self._identity_written: dict[str, float] = {}

    def student_key(self, pseudonym: str) -> str:
        """Key of one student's state hash."""
        return f"{self.prefix}:s:{pseudonym}"

    async def apply(
        self, messages: Sequence[tuple[int, int, bytes]], absence_ms: int, grace_ms: int = 0
    ) -> ApplyResult:
        """Apply (partition, offset, SignalBatch JSON) messages atomically with their offsets."""
        if not messages:
            return ApplyResult()
        args: list[Any] = [
            self.prefix,
            self.group,
            self._dedup_ttl,
            self._state_ttl,
            absence_ms,
            grace_ms,
        ]
        for partition, offset, payload in messages:
            args.extend((partition, offset, payload))
        applied, duplicates, skipped, gaps, wms, late = await self._script(args=args)
        result = ApplyResult(int(applied), int(duplicates), int(skipped))
        for i in range(0, len(gaps), 4):
            result.gaps.append(
                Gap(_text(gaps[i]), int(gaps[i + 1]), int(gaps[i + 2]), int(gaps[i + 3]))
            )
        for i in range(0, len(late), 5):
            event_id, source = _text(late[i]), _text(late[i + 1])
            result.late.append(Late(event_id, source, *(int(v) for v in late[i + 2 : i + 5])))
        for i in range(0, len(wms), 3):
            result.watermarks[(int(wms[i]), _text(wms[i + 1]))] = int(wms[i + 2])
        return result

    async def pending_attendance(self, partition: int) -> list[Pending]:
        """Students whose attendance changed and whose rules have not been evaluated since."""
        raw = await self.redis.hgetall(f"{self.prefix}:pending:att:{partition}")
        pending = []
        for who, value in raw.items():
            first, last, published = _text(value).split(":")
            pending.append(
                Pending(_text(who), int(first), int(last), int(published) if published else None)
            )
        return pending

    async def clear_pending(self, partition: int, pseudonyms: Iterable[str]) -> None:
        """Forget evaluated students (after their nudges were acknowledged by the broker)."""
        names = list(pseudonyms)
        if names:
            await self.redis.hdel(f"{self.prefix}:pending:att:{partition}", *names)

    async def attendance_history(
        self, pending: Sequence[Pending], window_days: int, rule_id: str
    ) -> dict[str, tuple[dict[int, AttendanceDay], int | None]]:
        """Per student: day → marks over the days a window may need, and the last nudged day."""
        fields_by_student: dict[str, list[str]] = {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in pending:
                fields = [f"nudged:{rule_id}"]
                fields.extend(
                    f"a:{day}" for day in range(item.first_day - window_days + 1, item.last_day + 1)
                )
                fields_by_student[item.pseudonym] = fields
                pipe.hmget(self.student_key(item.pseudonym), fields)
            replies = await pipe.execute()
        history: dict[str, tuple[dict[int, AttendanceDay], int | None]] = {}
        for item, values in zip(pending, replies, strict=True):
            fields = fields_by_student[item.pseudonym]
            nudged = int(values[0]) if values[0] is not None else None
            days: dict[int, AttendanceDay] = {}
            for name, value in zip(fields[1:], values[1:], strict=True):
                if value is not None:
                    counts = (int(n) for n in _text(value).split(","))
                    days[int(name[2:])] = AttendanceDay(*counts)
            history[item.pseudonym] = (days, nudged)
        return history

    async def mark_nudged(self, rule_id: str, last_days: Mapping[str, int]) -> None:
        """Record the last day each student was nudged by a rule (its cooldown clock)."""
        if not last_days:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for who, day in last_days.items():
                pipe.hset(self.student_key(who), f"nudged:{rule_id}", day)
            await pipe.execute()

    async def due_vle(self, partition: int, before_ms: int) -> list[tuple[str, int]]:
        """Students on a partition whose VLE absence began at or before ``before_ms``."""
        rows = await self.redis.zrangebyscore(
            f"{self.prefix}:due:vle:{partition}", "-inf", before_ms, withscores=True
        )
        return [(_text(row[0]), int(row[1])) for row in rows]

    async def clear_due(self, partition: int, pseudonyms: Iterable[str]) -> None:
        """Stop watching absences that have been nudged; the next VLE event re-arms them."""
        names = list(pseudonyms)
        if names:
            await self.redis.zrem(f"{self.prefix}:due:vle:{partition}", *names)

    async def remember_identities(self, identities: Mapping[str, str], ttl_s: int) -> None:
        """Keep pseudonym → student id for delivery, in one pipeline per batch.

        A student seen again within a tenth of the TTL is not rewritten: the key cannot expire
        before then, and skipping it saves one Redis write per event on the hot path.
        """
        now = time.monotonic()
        refresh = ttl_s / 10
        fresh = {
            p: sid
            for p, sid in identities.items()
            if now - self._identity_written.get(p, -refresh) >= refresh
        }
        if not fresh:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for pseudonym, student_id in fresh.items():
                pipe.set(f"{self.prefix}:id:{pseudonym}", student_id, ex=ttl_s)
            await pipe.execute()
        if len(self._identity_written) > 500_000:
            self._identity_written.clear()
        for pseudonym in fresh:
            self._identity_written[pseudonym] = now

    async def identity(self, pseudonym: str) -> str | None:
        """The student id behind a pseudonym, for re-identification at delivery only."""
        value = await self.redis.get(f"{self.prefix}:id:{pseudonym}")
        return _text(value) if value is not None else None
