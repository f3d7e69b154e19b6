"""Latency: publish at a steady rate while a consumer reads the nudges; publish → nudge.

Event time runs fast enough that days close during the run. Each nudge carries the publish
time of the newest event in the batch that closed its day, so publish → nudge-on-the-topic
is the delay between the event that makes a decision possible and the decision.
"""

from __future__ import annotations

import json
import secrets
import statistics
import threading
import time
from datetime import timedelta
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from schemas.common import Source
from schemas.settings import load_settings
from stream.dev.bench.feed import TERM_START
from stream.dev.bench.figures import Figures, percentile
from stream.dev.bench.worker import start_worker
from stream.dev.processes import ProcessError, scrape, total
from stream.endpoints import Endpoints
from stream.publisher import Publisher
from stream.topics import ensure_topics


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
    worker, port = start_worker(endpoints, settings, key, workdir, "bench-worker-latency")
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
