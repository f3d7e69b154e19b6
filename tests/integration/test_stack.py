"""The embedded stack really serves Kafka and Redis, survives a Redis restart, and runs detached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from stream.dev.stack import STATE_FILE, Endpoints, LocalStack, StackError, down, load_endpoints
from stream.dev.stack import status as stack_status
from stream.dev.stack import up as stack_up

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0


def _create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Create a topic explicitly, as the product does, rather than rely on auto-creation."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def _consume_one(consumer: KafkaConsumer) -> tuple[bytes | None, bytes | None]:
    """Poll until one record arrives or the deadline passes; return its key and value."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                return record.key, record.value
    pytest.fail(f"no record consumed within {DEADLINE_S}s")


def _ping(url: str) -> bool:
    """Return whether Redis at url answers PING right now."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def _pid_gone(pid: int) -> bool:
    """Return whether pid no longer runs (exited, or a zombie awaiting its new parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def _recorded_pids(state: Path) -> list[int]:
    """Return the pids stack.json records for the embedded services."""
    recorded = json.loads((state / STATE_FILE).read_text())
    return [int(proc["pid"]) for proc in recorded["processes"].values()]


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll a zero-argument condition until it is true or the deadline passes."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_broker_round_trips_a_message(stack: Endpoints, prefix: str) -> None:
    """A record produced with kafka-python comes back from a plain (group-less) consumer."""
    topic = f"{prefix}-roundtrip"
    _create_topic(stack.kafka_bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    try:
        meta = producer.send(topic, key=b"k1", value=b"hello").get(timeout=DEADLINE_S)
    finally:
        producer.close()
    assert (meta.topic, meta.partition, meta.offset) == (topic, 0, 0)

    consumer = KafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap, enable_auto_commit=False, group_id=None
    )
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        assert _consume_one(consumer) == (b"k1", b"hello")
    finally:
        consumer.close()


def test_consumer_group_joins_with_a_short_session_timeout(stack: Endpoints, prefix: str) -> None:
    """A group consumer gets the record; Tansu holds JoinGroup for ~half the session timeout."""
    topic = f"{prefix}-group"
    _create_topic(stack.kafka_bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    try:
        producer.send(topic, value=b"grouped").get(timeout=DEADLINE_S)
    finally:
        producer.close()
    # With kafka-python's default 45 s session timeout the join alone takes ~23 s on Tansu.
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=f"{prefix}-g",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    try:
        assert _consume_one(consumer) == (None, b"grouped")
    finally:
        consumer.close()


def test_produce_auto_creates_an_unknown_topic(stack: Endpoints, prefix: str) -> None:
    """Tansu auto-creates a topic on the first Produce to it (here with 4 partitions)."""
    if not stack.embedded_kafka:
        pytest.skip("auto-creation is a broker setting; only the embedded broker is known")
    topic = f"{prefix}-auto"
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    try:
        producer.send(topic, value=b"x").get(timeout=DEADLINE_S)
    finally:
        producer.close()
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    try:
        assert topic in admin.list_topics()
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    assert len(described["partitions"]) == 4


def test_redis_answers_set_and_get(stack: Endpoints, prefix: str) -> None:
    """The session's Redis stores and returns a value."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        assert client.set(f"{prefix}:k", b"v", ex=60)
        assert client.get(f"{prefix}:k") == b"v"
    finally:
        client.close()


def test_redis_outage_then_restart_on_the_same_port(
    local_stack: LocalStack, stack: Endpoints
) -> None:
    """stop_redis makes PING fail; start_redis brings Redis back at the same URL."""
    if not stack.embedded_redis:
        pytest.skip("REDIS_URL points at an external Redis; its outages are not ours to cause")
    assert _ping(stack.redis_url)
    local_stack.stop_redis()
    try:
        assert not _ping(stack.redis_url)
    finally:
        local_stack.start_redis()
    assert _ping(stack.redis_url)
    assert local_stack.endpoints == stack


def test_external_services_are_checked_not_started(stack: Endpoints, tmp_path: Path) -> None:
    """Given endpoints, LocalStack starts nothing and its stop leaves those services running."""
    with LocalStack(
        tmp_path, kafka_bootstrap=stack.kafka_bootstrap, redis_url=stack.redis_url
    ) as other:
        assert other.endpoints == Endpoints(stack.kafka_bootstrap, stack.redis_url, False, False)
        with pytest.raises(StackError, match="external"):
            other.stop_redis()
    assert list(tmp_path.glob("*.log")) == []
    assert _ping(stack.redis_url)


def test_unanswering_external_redis_fails_with_advice(tmp_path: Path) -> None:
    """An external Redis that does not answer gives a StackError naming REDIS_URL."""
    local = LocalStack(tmp_path, redis_url="redis://127.0.0.1:1/0", kafka_bootstrap="127.0.0.1:1")
    with pytest.raises(StackError, match="KAFKA_BOOTSTRAP_SERVERS"):
        local.start(timeout=0.5)
    with pytest.raises(StackError, match="not started"):
        _ = local.endpoints


def test_up_status_down_round_trip(tmp_path: Path) -> None:
    """up starts a detached stack and records it; a second up reuses it; down stops it."""
    state = tmp_path / "state"
    endpoints = stack_up(state, timeout=60)
    try:
        pids = _recorded_pids(state)
        assert len(pids) == 2
        assert stack_up(state) == endpoints
        assert load_endpoints(state) == endpoints
        report = stack_status(state)
        for service in ("kafka", "redis"):
            entry = report[service]
            assert isinstance(entry, dict)
            assert entry["alive"] is True
            assert entry["answering"] is True
    finally:
        stopped = down(state)
    assert stopped
    assert all(_pid_gone(pid) for pid in pids)
    assert not (state / STATE_FILE).exists()
    assert load_endpoints(state) is None
    assert stack_status(state)["recorded"] is False
    assert down(state) is False


def test_down_stops_a_stack_started_by_another_process(tmp_path: Path) -> None:
    """A stack that `up` left behind in an exited process is found and stopped by `down`."""
    state = tmp_path / "state"
    code = "import sys, pathlib, stream.dev.stack as s; s.up(pathlib.Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(state)], check=True, timeout=120)
    try:
        pids = _recorded_pids(state)
        endpoints = load_endpoints(state)
        assert endpoints is not None
        assert _ping(endpoints.redis_url)
    finally:
        stopped = down(state)
    assert stopped
    _wait_for(lambda: all(_pid_gone(pid) for pid in pids), "the detached processes to exit")
    assert not _ping(endpoints.redis_url)
