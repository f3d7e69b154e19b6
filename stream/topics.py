"""Create the product's Kafka topics before anything produces to them.

A producer writing to a missing topic makes the broker auto-create it with the broker's
default partition count, not the configured one; so every process that starts (and every
CLI command that publishes) creates the missing topics first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import TopicAlreadyExistsError

from schemas.topics import TopicNames
from stream.publisher import PublishError

_TOPIC_TIMEOUT_MS: Final = 30_000
_PAST_ANY_END: Final = 2**62  # an offset no log reaches: a fetch there returns no record


def ensure_topics(
    bootstrap_servers: str,
    topics: TopicNames,
    partitions: int,
    client_options: Mapping[str, object] | None = None,
) -> None:
    """Create every missing product topic, tolerating ones another process created meanwhile."""
    # Replication factor 1 suits the embedded broker and tests. Production clusters create
    # the topics themselves, with their own replication, partitions and retention.
    admin: Any = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="engagement-admin",
        **(client_options or {}),  # TLS / SASL login: Settings.kafka_client_options()
    )
    try:
        existing = set(admin.list_topics())
        missing = [name for name in topics.all if name not in existing]
        if missing:
            spec = {
                name: {"num_partitions": partitions, "replication_factor": 1} for name in missing
            }
            result = admin.create_topics(spec, timeout_ms=_TOPIC_TIMEOUT_MS, raise_errors=False)
            problems = [
                f"{topic['name']}: error {topic['error_code']} {topic.get('error_message') or ''}"
                for topic in result.get("topics", [])
                if topic["error_code"] not in (0, TopicAlreadyExistsError.errno)
            ]
            if problems:
                msg = "could not create topics: " + "; ".join(problems)
                raise PublishError(msg)
        admin.wait_for_topics(list(topics.all), timeout_ms=_TOPIC_TIMEOUT_MS)
    finally:
        admin.close()


def log_ends(
    bootstrap_servers: str,
    topic: str,
    client_options: Mapping[str, object] | None = None,
    timeout_s: float = 10.0,
) -> dict[int, int] | None:
    """Each partition's log end (its high watermark, as fetch responses report it), or None
    when the topic does not exist. Never ListOffsets, which the embedded broker answers wrongly;
    the fetches ask past the end of the log, so no record is read."""
    consumer: Any = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id="engagement-admin",
        enable_auto_commit=False,
        auto_offset_reset="latest",  # a broker that refuses a fetch past the end: go to the end
        fetch_max_wait_ms=100,
        **(client_options or {}),  # TLS / SASL login: Settings.kafka_client_options()
    )
    try:
        if topic not in consumer.topics():
            return None
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))
        ]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, _PAST_ANY_END)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(
            consumer.highwater(p) is None for p in partitions
        ):
            consumer.poll(timeout_ms=200, max_records=1)
        ends = {tp.partition: consumer.highwater(tp) for tp in partitions}
        return {partition: int(end) for partition, end in ends.items() if end is not None}
    finally:
        consumer.close()
