"""The Kafka transport: messages for the notification service on the ``outbound`` topic.

For a notification service that consumes Kafka rather than taking webhooks. Each message is
the same JSON document the webhook sends, keyed by the nudge id (a consumer de-duplicates on
it, as the webhook's receiver does on ``Idempotency-Key``), written by the idempotent
``acks=all`` producer. Delivered means the broker acknowledged it.
"""

from __future__ import annotations

import json

from sinks.channels.breaker import CircuitBreaker
from sinks.channels.outbound import DeliveryResult, Outbound
from sinks.channels.producer import ProduceError, RecordProducer


class KafkaChannel:
    """Publishes one message per delivery to the outbound topic."""

    name = "kafka"

    def __init__(
        self, producer: RecordProducer, topic: str, *, breaker: CircuitBreaker | None = None
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.breaker = breaker or CircuitBreaker()

    async def deliver(self, out: Outbound) -> DeliveryResult:
        """Publish ``out.payload``; a broker that does not acknowledge is a failed attempt."""
        if not self.breaker.allow():
            return DeliveryResult(False, "circuit_open", 0)
        body = json.dumps(out.payload, separators=(",", ":"), sort_keys=True).encode()
        try:
            await self.producer.send_many(self.topic, [(out.nudge_id.encode(), body)])
        except ProduceError:
            self.breaker.record_failure()
            return DeliveryResult(False, "broker_unavailable", 1)
        self.breaker.record_success()
        return DeliveryResult(True, "accepted", 1)

    async def close(self) -> None:
        """The producer is shared and closed by its owner."""
