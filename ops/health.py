"""Consumer lag, committed offsets and readiness, for ``/metrics`` and ``/readyz``.

Lag is taken from the high watermark that fetch responses carry, never from ListOffsets
(which the embedded broker answers wrongly: DESIGN.md, "The embedded broker's limits"). A
partition is *stuck* when it has lag and its committed offset has not moved for
``stuck_after_s``: the agent is alive but not getting anywhere, which ``/healthz`` cannot see.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ops.metrics import Metrics


@dataclass(frozen=True)
class PartitionLag:
    """One assigned partition as one consumer sees it."""

    group: str
    topic: str
    partition: int
    highwater: int | None
    committed: int | None

    @property
    def lag(self) -> int | None:
        """Records not yet committed; None until both numbers are known."""
        if self.highwater is None:
            return None
        return max(0, self.highwater - (self.committed or 0))


def faust_partitions(app: Any, group: str) -> list[PartitionLag]:
    """The Faust consumer's assigned partitions, with high watermark and committed offset."""
    try:
        consumer = app.consumer
        assigned = consumer.assignment()
    except Exception:  # not started yet, or stopping
        return []
    rows = []
    for tp in sorted(assigned):
        if "__assignor" in tp.topic:  # Faust's own leader-election topic: not work
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # no fetch answered for it yet
            highwater = None
        committed = consumer._committed_offset.get(tp)  # faust keeps it here
        rows.append(PartitionLag(group, tp.topic, tp.partition, highwater, committed))
    return rows


@dataclass
class Progress:
    """Remembers when each partition's committed offset last moved."""

    stuck_after_s: float
    _last: dict[tuple[str, str, int], tuple[int | None, float]] = field(default_factory=dict)

    def update(self, rows: Iterable[PartitionLag], now: float) -> list[PartitionLag]:
        """Record ``rows``; return the partitions that are stuck."""
        stuck = []
        seen = set()
        for row in rows:
            key = (row.group, row.topic, row.partition)
            seen.add(key)
            before = self._last.get(key)
            if before is None or before[0] != row.committed or not row.lag:
                self._last[key] = (row.committed, now)
            elif now - before[1] >= self.stuck_after_s:
                stuck.append(row)
        for key in set(self._last) - seen:  # revoked partitions are forgotten
            del self._last[key]
        return stuck


def publish_lag(
    metrics: Metrics,
    rows: Iterable[PartitionLag],
    before: set[tuple[str, str, str]] | None = None,
) -> set[tuple[str, str, str]]:
    """Set the lag and committed-offset gauges for ``rows``; remove the series of partitions
    in ``before`` that are no longer assigned (another worker reports them now). Returns the
    label sets published, to pass as ``before`` next time."""
    published = set()
    for row in rows:
        labels = (row.group, row.topic, str(row.partition))
        published.add(labels)
        if row.lag is not None:
            metrics.consumer_lag.labels(*labels).set(row.lag)
        if row.committed is not None:
            metrics.committed_offset.labels(*labels).set(row.committed)
    for labels in (before or set()) - published:
        for gauge in (metrics.consumer_lag, metrics.committed_offset):
            try:
                gauge.remove(*labels)
            except KeyError:
                pass
    return published


async def redis_answers(client: Any, timeout_s: float = 1.0) -> str | None:
    """None when Redis answers PING in time, else what went wrong."""
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
    except Exception as exc:
        return f"redis does not answer: {type(exc).__name__}"
    return None


async def broker_answers(bootstrap: str, timeout_s: float = 1.0) -> str | None:
    """None when a bootstrap broker accepts a connection in time, else what went wrong."""
    problems = []
    for address in (a.strip() for a in bootstrap.split(",") if a.strip()):
        host, _, port = address.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            problems.append(f"{address}: {type(exc).__name__}")
            continue
        writer.close()
        return None
    return "no broker answers (" + "; ".join(problems) + ")"


async def topics_missing(
    list_topics: Callable[[], Awaitable[Iterable[str]]],
    required: Iterable[str],
    timeout_s: float = 2.0,
) -> str | None:
    """None when every required topic exists on the broker, else which are missing (or why
    the broker's topics could not be listed). A broker that restarted empty answers, and
    accepts connections, but holds none of them: nothing would be consumed."""
    try:
        existing = set(await asyncio.wait_for(list_topics(), timeout_s))
    except Exception as exc:
        return f"cannot list the broker's topics: {str(exc) or type(exc).__name__}"
    missing = sorted(set(required) - existing)
    if not missing:
        return None
    return (
        f"{len(missing)} topic(s) missing: {', '.join(missing)}. The broker lost them or they "
        "were deleted. A worker creates them when it starts (as does the compose topics job)"
    )


@dataclass
class Readiness:
    """What ``/readyz`` reports for one process."""

    checks: dict[str, str | None]
    stuck: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """Every check passed and nothing is stuck."""
        return all(v is None for v in self.checks.values()) and not self.stuck

    def as_json(self) -> dict[str, Any]:
        """The response body."""
        return {
            "ready": self.ready,
            "checks": {k: ("ok" if v is None else v) for k, v in self.checks.items()},
            "stuck_partitions": self.stuck,
            "at": time.time(),
        }
