"""A broker that lost its log is noticed: a real worker, and a broker of this test's own that
restarts empty under it.

Before, the offsets stored with the state stayed ahead of the new log and the state script
skipped every message at or below them: all 20 events published after the restart were
skipped silently, while ``/readyz`` answered 200, with the topics gone as well. The session's
broker is shared by other tests, so this test runs a Tansu broker (and a Redis) of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from agents.router import pack_signals, signal_partition
from schemas.common import Source
from stream.dev.processes import Child
from stream.dev.stack import Endpoints, LocalStack, StackError
from stream.dev.stack.children import (
    EarlyExitError,
    free_port,
    spawn,
    terminate,
    wait_for_child,
)
from stream.dev.stack.services import kafka_bootstrap, tansu_argv, tansu_bin, tansu_env
from stream.probes import http_get, probe_kafka
from stream.topics import ensure_topics
from tests.integration.harness import TERM, Pipeline, vle, wait_for
from tests.integration.test_ingest import post

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Signals messages already applied on every partition before the broker loses its log: far
# more than the new log holds by the time the worker reads it (a few a second), as in a
# deployment that has run for a while.
APPLIED_BEFORE = 300
AFTER = 20  # events published after the restart


class Broker:
    """An in-memory Tansu broker on a port of its own, which can restart empty on it."""

    def __init__(self, workdir: Path) -> None:
        self.binary = tansu_bin()
        self.port = free_port()
        self.bootstrap = kafka_bootstrap(self.port)
        self.log = workdir / "kafka.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:  # the port may still be held a moment after the old broker exits
            proc = spawn(tansu_argv(self.binary, self.port), self.log, tansu_env())
            try:
                wait_for_child("kafka", lambda: probe_kafka(self.bootstrap), deadline, proc)
            except EarlyExitError:
                if time.monotonic() >= deadline:
                    raise
                continue
            self.proc = proc
            return

    def restart_empty(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[tuple[Broker, Endpoints]]:
    """A broker this test may restart, and a Redis of its own."""
    try:
        broker = Broker(tmp_path)
    except StackError as exc:
        pytest.skip(f"needs the embedded broker binary: {exc}")
    broker.start()
    local = LocalStack(tmp_path / "stack", kafka_bootstrap=broker.bootstrap)
    try:
        yield broker, local.start()
    finally:
        local.stop()
        broker.stop()


def students_on_every_partition(pipeline: Pipeline, tag: str, per_partition: int) -> list[str]:
    """Student ids spread evenly over the signals partitions."""
    partitions = pipeline.settings.partitions
    chosen: dict[int, list[str]] = {p: [] for p in range(partitions)}
    n = 0
    while any(len(found) < per_partition for found in chosen.values()):
        student = f"S-{tag}-{n}"
        found = chosen[signal_partition(pipeline.pseudonym(student), partitions)]
        if len(found) < per_partition:
            found.append(student)
        n += 1
    return [student for found in chosen.values() for student in found]


def samples(pipeline: Pipeline, metric: str, **labels: str) -> dict[str, float]:
    """The worker's samples of one metric whose labels include ``labels``."""
    wanted = [f"{k}={v}" for k, v in labels.items()]
    return {
        name: value
        for name, value in pipeline.metrics().items()
        if name.startswith(metric + "{") and all(w in name for w in wanted)
    }


def readyz(pipeline: Pipeline) -> tuple[int, dict[str, Any]]:
    status, body = http_get(f"http://127.0.0.1:{pipeline.ports['worker']}/readyz", timeout=10)
    return status, json.loads(body) if body else {}


def topics_missing(pipeline: Pipeline) -> dict[str, Any] | None:
    """The /readyz report while it answers 503 for missing topics, else None."""
    status, body = readyz(pipeline)
    missing = status == 503 and "missing" in str(body.get("checks", {}).get("topics"))
    return body if missing else None


def stored_offsets(pipeline: Pipeline) -> dict[int, int]:
    raw = pipeline.redis.hgetall(f"{pipeline.prefix}:offsets:{group(pipeline)}")
    return {int(k): int(v) for k, v in raw.items()}


def group(pipeline: Pipeline) -> str:
    return f"{pipeline.prefix}.engagement-worker"


def offsets_cli(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "stream.cli", "offsets", *args],
        env={**pipeline.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_a_broker_that_restarts_empty_is_noticed_and_what_follows_is_counted(
    own_stack: tuple[Broker, Endpoints], prefix: str, tmp_path: Path
) -> None:
    broker, endpoints = own_stack
    pipeline = Pipeline(endpoints, prefix, tmp_path)
    try:
        worker = pipeline.start("worker", "worker")
        topics = pipeline.settings.topics
        partitions = pipeline.settings.partitions

        # A deployment that has run a while: raw events counted, every signals partition
        # hundreds of messages in (watermark-only ticks, which change no student's state).
        before = students_on_every_partition(pipeline, "before", 50)
        pipeline.publish(Source.VLE, [vle(0, s, TERM + timedelta(minutes=1)) for s in before], 1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
        for partition in range(partitions):
            for _ in range(APPLIED_BEFORE):
                (tick,) = pack_signals([])
                producer.send(
                    topics.signals, tick, key=str(partition).encode(), partition=partition
                )
        producer.flush()
        producer.close()
        wait_for("every event counted", lambda: all(pipeline.counts(s) for s in before), 120)
        wait_for(
            "every signals partition applied far along",
            lambda: (
                len(stored_offsets(pipeline)) == partitions
                and min(stored_offsets(pipeline).values()) >= APPLIED_BEFORE
            ),
            120,
        )
        assert readyz(pipeline)[0] == 200

        broker.restart_empty()

        # /readyz fails while the topics are missing, and names them.
        # (Which ones depends on timing: the broker re-creates a topic the worker's own producer
        # writes to meanwhile, as it does the signals topic for a watermark tick.)
        body = wait_for("/readyz to fail for the missing topics", lambda: topics_missing(pipeline))
        said = body["checks"]["topics"]
        named = said.split("missing: ", 1)[1].split(". The broker", 1)[0].split(", ")
        assert named and set(named) <= set(topics.all), said
        assert said.startswith(f"{len(named)} topic(s) missing"), said
        assert body["ready"] is False

        ensure_topics(broker.bootstrap, topics, partitions)  # the topics job, say
        after = students_on_every_partition(pipeline, "after", AFTER // partitions)
        pipeline.publish(Source.VLE, [vle(1, s, TERM + timedelta(hours=2)) for s in after], 1)

        # Every one of the 20 events is counted.
        wait_for(
            f"the {AFTER} events published after the restart to be counted",
            lambda: [s for s in after if pipeline.counts(s) != {"vle": 1}] == [],
            120,
        )
        # The regression was counted once per signals partition, and said in the log.
        counted = samples(pipeline, "engagement_offset_regressions_total", group=group(pipeline))
        assert sorted(counted.values()) == [1.0] * partitions, counted
        log = worker.log_path.read_text(encoding="utf-8", errors="replace")
        for partition in range(partitions):
            assert f"offset regression on {topics.signals} partition {partition}" in log
        assert "the state had already applied up to offset" in log
        # The ingest noticed its raw topic starting again too (its reads are de-duplicated).
        raw = samples(
            pipeline,
            "engagement_offset_regressions_total",
            group=f"{prefix}.engagement-ingest",
            topic=topics.raw("vle"),
        )
        assert sum(raw.values()) >= 1, raw
        # The stored offsets now follow the new log.
        assert max(stored_offsets(pipeline).values()) < APPLIED_BEFORE
        wait_for("/readyz ready again", lambda: readyz(pipeline)[0] == 200, 60)

        shown = offsets_cli(pipeline, "show")
        assert shown.returncode == 0, shown.stderr
        assert group(pipeline) in shown.stdout and "AHEAD" not in shown.stdout
        _reset_by_hand(pipeline, worker)
    finally:
        pipeline.stop()


def _reset_by_hand(pipeline: Pipeline, worker: Child) -> None:
    """`engagement offsets reset` refuses without --yes, and forgets the offsets with it."""
    worker.stop()  # nothing moves the offsets meanwhile
    stored = stored_offsets(pipeline)
    refused = offsets_cli(pipeline, "reset", "--group", group(pipeline))
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert stored_offsets(pipeline) == stored
    done = offsets_cli(pipeline, "reset", "--group", group(pipeline), "--partition", "1", "--yes")
    assert done.returncode == 0, done.stderr
    assert stored_offsets(pipeline) == {p: o for p, o in stored.items() if p != 1}
    done = offsets_cli(pipeline, "reset", "--group", group(pipeline), "--yes")
    assert done.returncode == 0, done.stderr
    assert stored_offsets(pipeline) == {}


def test_the_ingest_service_answers_503_while_its_broker_is_away(
    own_stack: tuple[Broker, Endpoints], prefix: str, tmp_path: Path
) -> None:
    """An event the broker cannot acknowledge is answered 503 with Retry-After (never taken
    silently, never a 500), and the service keeps running. (Taking events again once the
    broker is back is not shown here: the embedded broker, restarted, answers the idempotent
    producer's InitProducerId with UnknownError, so the retries keep getting 503.)"""
    broker, endpoints = own_stack
    pipeline = Pipeline(endpoints, prefix, tmp_path)
    pipeline.env["ENGAGEMENT_INGEST_ACK_TIMEOUT_S"] = "3"
    try:
        ingest = pipeline.start("ingest", "ingest")
        status, _, _ = post(pipeline, "/events/vle", [vle(0, "S-AWAY", TERM)])
        assert status == 200

        broker.stop()
        status, headers, reply = post(pipeline, "/events/vle", [vle(1, "S-AWAY", TERM)])
        assert status == 503, reply
        assert headers.get("Retry-After") and reply["status"] == 503, (headers, reply)
        assert ingest.alive()
        assert http_get(f"http://127.0.0.1:{pipeline.ports['ingest']}/healthz")[0] == 200
        assert "S-AWAY" not in ingest.log_path.read_text(encoding="utf-8", errors="replace")
    finally:
        pipeline.stop()
