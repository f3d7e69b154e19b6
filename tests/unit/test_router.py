"""The ingest's signal router: partitioning, and the watermark it stamps (pure, no broker)."""

from __future__ import annotations

import json
from typing import Any

from agents.router import SIGNALS_PER_MESSAGE, SignalRouter, pack_signals, signal_partition
from agents.store.state import FeedState

HOUR = 3_600_000
IDLE = 60.0


def signal(n: int, ms: int, source: str = "vle", raw: int = 0, who: int = 0) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "pseudonym": f"p_{who:032x}",
        "source": source,
        "occurred_at_ms": ms,
        "raw_partition": raw,
        "published_at_ms": 1_000 + n,
    }


def stamps(messages: list[tuple[int, bytes]]) -> dict[int, list[int | None]]:
    out: dict[int, list[int | None]] = {}
    for partition, payload in messages:
        out.setdefault(partition, []).append(json.loads(payload)["watermark_ms"])
    return out


def test_each_students_signals_go_to_their_own_partition() -> None:
    router = SignalRouter(4)
    signals = [signal(n, n * HOUR, who=n) for n in range(40)]
    for partition, payload in router.route(signals, now=0.0):
        batch = json.loads(payload)
        assert all(signal_partition(s["pseudonym"], 4) == partition for s in batch["signals"])


def test_the_watermark_waits_for_the_slowest_active_feed() -> None:
    router = SignalRouter(2, idle_s=IDLE)
    router.route([signal(1, 100 * HOUR, "vle"), signal(2, 10 * HOUR, "swipe")], now=0.0)
    assert router.watermark_ms == 10 * HOUR
    router.route([signal(3, 50 * HOUR, "swipe")], now=1.0)
    assert router.watermark_ms == 50 * HOUR


def test_a_feed_silent_for_longer_than_the_idle_time_stops_holding_it_back() -> None:
    router = SignalRouter(2, idle_s=IDLE)
    router.route([signal(1, 100 * HOUR, "vle"), signal(2, 10 * HOUR, "swipe")], now=0.0)
    router.route([signal(3, 120 * HOUR, "vle")], now=IDLE + 1)
    assert router.watermark_ms == 120 * HOUR  # swipe idle; vle sent just now


def test_the_watermark_never_moves_back() -> None:
    router = SignalRouter(2, idle_s=IDLE)
    router.route([signal(1, 100 * HOUR)], now=0.0)
    router.route([signal(2, 10 * HOUR, "attendance")], now=1.0)  # a new, slower feed
    assert router.watermark_ms == 100 * HOUR


def test_every_partition_is_ticked_when_the_watermark_moves_and_only_then() -> None:
    router = SignalRouter(4)
    first = router.route([signal(1, 5 * HOUR, who=1)], now=0.0)
    assert sorted(stamps(first)) == [0, 1, 2, 3]
    assert all(s == [5 * HOUR] for s in stamps(first).values())
    assert router.route([], now=1.0) == []  # nothing moved: no ticks


def test_a_feed_with_records_waiting_holds_the_watermark_however_long_it_is_silent() -> None:
    router = SignalRouter(2, idle_s=IDLE)
    shared = {
        ("vle", 0): FeedState(100 * HOUR, 1_000.0, caught_up=True),
        ("swipe", 0): FeedState(10 * HOUR, 0.0, caught_up=False),  # backlog not yet read
    }
    assert router.advance(1_000.0, shared) == 10 * HOUR


def test_an_unread_backlog_or_an_unreported_feed_holds_the_watermark_where_it_is() -> None:
    router = SignalRouter(2, idle_s=IDLE)
    router.route([signal(1, 5 * HOUR)], now=0.0)
    unread = {
        ("vle", 0): FeedState(100 * HOUR, 10.0, caught_up=True),
        ("swipe", 0): FeedState(-1, 0.0, caught_up=False),
    }
    assert router.advance(10.0, unread) == 5 * HOUR
    reported = {("vle", 0): FeedState(100 * HOUR, 10.0, caught_up=True)}
    assert router.advance(10.0, reported, expected=[("vle", 0), ("swipe", 0)]) == 5 * HOUR
    assert router.advance(10.0, reported, expected=[("vle", 0)]) == 100 * HOUR


def test_when_every_feed_is_idle_the_watermark_is_the_furthest_progress() -> None:
    router = SignalRouter(2, idle_s=IDLE)
    shared = {
        ("vle", 0): FeedState(100 * HOUR, 0.0, caught_up=True),
        ("swipe", 0): FeedState(10 * HOUR, 0.0, caught_up=True),
    }
    assert router.advance(IDLE * 10, shared) == 100 * HOUR


def test_only_the_last_message_of_a_round_moves_the_watermark() -> None:
    signals = [signal(n, n * HOUR) for n in range(SIGNALS_PER_MESSAGE + 5)]
    messages = [json.loads(m) for m in pack_signals(signals, 42, 7)]
    assert [m["watermark_ms"] for m in messages] == [None, 42]
    assert all(m["published_at_ms"] == 7 for m in messages)
    assert sum(len(m["signals"]) for m in messages) == len(signals)


def test_a_tick_is_a_batch_without_signals() -> None:
    (tick,) = pack_signals([], 42, None)
    assert json.loads(tick) == {
        "schema_version": 1,
        "published_at_ms": None,
        "signals": [],
        "watermark_ms": 42,
    }
    assert tick.startswith(b'{"schema_version":1,')
