"""Faust's Kafka transport with a configurable fetch wait.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for its consumer. A Kafka broker
answers a fetch as soon as data arrives, so there the value only bounds idle polling; the
embedded Tansu broker holds every fetch for the full wait (measured: 434 ms median
publish→consume at 1500 ms, 6 ms at 100 ms), which made each topic hop cost seconds. This
transport lets the setting through, under the URL scheme ``engagement-kafka://``.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

SCHEME = "engagement-kafka"
_fetch_max_wait_ms = 100


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read when its fetcher starts
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with the consumer above."""

    Consumer = _Consumer


def install(fetch_max_wait_ms: int) -> str:
    """Register the transport and set the fetch wait; returns the URL scheme to use."""
    global _fetch_max_wait_ms  # one process-wide consumer setting
    _fetch_max_wait_ms = fetch_max_wait_ms
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
    return SCHEME
