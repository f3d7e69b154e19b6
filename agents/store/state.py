"""Per-student engagement state in Redis, applied per batch together with the partition offsets.

Keys (``{p}`` is the key prefix, ``{g}`` the consumer group, ``{n}`` a signals partition):

- ``{p}:s:{pseudonym}``          hash: ``d:{day}:{source}`` counts, ``a:{day}`` attendance marks
                                 as ``present,late,absent,excused``, ``first`` and
                                 ``ls:{source}`` (epoch ms), ``r:{rule}`` rule state,
                                 ``prompt`` (the last live prompt), ``ev`` (last day evaluated)
- ``{p}:seen:{pseudonym}:{day}`` set of the event ids applied for that day (expires)
- ``{p}:members:{n}``            set of the students on a partition (whom the rules evaluate)
- ``{p}:offsets:{g}``            hash: partition → last applied offset of the signals topic
- ``{p}:wm:{g}``                 hash: partition → watermark (highest event time seen, ms)
- ``{p}:firstday:{g}``           the earliest day with data (where health checks begin)
- ``{p}:decided:{g}``            hash: partition → last day whose decisions were made
- ``{p}:act:{source}:{day}``     hash: ``{location}|{hour}`` → events (source health)
- ``{p}:id:{pseudonym}``         the student id, for re-identification at delivery only (expires)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from agents.model.rules import Prompt, RuleState, decode_states
from agents.model.score import DayFacts
from schemas.health import SourceGap

_SCRIPT = resources.files("agents.store").joinpath("lua/state.lua").read_text(encoding="utf-8")
# Raise each feed's progress (never lower it); note when it last sent records (if it did) and
# whether its owner has read everything waiting in it; return every feed's state.
_FEEDS = """
for i = 1, #ARGV, 4 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  local progress = tonumber(ARGV[i + 1])
  local wall = ARGV[i + 2]
  if current then
    local known, known_wall = string.match(current, '^(%-?%d+):([^:]*)')
    if tonumber(known) > progress then progress = tonumber(known) end
    if wall == '' then wall = known_wall end
  end
  if wall == '' then wall = '0' end
  redis.call('HSET', KEYS[1], ARGV[i],
    string.format('%d', progress) .. ':' .. wall .. ':' .. ARGV[i + 3])
end
return redis.call('HGETALL', KEYS[1])
"""
ACTIVITY_TTL_S = 35 * 86_400


@dataclass(frozen=True)
class FeedState:
    """One raw feed partition as every ingest sees it."""

    progress: int  # highest event time read from it (ms), or -1 before any
    wall: float  # wall-clock time it last sent records (0: never)
    caught_up: bool  # everything waiting in it has been read


@dataclass(frozen=True)
class Late:
    """An event that arrived more than the grace period behind its partition; not counted."""

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
    watermarks: dict[int, int] = field(default_factory=dict)
    late: list[Late] = field(default_factory=list)


@dataclass
class StoredStudent:
    """One student's facts over a span of days, and the rule state carried between days."""

    pseudonym: str
    first_ms: int
    facts: dict[int, DayFacts]
    states: dict[str, RuleState]
    last_prompt: Prompt | None
    stored: str  # the encoded rule state as read, to write back only what changed


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | None:
    return int(value) if value is not None and value != b"" else None


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
        self._feeds = client.register_script(_FEEDS)
        self._identity_written: dict[str, float] = {}

    def student_key(self, pseudonym: str) -> str:
        """Key of one student's state hash."""
        return f"{self.prefix}:s:{pseudonym}"

    async def apply(
        self, messages: Sequence[tuple[int, int, bytes]], grace_ms: int = 0
    ) -> ApplyResult:
        """Apply (partition, offset, SignalBatch JSON) messages atomically with their offsets."""
        if not messages:
            return ApplyResult()
        args: list[Any] = [
            self.prefix,
            self.group,
            self._dedup_ttl,
            self._state_ttl,
            ACTIVITY_TTL_S,
            grace_ms,
        ]
        for partition, offset, payload in messages:
            args.extend((partition, offset, payload))
        applied, duplicates, skipped, wms, late = await self._script(args=args)
        result = ApplyResult(int(applied), int(duplicates), int(skipped))
        for i in range(0, len(late), 5):
            event_id, source = _text(late[i]), _text(late[i + 1])
            result.late.append(Late(event_id, source, *(int(v) for v in late[i + 2 : i + 5])))
        for i in range(0, len(wms), 2):
            result.watermarks[int(wms[i])] = int(wms[i + 1])
        return result

    async def share_progress(
        self, report: Mapping[tuple[str, int], tuple[int, float | None, bool]]
    ) -> dict[tuple[str, int], FeedState]:
        """Publish this ingest's feeds and read every ingest's (several workers share them).

        ``report`` maps feed → (progress or -1, wall time it last sent records or None,
        whether everything waiting in it has been read).
        """
        args: list[Any] = []
        for (source, partition), (progress, wall, caught_up) in report.items():
            args.extend(
                (f"{source}:{partition}", progress, "" if wall is None else repr(wall),
                 int(caught_up))
            )  # fmt: skip
        raw = await self._feeds(keys=[f"{self.prefix}:feeds:{self.group}"], args=args)
        out: dict[tuple[str, int], FeedState] = {}
        for i in range(0, len(raw), 2):
            source, _, raw_partition = _text(raw[i]).partition(":")
            done, sent, caught = _text(raw[i + 1]).split(":")
            out[(source, int(raw_partition))] = FeedState(int(done), float(sent), caught == "1")
        return out

    async def watermarks(self) -> dict[int, int]:
        """Every partition's watermark (ms)."""
        raw = await self.redis.hgetall(f"{self.prefix}:wm:{self.group}")
        return {int(k): int(v) for k, v in raw.items()}

    async def first_day(self) -> int | None:
        """The earliest day any applied signal belongs to."""
        return _int(await self.redis.get(f"{self.prefix}:firstday:{self.group}"))

    async def decided(self, partition: int) -> int | None:
        """The last day whose decisions were made on a partition."""
        return _int(await self.redis.hget(f"{self.prefix}:decided:{self.group}", str(partition)))

    async def members(self, partition: int) -> list[str]:
        """Students on a partition, sorted (so evaluation order never depends on Redis)."""
        raw = await self.redis.smembers(f"{self.prefix}:members:{partition}")
        return sorted(_text(who) for who in raw)

    async def activity(self, source: str, day: int) -> dict[tuple[str, int], int]:
        """(location, local hour) → events of a source on a day."""
        raw = await self.redis.hgetall(f"{self.prefix}:act:{source}:{day}")
        out: dict[tuple[str, int], int] = {}
        for key, value in raw.items():
            location, _, hour = _text(key).rpartition("|")
            out[(location, int(hour))] = int(value)
        return out

    async def load_students(
        self, pseudonyms: Sequence[str], first: int, last: int
    ) -> list[StoredStudent]:
        """Facts for days [first, last] and the rule state of each student (one pipeline)."""
        days = range(first, last + 1)
        fields = ["first", "rs"]
        for day in days:
            fields.extend((f"d:{day}:swipe", f"d:{day}:vle", f"a:{day}"))
        async with self.redis.pipeline(transaction=False) as pipe:
            for who in pseudonyms:
                pipe.hmget(self.student_key(who), fields)
            replies = await pipe.execute()
        students = []
        for who, values in zip(pseudonyms, replies, strict=True):
            if values[0] is None:
                continue  # expired or erased
            text = _text(values[1]) if values[1] is not None else ""
            states, prompt = decode_states(text)
            facts: dict[int, DayFacts] = {}
            rest = values[2:]
            for n, day in enumerate(days):
                swipes, vle, marks = rest[3 * n : 3 * n + 3]
                if swipes is None and vle is None and marks is None:
                    continue
                p, lt, ab, ex = (int(c) for c in _text(marks).split(",")) if marks else (0,) * 4
                facts[day] = DayFacts(p, lt, ab, ex, swipes=int(swipes or 0), vle=int(vle or 0))
            students.append(StoredStudent(who, int(values[0]), facts, states, prompt, text))
        return students

    async def commit_decisions(
        self, changed: Iterable[tuple[str, str]], partition: int, day: int
    ) -> None:
        """Write changed rule state and the partition's last decided day in one transaction.

        Either every student's state and the day move together or nothing does, so a crash
        in between decides the same days again from the same state.
        """
        async with self.redis.pipeline(transaction=True) as pipe:
            for who, text in changed:
                pipe.hset(self.student_key(who), "rs", text)
            pipe.hset(f"{self.prefix}:decided:{self.group}", str(partition), day)
            await pipe.execute()

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

    # -- source health ---------------------------------------------------------------------

    async def health_done(self) -> int | None:
        """The last day whose source-health checks were made and published."""
        return _int(await self.redis.get(f"{self.prefix}:health:{self.group}"))

    async def set_health_done(self, day: int) -> None:
        """Record that gaps up to ``day`` were found and published."""
        await self.redis.set(f"{self.prefix}:health:{self.group}", day)

    async def save_gaps(self, day: int, gaps: Sequence[SourceGap]) -> None:
        """Keep one day's gaps (by id, so finding them twice changes nothing)."""
        key = f"{self.prefix}:gaps:{self.group}:{day}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if gaps:
                pipe.hset(key, mapping={g.gap_id: g.model_dump_json() for g in gaps})
                pipe.expire(key, ACTIVITY_TTL_S * 4)
            await pipe.execute()

    async def gaps(self, days: Sequence[int]) -> dict[int, list[SourceGap]]:
        """Gaps of each day that has any."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hvals(f"{self.prefix}:gaps:{self.group}:{day}")
            replies = await pipe.execute()
        return {
            day: sorted((SourceGap.model_validate_json(v) for v in values), key=lambda g: g.gap_id)
            for day, values in zip(days, replies, strict=True)
            if values
        }
