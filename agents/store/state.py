"""Per-student engagement state in Redis, applied per batch together with the partition offsets.

Keys: the ``state``, ``seen``, ``members``, ``offsets``, ``watermarks``, ``first_day``,
``decided``, ``feeds``, ``activity``, ``identity``, ``health_done`` and ``gaps`` families of the
key register (``schemas/keys.py``), which says what each holds and how long it is kept. The
student hash holds ``d:{day}:{source}`` counts, ``a:{day}`` attendance marks as
``present,late,absent,excused`` (each session once, with the status of its latest mark made
that day), ``ac`` (register corrections made on a later day than the session's, each with the
day it takes effect), ``first`` and ``ls:{source}`` (epoch ms), ``sg`` (which generation each
of the student's two seen hashes holds) and ``rs`` (the encoded rule state). The seen hashes
hold the event ids counted, by feed, and every session's marks; see ``lua/state_apply.lua``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from agents.model.corrections import Correction, parse_corrections
from agents.model.rulestate import Prompt, RuleState, decode_states
from agents.model.score import DayFacts
from agents.store.dayfacts import COUNTED, day_facts, facts_from_hash
from agents.store.dayfacts import text as _text
from agents.store.scripts import script
from schemas.errors import StateError
from schemas.health import SourceGap
from schemas.keys import Keys
from schemas.sources import SOURCES

# The feeds counted per day in the student's state ('d:<day>:<source>'); attendance is kept
# as marks ('a:<day>') instead.

ACTIVITY_TTL_S = 35 * 86_400


@dataclass(frozen=True)
class FeedState:
    """One raw feed partition as every ingest sees it."""

    progress: int  # highest event time read from it (ms), or -1 before any
    wall: float  # wall-clock time it last sent records (0: never)
    caught_up: bool  # everything waiting in it has been read


@dataclass(frozen=True)
class Late:
    """An event the state did not count, and why: more than the grace period behind its
    partition (``too_late``; ``correction_too_late`` when it corrects an earlier mark), or an
    event id the feed already used for an event that said something else
    (``duplicate_conflict``)."""

    event_id: str
    source: str
    late_ms: int
    partition: int
    offset: int
    reason: str = "too_late"


@dataclass
class ApplyResult:
    """What one batch did to the state."""

    applied: int = 0
    duplicates: int = 0
    skipped_messages: int = 0
    watermarks: dict[int, int] = field(default_factory=dict)
    late: list[Late] = field(default_factory=list)  # every event refused, with its reason
    corrections: int = 0  # attendance marks that replaced an earlier mark


@dataclass
class StoredStudent:
    """One student's facts over a span of days, and the rule state carried between days."""

    pseudonym: str
    first_ms: int
    facts: dict[int, DayFacts]
    states: dict[str, RuleState]
    last_prompt: Prompt | None
    stored: str  # the encoded rule state as read, to write back only what changed
    corrections: tuple[Correction, ...] = ()  # register corrections, by the day they took effect


class BatchRefused(StateError):
    """A signal batch the state cannot read; the agent sets its message aside."""


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
        self.keys = Keys(prefix)
        self.group = group
        self._dedup_ttl = dedup_ttl_s
        self._state_ttl = state_ttl_s
        self._script = script(client, "state_apply")
        self._feeds = script(client, "feeds")
        self._identity_written: dict[str, float] = {}

    def student_key(self, pseudonym: str) -> str:
        """Key of one student's state hash."""
        return self.keys.state(pseudonym)

    async def apply(
        self, messages: Sequence[tuple[int, int, bytes]], grace_ms: int = 0
    ) -> ApplyResult:
        """Apply (partition, offset, SignalBatch JSON) messages atomically with their offsets.

        The batches are read here once to hand the script every key it touches (built by the
        key register) and a map from each signal's student, day and source to those keys; a
        message that cannot be read raises ``BatchRefused`` and nothing of the batch is applied.
        """
        if not messages:
            return ApplyResult()
        keys, key_map = self._keys_for(messages)
        sources = [str(name) for name in SOURCES]
        args: list[Any] = [self._dedup_ttl, self._state_ttl, ACTIVITY_TTL_S, grace_ms]
        args.extend((len(sources), *sources, json.dumps(key_map)))
        for message in messages:
            args.extend(message)
        reply = await self._script(keys=keys, args=args)
        applied, duplicates, skipped, wms, late, corrections = reply
        result = ApplyResult(
            int(applied), int(duplicates), int(skipped), corrections=int(corrections)
        )
        for i in range(0, len(late), 6):
            event_id, source, reason = _text(late[i]), _text(late[i + 1]), _text(late[i + 5])
            late_ms, partition, offset = (int(v) for v in late[i + 2 : i + 5])
            result.late.append(Late(event_id, source, late_ms, partition, offset, reason))
        for i in range(0, len(wms), 2):
            result.watermarks[int(wms[i])] = int(wms[i + 1])
        return result

    def _keys_for(
        self, messages: Sequence[tuple[int, int, bytes]]
    ) -> tuple[list[str], dict[str, Any]]:
        """Every key the batch touches, for ``KEYS``, and where each signal finds its own:
        ``state[pseudonym]``, ``seen[pseudonym]`` (the first of the student's two seen
        generations; the second follows it), ``activity[source][day]`` and
        ``members[partition]`` are indexes into ``KEYS``; ``whole_feed`` lists the sources
        counted as one location."""
        group = self.group
        keys = [self.keys.offsets(group), self.keys.watermarks(group), self.keys.first_day(group)]

        def add(key: str) -> int:
            keys.append(key)
            return len(keys)  # Lua's KEYS count from 1

        state: dict[str, int] = {}
        seen: dict[str, int] = {}
        activity: dict[str, dict[str, int]] = {}
        members: dict[str, int] = {}
        for partition, offset, payload in messages:
            try:
                signals = json.loads(payload)["signals"]
                if str(partition) not in members:
                    members[str(partition)] = add(self.keys.members(partition))
                for s in signals:
                    who, source, day = s["pseudonym"], s["source"], str(int(s["day"]))
                    if who not in state:
                        state[who] = add(self.keys.state(who))
                        seen[who] = add(self.keys.seen(who, 0))
                        add(self.keys.seen(who, 1))
                    per_source = activity.setdefault(source, {})
                    if day not in per_source:
                        per_source[day] = add(self.keys.activity(source, day))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                msg = f"partition {partition} offset {offset}: not a readable signal batch ({exc})"
                raise BatchRefused(msg) from None
        whole_feed = [str(k.name) for k in SOURCES.values() if k.health.whole_feed]
        key_map = {
            "state": state,
            "seen": seen,
            "activity": activity,
            "members": members,
            "whole_feed": whole_feed,
        }
        return keys, key_map

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
        raw = await self._feeds(keys=[self.keys.feeds(self.group)], args=args)
        out: dict[tuple[str, int], FeedState] = {}
        for i in range(0, len(raw), 2):
            source, _, raw_partition = _text(raw[i]).partition(":")
            done, sent, caught = _text(raw[i + 1]).split(":")
            out[(source, int(raw_partition))] = FeedState(int(done), float(sent), caught == "1")
        return out

    async def watermarks(self) -> dict[int, int]:
        """Every partition's watermark (ms)."""
        raw = await self.redis.hgetall(self.keys.watermarks(self.group))
        return {int(k): int(v) for k, v in raw.items()}

    async def first_day(self) -> int | None:
        """The earliest day any applied signal belongs to."""
        return _int(await self.redis.get(self.keys.first_day(self.group)))

    async def decided(self, partition: int) -> int | None:
        """The last day whose decisions were made on a partition."""
        return _int(await self.redis.hget(self.keys.decided(self.group), str(partition)))

    async def members(self, partition: int) -> list[str]:
        """Students on a partition, sorted (so evaluation order never depends on Redis)."""
        raw = await self.redis.smembers(self.keys.members(partition))
        return sorted(_text(who) for who in raw)

    async def activity(self, source: str, day: int) -> dict[tuple[str, int], int]:
        """(location, local hour) → events of a source on a day."""
        raw = await self.redis.hgetall(self.keys.activity(source, day))
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
        fields = ["first", "rs", "ac"]
        width = 1 + len(COUNTED)
        for day in days:
            fields.append(f"a:{day}")
            fields.extend(f"d:{day}:{source}" for source in COUNTED)
        async with self.redis.pipeline(transaction=False) as pipe:
            for who in pseudonyms:
                pipe.hmget(self.student_key(who), fields)
            replies = await pipe.execute()
        students = []
        for who, values in zip(pseudonyms, replies, strict=True):
            if values[0] is None:
                continue  # expired or erased
            text = _text(values[1]) if values[1] is not None else ""
            corrections = parse_corrections(_text(values[2])) if values[2] is not None else ()
            rest = values[3:]
            facts = {
                day: day_facts(rest[width * n], rest[width * n + 1 : width * n + width])
                for n, day in enumerate(days)
                if any(v is not None for v in rest[width * n : width * n + width])
            }
            first_ms, (states, prompt) = int(values[0]), decode_states(text)
            students.append(StoredStudent(who, first_ms, facts, states, prompt, text, corrections))
        return students

    async def load_student(self, pseudonym: str, first: int, last: int) -> StoredStudent | None:
        """One student as :meth:`load_students` reads them, from one HGETALL (the API's read:
        no field list to build and send)."""
        raw = await self.redis.hgetall(self.student_key(pseudonym))
        if raw.get(b"first") is None:
            return None  # expired or erased
        text = _text(raw[b"rs"]) if b"rs" in raw else ""
        corrections = parse_corrections(_text(raw[b"ac"])) if b"ac" in raw else ()
        facts = facts_from_hash(raw, first, last)
        first_ms = int(raw[b"first"])
        return StoredStudent(pseudonym, first_ms, facts, *decode_states(text), text, corrections)

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
            pipe.hset(self.keys.decided(self.group), str(partition), day)
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
                pipe.set(self.keys.identity(pseudonym), student_id, ex=ttl_s)
            await pipe.execute()
        if len(self._identity_written) > 500_000:
            self._identity_written.clear()
        for pseudonym in fresh:
            self._identity_written[pseudonym] = now

    async def identity(self, pseudonym: str) -> str | None:
        """The student id behind a pseudonym, for re-identification at delivery only."""
        value = await self.redis.get(self.keys.identity(pseudonym))
        return _text(value) if value is not None else None

    # -- source health ---------------------------------------------------------------------

    async def health_done(self) -> int | None:
        """The last day whose source-health checks were made and published."""
        return _int(await self.redis.get(self.keys.health_done(self.group)))

    async def set_health_done(self, day: int) -> None:
        """Record that gaps up to ``day`` were found and published."""
        await self.redis.set(self.keys.health_done(self.group), day)

    async def save_gaps(self, day: int, gaps: Sequence[SourceGap]) -> None:
        """Keep one day's gaps (by id, so finding them twice changes nothing)."""
        key = self.keys.gaps(self.group, day)
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
                pipe.hvals(self.keys.gaps(self.group, day))
            replies = await pipe.execute()
        return {
            day: sorted((SourceGap.model_validate_json(v) for v in values), key=lambda g: g.gap_id)
            for day, values in zip(days, replies, strict=True)
            if values
        }

    def add_identity_read(
        self, pipe: aioredis.client.Pipeline, pseudonym: str
    ) -> Callable[[Any], str | None]:
        """Add what ``identity`` reads to ``pipe`` (for the notifier's batched read); the
        function returned decodes the reply the same way."""
        pipe.get(self.keys.identity(pseudonym))

        def decode(value: Any) -> str | None:
            return _text(value) if value is not None else None

        return decode

    # -- applied offsets, read and set outside a batch (agents/offsets.py, `engagement offsets`)

    async def applied_offsets(self, partitions: Iterable[int] | None = None) -> dict[int, int]:
        """The last applied offset of each partition (of ``partitions``; all when None)."""
        key = self.keys.offsets(self.group)
        if partitions is None:
            raw = await self.redis.hgetall(key)
            return {int(k): int(v) for k, v in raw.items()}
        wanted = list(partitions)
        values = await self.redis.hmget(key, [str(p) for p in wanted]) if wanted else []
        return {p: int(v) for p, v in zip(wanted, values, strict=True) if v is not None}

    async def set_applied_offsets(self, offsets: Mapping[int, int | None]) -> None:
        """Store these applied offsets; None (or below 0) forgets a partition's, so that its
        next message is applied whatever its offset."""
        key = self.keys.offsets(self.group)
        async with self.redis.pipeline(transaction=True) as pipe:
            for partition, offset in offsets.items():
                if offset is None or offset < 0:
                    pipe.hdel(key, str(partition))
                else:
                    pipe.hset(key, str(partition), offset)
            await pipe.execute()
