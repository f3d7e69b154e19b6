"""Readiness bookkeeping: lag from high watermarks, stuck partitions, revoked series."""

from __future__ import annotations

from ops.health import PartitionLag, Progress, Readiness, publish_lag
from ops.metrics import create_metrics


def row(committed: int | None, highwater: int | None = 100, partition: int = 0) -> PartitionLag:
    return PartitionLag("g", "t.signals", partition, highwater, committed)


def test_lag_is_the_distance_from_the_committed_offset_to_the_high_watermark() -> None:
    assert row(60).lag == 40
    assert row(None).lag == 100  # nothing committed yet: everything is waiting
    assert row(120).lag == 0  # never negative
    assert row(60, highwater=None).lag is None  # no fetch answered yet


def test_a_partition_with_lag_and_no_commit_for_the_limit_is_stuck() -> None:
    progress = Progress(stuck_after_s=120)
    assert progress.update([row(60)], now=0) == []
    assert progress.update([row(60)], now=119) == []
    assert progress.update([row(60)], now=120) == [row(60)]
    assert progress.update([row(61)], now=121) == []  # it moved: the clock starts again
    assert progress.update([row(61)], now=240) == []
    assert progress.update([row(61)], now=241) == [row(61)]


def test_a_caught_up_partition_is_never_stuck_however_long_it_is_quiet() -> None:
    progress = Progress(stuck_after_s=10)
    for now in range(0, 1000, 50):
        assert progress.update([row(100)], now=now) == []


def test_a_revoked_partition_is_forgotten_and_its_series_removed() -> None:
    metrics = create_metrics()
    progress = Progress(stuck_after_s=10)
    both = [row(60, partition=0), row(70, partition=1)]
    published = publish_lag(metrics, both)
    progress.update(both, now=0)
    sample = metrics.registry.get_sample_value
    assert (
        sample("engagement_consumer_lag", {"group": "g", "topic": "t.signals", "partition": "1"})
        == 30
    )
    published = publish_lag(metrics, both[:1], published)  # partition 1 went to another worker
    assert (
        sample("engagement_consumer_lag", {"group": "g", "topic": "t.signals", "partition": "1"})
        is None
    )
    assert (
        sample(
            "engagement_consumer_committed_offset",
            {"group": "g", "topic": "t.signals", "partition": "0"},
        )
        == 60
    )
    assert progress.update(both[:1], now=5) == []
    assert progress.update([row(70, partition=1)], now=100) == []  # back again: a fresh start


def test_ready_only_when_every_check_passes_and_nothing_is_stuck() -> None:
    assert Readiness({"redis": None, "broker": None, "partitions": None}).ready
    assert not Readiness({"redis": "redis does not answer", "broker": None}).ready
    stuck = Readiness({"redis": None}, stuck=["t.signals[0]: lag 5"])
    assert not stuck.ready
    body = stuck.as_json()
    assert body["ready"] is False and body["checks"] == {"redis": "ok"}
    assert body["stuck_partitions"] == ["t.signals[0]: lag 5"]
