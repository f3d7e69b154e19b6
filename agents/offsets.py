"""Offset regression: a signals partition whose log is behind the offsets stored with the state.

The state stores each partition's last applied offset with every batch it applies, and the
state script skips a message at or below it: a batch delivered again after a crash or a
rebalance counts once. When the broker loses its log (restarted empty, a disk replaced) or the
signals topic is deleted and created again, the new log starts again at offset 0 while the
stored offsets stay ahead, and everything published afterwards would be skipped as "already
applied" without a word. The guard here looks at a partition's first batch in this process,
and at any batch that goes back, before it is applied, and recognises a new log by either of:

- the partition's high watermark, from the fetch responses (never ListOffsets, which the
  embedded broker answers wrongly), is at or below the stored offset: the log is shorter than
  what was already applied from it;
- a message more than ``REDELIVERY_MAX`` offsets below the stored one: more than a
  redelivery replays (Faust commits at least every 2.8 s and every 10,000 messages).

It says so (a warning naming the group, topic, partition and offsets, and
``engagement_offset_regressions_total``) and stores the offset to resume from:
``ENGAGEMENT_OFFSET_REGRESSION=earliest`` (the default) applies the new log from its first
message; ``latest`` takes what is in the log as already applied (a log restored from a backup)
and applies what comes after its end. ``engagement offsets`` shows and resets them by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from agents.context import Context
from agents.store.state import EngagementStore
from schemas.keys import OFFSETS

log = logging.getLogger("engagement.offsets")

# A redelivery replays what was applied but not yet committed to Kafka: Faust commits every
# 2.8 s or 10,000 messages, whichever comes first. Twice that is more than any redelivery.
REDELIVERY_MAX: Final = 20_000

Resume = Literal["earliest", "latest"]


@dataclass(frozen=True)
class Regression:
    """A partition whose messages are behind the offset stored with the state."""

    partition: int
    stored: int  # the last applied offset stored with the state
    first: int  # the lowest offset of the batch on this partition
    last: int  # its highest
    highwater: int | None  # the log end from the latest fetch response, if known

    @property
    def log_is_shorter(self) -> bool:
        """The log ends at or before the stored offset: certainly not the log it came from."""
        return self.highwater is not None and self.highwater <= self.stored

    def resume_after(self, resume: Resume) -> int:
        """The applied offset to store: just before this batch (``earliest``: the new log from
        its start, as the consumer reads it from there), or the log's end (``latest``)."""
        if resume == "latest":
            return self.highwater - 1 if self.highwater is not None else self.last
        return self.first - 1

    def describe(self, group: str, topic: str, resume: Resume) -> str:
        """One sentence for the log (no student data: offsets and names of the system)."""
        if self.log_is_shorter:
            evidence = f"its log ends at offset {self.highwater}"
        else:
            evidence = f"a message at offset {self.first} arrived"
        where = (
            f"from offset {self.first}, the start of what the consumer reads"
            if resume == "earliest"
            else f"after offset {self.resume_after(resume)}, the end of the log as found"
        )
        return (
            f"offset regression on {topic} partition {self.partition} (group {group}): "
            f"{evidence} although the state had already applied up to offset {self.stored}. "
            "The broker lost its log or the topic was created again; messages published "
            "before that and not yet read are gone. Resuming "
            f"{where} (ENGAGEMENT_OFFSET_REGRESSION={resume}); `engagement offsets show` "
            "lists the stored offsets"
        )


def find_regression(
    partition: int,
    stored: int | None,
    first: int,
    last: int,
    highwater: int | None,
    redelivery_max: int = REDELIVERY_MAX,
) -> Regression | None:
    """A regression when a batch at or below the stored offset cannot be a redelivery: the log
    is shorter than the stored offset, or the batch is too far below it."""
    if stored is None or first > stored:
        return None  # new messages: nothing to doubt
    found = Regression(partition, stored, first, last, highwater)
    if found.log_is_shorter or stored - first > redelivery_max:
        return found
    return None  # a redelivery: the state script skips what it already applied


class OffsetGuard:
    """Checks each signals batch for offset regression before the state script sees it."""

    def __init__(self, ctx: Context, store: EngagementStore) -> None:
        self.ctx = ctx
        self.store = store
        self.topic = ctx.settings.topics.signals
        self.group = store.group
        self.resume: Resume = ctx.settings.offset_regression
        self.redelivery_max = REDELIVERY_MAX
        # Per partition, the offset after the last message this process checked: a batch that
        # starts there needs no look at Redis.
        self._next: dict[int, int] = {}
        for partition in range(ctx.settings.partitions):  # at zero, so `increase` sees the first
            ctx.metrics.offset_regressions.labels(self.group, self.topic, str(partition))

    def highwater(self, partition: int) -> int | None:
        """The partition's log end from the Faust consumer's latest fetch response."""
        try:
            from faust.types import TP

            value = self.ctx.app.consumer.highwater(TP(self.topic, partition))
        except Exception:  # not assigned or not fetched yet
            return None
        return int(value) if value is not None else None

    async def check(self, messages: Sequence[tuple[int, int, Any]]) -> list[Regression]:
        """Look at a batch of (partition, offset, value); store where each regressed partition
        resumes, before the batch is applied. Returns the regressions found."""
        spans: dict[int, tuple[int, int]] = {}
        for partition, offset, _ in messages:
            low, high = spans.get(partition, (offset, offset))
            spans[partition] = (min(low, offset), max(high, offset))
        doubtful = [p for p, (low, _) in spans.items() if low < self._next.get(p, low + 1)]
        found: list[Regression] = []
        if doubtful:

            async def look() -> Mapping[int, int]:
                return await self.store.applied_offsets(doubtful)

            stored = await self.ctx.until_redis_answers("state", look)
            for partition in doubtful:
                low, high = spans[partition]
                regression = find_regression(
                    partition,
                    stored.get(partition),
                    low,
                    high,
                    self.highwater(partition),
                    self.redelivery_max,
                )
                if regression is not None:
                    found.append(regression)
        if found:
            resume = {r.partition: r.resume_after(self.resume) for r in found}

            async def reset() -> None:
                await self.store.set_applied_offsets(resume)

            await self.ctx.until_redis_answers("state", reset)
            for regression in found:
                log.warning(regression.describe(self.group, self.topic, self.resume))
                self.ctx.metrics.offset_regressions.labels(
                    self.group, self.topic, str(regression.partition)
                ).inc()
        for partition, (_, high) in spans.items():
            self._next[partition] = high + 1
        return found


async def stored_groups(client: Any, prefix: str) -> list[str]:
    """Every consumer group with applied offsets stored under a key prefix."""
    pattern = OFFSETS.pattern(prefix)
    groups = []
    async for raw in client.scan_iter(match=OFFSETS.glob(prefix), count=500):
        found = pattern.match(raw.decode() if isinstance(raw, bytes) else str(raw))
        if found:
            groups.append(found.group("group"))
    return sorted(groups)
