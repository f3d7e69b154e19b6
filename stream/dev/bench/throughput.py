"""Throughput: publish a backlog first, then time one worker draining it (from its metrics).

The worker is timed from its first consumed event to its last signal applied to state, so
publishing and the worker's start-up are not counted.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from schemas.common import Source
from schemas.settings import Settings, load_settings
from schemas.sources import SOURCES
from stream.dev.bench.feed import synthetic_events
from stream.dev.bench.figures import Figures
from stream.dev.bench.worker import start_worker
from stream.dev.processes import ProcessError, scrape, total
from stream.endpoints import Endpoints
from stream.publisher import Publisher
from stream.topics import ensure_topics

DRAIN_TIMEOUT_S = 600.0
POLL_S = 0.25


def _publish(
    endpoints: Endpoints,
    settings: Settings,
    events: list[tuple[Source, dict[str, Any]]],
    envelope_size: int,
) -> float:
    started = time.perf_counter()
    with Publisher(
        endpoints.kafka_bootstrap, topics=settings.topics, envelope_size=envelope_size
    ) as publisher:
        by_source: dict[str, list[dict[str, Any]]] = {s: [] for s in SOURCES}
        for source, event in events:
            by_source[source].append(event)
        for name, batch in by_source.items():
            publisher.publish(name, batch)
        publisher.flush()
    return time.perf_counter() - started


def throughput(
    endpoints: Endpoints, workdir: Path, count: int, envelope_size: int, metrics: str = "full"
) -> Figures:
    """Publish ``count`` events, then time one worker draining them."""
    key = secrets.token_urlsafe(24)
    prefix = f"b{secrets.token_hex(4)}"
    settings = load_settings(pseudonym_key=key, topic_prefix=f"{prefix}.", key_prefix=prefix)
    ensure_topics(endpoints.kafka_bootstrap, settings.topics, settings.partitions)
    figures = Figures(events=count, envelope_size=envelope_size)
    events = synthetic_events(count)
    figures.publish_seconds = _publish(endpoints, settings, events, envelope_size)
    worker, port = start_worker(
        endpoints, settings, key, workdir, f"bench-worker-{envelope_size}-{metrics}", metrics
    )
    try:
        first: float | None = None
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            if not worker.alive():
                msg = f"the bench worker stopped:\n{worker.tail()}"
                raise ProcessError(msg)
            samples = scrape(port)
            now = time.perf_counter()
            if first is None and total(samples, "engagement_events_received_total") > 0:
                first = now
            if total(samples, "engagement_signals_applied_total") >= count:
                figures.process_seconds = now - (first or now)
                break
            # Reading /metrics costs the worker about 3 ms (Prometheus does it every 15 s);
            # polling it 50 times a second took a sixth of a core from the run it measured.
            time.sleep(POLL_S)
        else:
            msg = f"the worker did not apply {count} events within {DRAIN_TIMEOUT_S:.0f}s"
            raise ProcessError(msg)
        figures.events_per_second = count / max(figures.process_seconds, 1e-9)
        figures.worker_peak_rss_mib = worker.peak_rss_mib()
    finally:
        worker.stop()
    return figures
