"""``engagement bench``: throughput, publish→nudge latency percentiles and worker memory.

Throughput is measured on a backlog: the events are published first, then one worker is
started and timed from its first consumed event to its last signal applied to state (read
from its own metrics). Latency is measured live: events are published at a steady rate, with
event time running fast enough that days close during the run, while a consumer reads the
nudges; each nudge carries the publish time of the newest event in the batch that closed its
day, so publish → nudge-on-the-topic is the delay between the event that makes a decision
possible and the decision.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from schemas.common import Source
from schemas.settings import Settings, load_settings
from stream.dev.processes import Child, ProcessError, free_port, scrape, total
from stream.dev.stack import Endpoints, LocalStack
from stream.publisher import Publisher, ensure_topics

TERM_START = datetime(2026, 9, 28, 8, 0, tzinfo=UTC)
DRAIN_TIMEOUT_S = 600.0
POLL_S = 0.25


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


def synthetic_events(
    count: int, students: int | None = None
) -> list[tuple[Source, dict[str, Any]]]:
    """A deterministic, time-ordered mixed feed over four weeks: 70% VLE, 20% swipes, 10% marks.

    The cohort is sized so that each student has ~200 events in the four weeks (about seven a
    day), as an engaged student does; a handful of nudges result, as in a real week.
    """
    cohort = students or max(50, count // 200)
    events: list[tuple[Source, dict[str, Any]]] = []
    span_s = 28 * 86_400
    for n in range(count):
        student = f"B{n % cohort:07d}"
        when = (TERM_START + timedelta(seconds=n * span_s // count)).isoformat()
        common = {"event_id": f"bench-{n}", "student_id": student, "occurred_at": when}
        kind = n % 10
        if kind < 7:
            events.append(
                (
                    Source.VLE,
                    {
                        **common,
                        "platform": "moodle",
                        "course": f"MOD{n % 12:03d}",
                        "action": "viewed",
                        "resource": f"week-{n % 10}",
                    },
                )
            )
        elif kind < 9:
            events.append(
                (
                    Source.SWIPE,
                    {
                        **common,
                        "reader_id": f"R{n % 40:02d}",
                        "building": "Library",
                        "direction": "in",
                    },
                )
            )
        else:
            events.append(
                (
                    Source.ATTENDANCE,
                    {
                        **common,
                        "session_id": f"S{n % 500}",
                        "module": f"MOD{n % 12:03d}",
                        "expected_start": when,
                        "expected_end": when,
                        "status": "present",
                        "capture_method": "card",
                    },
                )
            )
    return events


def _worker(
    endpoints: Endpoints,
    settings: Settings,
    key: str,
    workdir: Path,
    name: str,
    metrics: str = "full",
) -> tuple[Child, int]:
    port = free_port()
    env = {
        **endpoints.as_env(),
        "ENGAGEMENT_PSEUDONYM_KEY": key,
        "ENGAGEMENT_TOPIC_PREFIX": settings.topic_prefix,
        "ENGAGEMENT_KEY_PREFIX": settings.key_prefix,
        "ENGAGEMENT_WEB_PORT": str(port),
        "ENGAGEMENT_LOG_LEVEL": os.environ.get("ENGAGEMENT_LOG_LEVEL", "WARNING"),
        "ENGAGEMENT_METRICS": metrics,
    }
    return Child(name, ["worker"], env, workdir).start(), port


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
        by_source: dict[Source, list[dict[str, Any]]] = {s: [] for s in Source}
        for source, event in events:
            by_source[source].append(event)
        for source, batch in by_source.items():
            publisher.publish(source, batch)
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
    worker, port = _worker(
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


def _consume_nudges(
    bootstrap: str, topic: str, partitions: int, stop: threading.Event, out: list[float]
) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=50).values():
                received = time.time() * 1000
                for record in records:
                    nudge = json.loads(record.value)
                    if nudge.get("published_at_ms"):
                        out.append(received - nudge["published_at_ms"])
    finally:
        consumer.close()


def latency(endpoints: Endpoints, workdir: Path, rate: int, seconds: int) -> Figures:
    """Publish at ``rate`` events/s for ``seconds``; measure publish → nudge for each nudge."""
    key = secrets.token_urlsafe(24)
    prefix = f"l{secrets.token_hex(4)}"
    settings = load_settings(pseudonym_key=key, topic_prefix=f"{prefix}.", key_prefix=prefix)
    ensure_topics(endpoints.kafka_bootstrap, settings.topics, settings.partitions)
    figures = Figures(latency_rate=rate)
    worker, port = _worker(endpoints, settings, key, workdir, "bench-worker-latency")
    samples: list[float] = []
    stop = threading.Event()
    reader = threading.Thread(
        target=_consume_nudges,
        args=(
            endpoints.kafka_bootstrap,
            settings.topics.nudges,
            settings.partitions,
            stop,
            samples,
        ),
    )
    try:
        worker.wait_http(port)
        # Warm up: wait until both consumers have joined their groups and one event went
        # all the way through, so the measurement starts with a running worker.
        with Publisher(endpoints.kafka_bootstrap, topics=settings.topics, envelope_size=1) as warm:
            warm.publish(
                Source.VLE,
                [
                    {
                        "event_id": "warm-up",
                        "student_id": "W0000001",
                        "occurred_at": TERM_START.isoformat(),
                        "platform": "moodle",
                        "course": "MOD001",
                        "action": "viewed",
                    }
                ],
            )
        deadline = time.monotonic() + 60
        while total(scrape(port), "engagement_signals_applied_total") < 1:
            if time.monotonic() > deadline:
                msg = f"the bench worker did not process a first event:\n{worker.tail()}"
                raise ProcessError(msg)
            time.sleep(0.05)
        reader.start()
        # 20 events every 10 ms: a live feed, not a backlog. Event time runs 10 s per event,
        # so days close (48 h after they end) during the run. Every tenth event is an absent
        # mark; four absent marks in a day for a student breach the attendance rule.
        tick, per_tick = 0.01, max(1, rate // 100)
        sent = 0
        with Publisher(
            endpoints.kafka_bootstrap, topics=settings.topics, envelope_size=per_tick, linger_ms=0
        ) as publisher:
            started = time.perf_counter()
            day = TERM_START
            for step in range(int(seconds / tick)):
                vle, marks = [], []
                for i in range(per_tick):
                    n = sent + i
                    when = (day + timedelta(seconds=10 * n)).isoformat()
                    if n % 10 == 0:
                        student = f"L{n // 40:07d}"  # four marks per student, all absent
                        marks.append(
                            {
                                "event_id": f"lat-{n}",
                                "student_id": student,
                                "occurred_at": when,
                                "session_id": f"S{n}",
                                "module": "MOD001",
                                "expected_start": when,
                                "expected_end": when,
                                "status": "absent",
                                "capture_method": "register",
                            }
                        )
                    else:
                        vle.append(
                            {
                                "event_id": f"lat-{n}",
                                "student_id": f"V{n % 5000:07d}",
                                "occurred_at": when,
                                "platform": "moodle",
                                "course": "MOD001",
                                "action": "viewed",
                            }
                        )
                publisher.publish(Source.VLE, vle)
                publisher.publish(Source.ATTENDANCE, marks)
                sent += per_tick
                publisher.flush()
                pause = started + (step + 1) * tick - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
        figures.latency_events = sent
        # Decisions for the last closed day follow its closing batch; wait until they stop.
        deadline, seen = time.monotonic() + 20, -1
        while len(samples) != seen and time.monotonic() < deadline:
            seen = len(samples)
            time.sleep(2.0)
    finally:
        stop.set()
        if reader.is_alive():
            reader.join(timeout=10)
        worker.stop()
    figures.nudges_measured = len(samples)
    if samples:
        ordered = sorted(samples)
        figures.latency_ms = {
            "p50": percentile(ordered, 0.50),
            "p95": percentile(ordered, 0.95),
            "p99": percentile(ordered, 0.99),
            "max": ordered[-1],
            "mean": statistics.fmean(ordered),
        }
    return figures


def run_bench(  # one keyword per command-line option
    *,
    events: int,
    envelope_size: int,
    rate: int,
    latency_seconds: int,
    out: Path | None,
    part: str = "all",
    nudges: int = 5000,
    metrics: str = "full",
) -> int:
    """Run the worker's throughput runs (with envelopes, and one event per message) and its
    latency run, and the notifier's delivery run; ``part`` picks one side."""
    workdir = Path(".engagement") / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine_cores": __import__("os").cpu_count(),
        "at": datetime.now(UTC).isoformat(),
    }
    with LocalStack(workdir / "stack") as stack:
        endpoints = stack.endpoints
        if part in ("all", "notifier"):
            from stream.dev.notifybench import notifier_bench

            print(f"notifier: {nudges} prompts through the signed webhook ...", flush=True)
            delivery = notifier_bench(endpoints, workdir, nudges)
            results["notifier_webhook"] = delivery
            print(
                f"  {delivery['delivered_per_second']:,.0f} delivered prompts/s "
                f"({delivery['delivered']} in {delivery['seconds']:.1f}s; "
                f"notifier peak RSS {delivery['notifier_peak_rss_mib'] or 0:.0f} MiB)",
                flush=True,
            )
        if part == "notifier":
            if out is not None:
                out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
            return 0
        sizes = [envelope_size] if envelope_size == 1 else [envelope_size, 1]
        modes = ["full", "minimal"] if metrics == "both" else [metrics]
        for size in sizes:
            count = events if size > 1 else min(events, 50_000)
            for mode in modes:
                print(
                    f"throughput: {count} events, {size} per message, {mode} metrics ...",
                    flush=True,
                )
                figures = throughput(endpoints, workdir, count, size, mode)
                suffix = "" if mode == "full" else f"_{mode}_metrics"
                results[f"throughput_envelope_{size}{suffix}"] = asdict(figures)
                print(
                    f"  {figures.events_per_second:,.0f} events/s "
                    f"(publish took {figures.publish_seconds:.1f}s; "
                    f"worker peak RSS {figures.worker_peak_rss_mib or 0:.0f} MiB)",
                    flush=True,
                )
        print(f"latency: {rate} events/s for {latency_seconds}s ...", flush=True)
        figures = latency(endpoints, workdir, rate, latency_seconds)
        results["latency"] = asdict(figures)
        lat = figures.latency_ms
        if lat:
            print(
                f"  publish → nudge over {figures.nudges_measured} nudges: "
                f"p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, "
                f"p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms",
                flush=True,
            )
        else:
            print("  no nudges were measured", flush=True)
    if out is not None:
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0
