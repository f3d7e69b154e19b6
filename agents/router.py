"""Signal routing: group signals into messages per signals partition, stamped with a watermark.

Pure apart from the wall-clock times its callers pass in; the raw-topic consumer
(:mod:`agents.ingest`) and ``engagement replay`` both route through it, so replay stamps the
same watermarks live processing would.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agents.store.state import FeedState
from schemas.common import SCHEMA_VERSION

# Signals per message on the signals topic: ~250 bytes each keeps a message well under 1 MiB.
SIGNALS_PER_MESSAGE = 2000


def signal_partition(pseudonym: str, partitions: int) -> int:
    """The signals partition of a student: stable for the life of the topic."""
    return int(pseudonym[2:10], 16) % partitions


def pack_signals(
    signals: Sequence[dict[str, Any]],
    watermark_ms: int | None = None,
    published_at_ms: int | None = None,
) -> list[bytes]:
    """Encode signals as SignalBatch messages of at most SIGNALS_PER_MESSAGE each.

    Every message carries the ingest's watermark and the newest raw publish time of its round
    (for latency figures); with no signals it is a single watermark tick, which moves on a
    partition whose students are all silent.
    """
    head: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "published_at_ms": published_at_ms}
    if not signals:
        tick: dict[str, Any] = {**head, "signals": [], "watermark_ms": watermark_ms}
        return [json.dumps(tick, separators=(",", ":")).encode()]
    out = []
    for start in range(0, len(signals), SIGNALS_PER_MESSAGE):
        chunk = signals[start : start + SIGNALS_PER_MESSAGE]
        # Only the round's last message moves the watermark: its earlier messages belong to
        # the same round and must be judged against the watermark before it.
        last = start + SIGNALS_PER_MESSAGE >= len(signals)
        batch = {**head, "signals": chunk, "watermark_ms": watermark_ms if last else None}
        out.append(json.dumps(batch, separators=(",", ":")).encode())
    return out


Feed = tuple[str, int]
"""A raw feed partition: (source, raw-topic partition)."""


class SignalRouter:
    """Groups signals into messages per signals partition, stamped with the ingest watermark.

    Each raw feed partition (source, raw partition) progresses on its own: after downtime one
    is read days ahead of another, and live feeds arrive seconds apart. The watermark is the
    *lowest* progress among the feed partitions that are active (sent something in the last
    ``idle_s`` wall-clock seconds), as Flink combines input watermarks with idleness; when
    every feed is idle it is the highest progress. It never moves back. Only these stamps move
    the state's watermark, so a fast feed never makes a slow one's events look late, and a feed
    that stopped does not hold decisions back for longer than ``idle_s``.

    A partition that got no signals in a round still gets a tick when the watermark moved, so
    its days close even when all its students are silent (which is when absence rules matter).
    Replay uses the same router, with every feed active until the input ends.
    """

    def __init__(self, partitions: int, idle_s: float = 60.0) -> None:
        self.partitions = partitions
        self.idle_s = idle_s
        self.watermark_ms = 0
        self.progress: dict[Feed, tuple[int, float]] = {}
        self._told: dict[int, int] = {}

    def observe(self, signals: Sequence[dict[str, Any]], now: float) -> dict[Feed, int]:
        """Record each feed partition's progress; returns the feeds this round touched."""
        touched: dict[Feed, int] = {}
        for signal in signals:
            feed = (signal["source"], signal["raw_partition"])
            ts = signal["occurred_at_ms"]
            if ts > touched.get(feed, -1):
                touched[feed] = ts
        for feed, ts in touched.items():
            before = self.progress.get(feed, (-1, now))[0]
            self.progress[feed] = (max(before, ts), now)
            touched[feed] = max(before, ts)
        return touched

    def advance(
        self,
        now: float,
        shared: Mapping[Feed, FeedState] | None = None,
        expected: Iterable[Feed] = (),
    ) -> int:
        """The watermark from every feed's state; ``expected`` feeds must have reported."""
        if shared is None:
            shared = {f: FeedState(ts, wall, True) for f, (ts, wall) in self.progress.items()}
        if any(feed not in shared for feed in expected):
            return self.watermark_ms  # a feed nobody has reported on yet may hold old events
        active = [
            state.progress
            for state in shared.values()
            if not state.caught_up or now - state.wall <= self.idle_s
        ]
        if any(progress < 0 for progress in active):
            candidate = self.watermark_ms  # records waiting that nobody has read yet
        elif active:
            candidate = min(active)
        else:
            candidate = max((state.progress for state in shared.values()), default=0)
        self.watermark_ms = max(self.watermark_ms, candidate)
        return self.watermark_ms

    def route(
        self,
        signals: Sequence[dict[str, Any]],
        now: float,
        shared: Mapping[Feed, FeedState] | None = None,
        expected: Iterable[Feed] = (),
    ) -> list[tuple[int, bytes]]:
        """(partition, SignalBatch message) pairs for one round of signals."""
        by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for signal in signals:
            by_partition[signal_partition(signal["pseudonym"], self.partitions)].append(signal)
        self.observe(signals, now)
        watermark = self.advance(now, shared, expected)
        published = max((s["published_at_ms"] or 0 for s in signals), default=0) or None
        out = []
        for partition in range(self.partitions):
            chunk = by_partition.get(partition, [])
            if not chunk and self._told.get(partition, -1) >= watermark:
                continue
            self._told[partition] = watermark
            for payload in pack_signals(chunk, watermark or None, published):
                out.append((partition, payload))
        return out
