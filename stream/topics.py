"""Create the product's Kafka topics before anything produces to them.

A producer writing to a missing topic makes the broker auto-create it with the broker's
default partition count, not the configured one; so every process that starts (and every
CLI command that publishes) creates the missing topics first.
"""

from __future__ import annotations

from typing import Any, Final

from kafka import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from schemas.topics import TopicNames
from stream.publisher import PublishError

_TOPIC_TIMEOUT_MS: Final = 30_000


def ensure_topics(bootstrap_servers: str, topics: TopicNames, partitions: int) -> None:
    """Create every missing product topic, tolerating ones another process created meanwhile."""
    # Replication factor 1 suits the embedded broker and tests. Production clusters create
    # the topics themselves, with their own replication, partitions and retention.
    admin: Any = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="engagement-admin")
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
