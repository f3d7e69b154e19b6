"""Defects of the embedded Tansu broker that the product works around, kept as strict xfails.

If a later broker fixes one, its test starts passing, the strict xfail fails the suite, and
the work-around (and the README's Known limits) can be revisited.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from stream.dev.stack import Endpoints

pytestmark = pytest.mark.integration


def _embedded_only(stack: Endpoints) -> None:
    if not stack.embedded_kafka:
        pytest.skip("documents the embedded broker; an external Kafka behaves correctly")


@pytest.mark.xfail(
    strict=True,
    reason="Tansu answers ListOffsets(latest) with the base offset of the last record batch",
)
def test_latest_offset_is_the_log_end(stack: Endpoints, prefix: str) -> None:
    _embedded_only(stack)
    topic = f"{prefix}.offsets"
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, linger_ms=50)
    for n in range(400):
        producer.send(topic, f"{n}".encode(), partition=0)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap)
    tp = TopicPartition(topic, 0)
    end = consumer.end_offsets([tp])[tp]
    consumer.close()
    assert end == 400


@pytest.mark.xfail(strict=True, reason="Tansu answers aiokafka's InitProducerId with UnknownError")
def test_aiokafka_idempotent_producer_starts(stack: Endpoints) -> None:
    _embedded_only(stack)

    async def start() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True
        )
        try:
            await producer.start()
        finally:
            await producer.stop()

    asyncio.run(start())
