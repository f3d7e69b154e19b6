"""The intervention log of record: Redis first (index + outbox, atomically), then the topic.

Keys: the ``recorded``, ``sending``, ``interventions``, ``outbox`` and ``outbox_lock``
families of the key register (``schemas/keys.py``). A ``sending`` mark is written before each
delivery is handed to its transport (``channel|n``: the n-th delivery begun without a record)
and deleted by the record, so a notifier that finds one knows a delivery was begun by a
notifier that stopped, on which channel, and how many times.

A record is appended to Redis in one script (mark, index and outbox together), then
published to the ``interventions`` topic by an idempotent ``acks=all`` producer and taken
off the outbox. A process that dies in between leaves the record in the outbox, and the next
flush (any notifier's timer, or the next append) publishes it. The only way the topic can
hold a record twice is a death after the broker acknowledged it and before it left the
outbox; readers de-duplicate by ``record_id`` (the export does).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, Protocol

import redis.asyncio as aioredis

from agents.store.scripts import script
from schemas.interventions import InterventionRecord, Outcome, Stage
from schemas.keys import INTERVENTIONS, Keys
from schemas.nudges import Channel, Route, Tier
from sinks.channels.producer import ProduceError, RecordProducer

log = logging.getLogger("engagement.interventions")

OUTBOX_BATCH: Final = 500
# Short, because a notifier killed while it holds the lock stops every other one publishing
# until it runs out; each batch published renews it. A holder whose send outlasts it finds the
# lock gone and leaves the trim to the next holder, which publishes those records again (the
# topic's readers de-duplicate by record_id).
LOCK_MS: Final = 10_000


def record_id(nudge_id: str, stage: str) -> str:
    """Deterministic id of the record one stage writes about one nudge."""
    return "r_" + hashlib.sha256(f"{nudge_id}|{stage}".encode()).hexdigest()[:32]


class Decided(Protocol):
    """What every record repeats about its nudge: a nudge, or a review item made from one."""

    nudge_id: str
    pseudonym: str
    rule_id: str
    rule_version: int
    tier: Tier
    route: Route


def new_record(  # the parts that differ between stages
    about: Decided,
    summary: str,
    stage: Stage,
    outcome: Outcome,
    reason: str,
    detail: str,
    decided_at: datetime,
    **fields: Any,
) -> InterventionRecord:
    """The record ``stage`` writes about the nudge behind ``about``."""
    return InterventionRecord(
        record_id=record_id(about.nudge_id, stage),
        nudge_id=about.nudge_id,
        pseudonym=about.pseudonym,
        rule_id=about.rule_id,
        rule_version=about.rule_version,
        tier=about.tier,
        route=about.route,
        stage=stage,
        outcome=outcome,
        reason=reason,
        detail=detail,
        decided_at=decided_at,
        summary=summary,
        **fields,
    )


class InterventionLog:
    """Appends records; one record per nudge and stage, even when a write is repeated."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        *,
        producer: RecordProducer | None = None,
        topic: str | None = None,
        autoflush: bool = True,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.producer = producer
        self.topic = topic
        # The notifier publishes once per batch of nudges instead (one acknowledgement for
        # many records); a command-line decision publishes at once.
        self.autoflush = autoflush
        self.keys = Keys(prefix)
        self._append_script = script(client, "record_append")
        self._unlock_script = script(client, "lock_release")
        self._trim_script = script(client, "outbox_trim")

    def _index(self, pseudonym: str) -> str:
        return self.keys.interventions(pseudonym)

    def recorded_key(self, rid: str) -> str:
        """The key that exists once the record ``rid`` has been appended."""
        return self.keys.recorded(rid)

    def _sending(self, rid: str) -> str:
        return self.keys.sending(rid)

    @property
    def outbox(self) -> str:
        """The list of records not yet acknowledged by the topic."""
        return self.keys.outbox()

    async def status(self, nudge_id: str, stage: Stage = Stage.NOTIFIER) -> str | None:
        """``done`` once the stage recorded its decision, ``sending`` while a delivery may be
        in flight (a restart re-sends with the same idempotency key), else None."""
        rid = record_id(nudge_id, stage)
        recorded, sending = await self.redis.mget(self.recorded_key(rid), self._sending(rid))
        if recorded is not None:
            return "done"
        return "sending" if sending is not None else None

    async def mark_sending(
        self,
        nudge_id: str,
        stage: Stage = Stage.NOTIFIER,
        channel: Channel = Channel.EMAIL,
        begun: int = 1,
    ) -> None:
        """Note, before handing it to the transport, that delivery number ``begun`` of this
        nudge and stage is about to be attempted on ``channel``. The record deletes the mark;
        a mark found later means a notifier stopped before the answer was recorded."""
        key = self._sending(record_id(nudge_id, stage))
        await self.redis.set(key, attempt_mark(channel, begun))

    async def attempt(
        self, nudge_id: str, stage: Stage = Stage.NOTIFIER
    ) -> tuple[Channel | None, int] | None:
        """The channel and number of the delivery begun and not recorded (None if none)."""
        value = await self.redis.get(self._sending(record_id(nudge_id, stage)))
        return None if value is None else parse_attempt(value)

    async def sending_channel(self, nudge_id: str, stage: Stage = Stage.NOTIFIER) -> Channel | None:
        """The channel of a delivery begun and not recorded (None if none was begun)."""
        begun = await self.attempt(nudge_id, stage)
        return None if begun is None else begun[0]

    async def clear_sending(
        self,
        nudge_id: str,
        stage: Stage = Stage.NOTIFIER,
        channel: Channel = Channel.EMAIL,
        begun: int = 0,
    ) -> None:
        """Nothing was sent after all (the transport refused to try): the mark goes back to
        what it was before, ``begun`` deliveries begun on ``channel`` (or none)."""
        key = self._sending(record_id(nudge_id, stage))
        if begun > 0:
            await self.redis.set(key, attempt_mark(channel, begun))
        else:
            await self.redis.delete(key)

    async def append(self, record: InterventionRecord) -> bool:
        """Append ``record`` unless it already was; True when this call appended it.

        Publishing to the topic follows when this log has a producer; a failure to publish
        leaves the record in the outbox for the next flush and is not raised."""
        added = await self._append_script(
            keys=[
                self.recorded_key(record.record_id),
                self._index(record.pseudonym),
                self.outbox,
                self._sending(record.record_id),
            ],
            args=[record.model_dump_json()],
        )
        if self.producer is not None and self.autoflush:
            try:
                await self.flush()
            except ProduceError as exc:
                log.warning("interventions topic unavailable (%s); records wait in the outbox", exc)
        return bool(added)

    async def flush(self) -> int:
        """Publish what waits in the outbox; the number of records published."""
        if self.producer is None or self.topic is None:
            return 0
        token = secrets.token_hex(8)
        lock = self.keys.outbox_lock()
        if not await self.redis.set(lock, token, nx=True, px=LOCK_MS):
            return 0  # another process is publishing; it will take ours too
        published = 0
        try:
            while True:
                rows: list[Any] = await self.redis.lrange(self.outbox, 0, OUTBOX_BATCH - 1)
                if not rows:
                    return published
                batch = [
                    (InterventionRecord.model_validate_json(row).pseudonym.encode(), row)
                    for row in rows
                ]
                await self.producer.send_many(self.topic, batch)
                # Only the lock holder removes, and appends go to the tail: trimming the
                # head removes exactly what was just published.
                kept = await self._trim_script(
                    keys=[self.outbox, lock], args=[token, len(rows), LOCK_MS]
                )
                if not kept:  # the lock ran out: the next holder publishes (and trims) these
                    log.warning("outbox lock lost after publishing %d records", len(rows))
                    return published
                published += len(rows)
        finally:
            await self._unlock_script(keys=[lock], args=[token])

    async def pending(self) -> int:
        """Records appended but not yet on the topic."""
        return int(await self.redis.llen(self.outbox))

    async def for_student(self, pseudonym: str) -> list[InterventionRecord]:
        """Every record about one student, oldest first."""
        rows = await self.redis.lrange(self._index(pseudonym), 0, -1)
        return [InterventionRecord.model_validate_json(row) for row in rows]

    async def all_records(self) -> list[InterventionRecord]:
        """Every indexed record (for the export), by scanning the per-student indexes."""
        out: list[InterventionRecord] = []
        pattern = INTERVENTIONS.glob(self.prefix)
        own = INTERVENTIONS.pattern(self.prefix)
        async for key in self.redis.scan_iter(match=pattern, count=500):
            name = key.decode() if isinstance(key, bytes) else str(key)
            if not own.match(name):  # the outbox and its lock share the glob
                continue
            rows: list[Any] = await self.redis.lrange(name, 0, -1)
            out.extend(InterventionRecord.model_validate_json(row) for row in rows)
        return out

    def add_status_read(
        self, pipe: aioredis.client.Pipeline, nudge_id: str, stage: Stage = Stage.NOTIFIER
    ) -> Callable[[Any], tuple[str | None, Channel | None, int]]:
        """Add what ``status`` and ``attempt`` read to ``pipe`` (one MGET, for the notifier's
        batched read); the function returned turns the reply into the status, the channel of
        a delivery begun and not recorded, and how many such deliveries were begun."""
        rid = record_id(nudge_id, stage)
        pipe.mget(self.recorded_key(rid), self._sending(rid))

        def decode(reply: Any) -> tuple[str | None, Channel | None, int]:
            recorded, sending = reply
            if recorded is not None:
                return "done", None, 0
            if sending is None:
                return None, None, 0
            return ("sending", *parse_attempt(sending))

        return decode


def attempt_mark(channel: Channel, begun: int) -> str:
    """The value of a ``sending`` mark: the channel, and how many deliveries of this nudge
    and stage have been begun without a record (each by a notifier that stopped)."""
    return f"{channel.value}|{begun}"


def parse_attempt(value: bytes | str) -> tuple[Channel | None, int]:
    """The channel (None if it is not one) and the number of deliveries begun, from a mark.
    A mark written before the count was kept (the channel alone) counts as one."""
    text = value.decode() if isinstance(value, bytes) else str(value)
    name, _, count = text.partition("|")
    channel = Channel(name) if name in {c.value for c in Channel} else None
    begun = int(count) if count.isdigit() else 1
    return channel, max(begun, 1)
