"""What one bench run measured, and the percentile arithmetic for its latency samples."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figures:
    """What one bench run measured."""

    events: int = 0
    envelope_size: int = 0
    publish_seconds: float = 0.0
    process_seconds: float = 0.0
    events_per_second: float = 0.0
    worker_peak_rss_mib: float | None = None
    latency_rate: int = 0
    latency_events: int = 0
    nudges_measured: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)


def percentile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted samples (nearest rank)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
