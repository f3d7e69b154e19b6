"""An idempotent, ``acks=all`` Kafka producer for the notifier's records, usable from asyncio.

The intervention log and the outbound notification topic are written with kafka-python's
idempotent producer (the broker discards a batch it already has when the producer retries),
waiting for every in-sync replica. kafka-python does its I/O on its own thread; each send's
result is handed back to the event loop, so the notifier never blocks on the network.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Final

from schemas.errors import EngagementError

with warnings.catch_warnings():
    # kafka-python 3.0.12 uses importlib.resources APIs deprecated in 3.11 while importing.
    warnings.filterwarnings("ignore", message=r"(open|read)_text is deprecated")
    from kafka import KafkaProducer

SEND_TIMEOUT_S: Final = 30.0


class ProduceError(EngagementError):
    """The broker did not acknowledge a record; the caller keeps it and tries again."""


class RecordProducer:
    """Sends batches of (key, value) to a topic and waits for every acknowledgement."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str,
        client_options: Mapping[str, object] | None = None,
    ) -> None:
        self._producer: Any = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_block_ms=10_000,  # waiting for metadata blocks the event loop: keep it short
            max_in_flight_requests_per_connection=5,
            **(client_options or {}),  # TLS / SASL login: Settings.kafka_client_options()
        )

    async def send_many(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Send every record and return once all are acknowledged; raise ProduceError if any
        is not (records already acknowledged stay written: callers de-duplicate by id)."""
        if not records:
            return
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future[None]] = []
        for key, value in records:
            done: asyncio.Future[None] = loop.create_future()

            def ok(_meta: Any, done: asyncio.Future[None] = done) -> None:
                loop.call_soon_threadsafe(_settle, done, None)

            def failed(exc: BaseException, done: asyncio.Future[None] = done) -> None:
                loop.call_soon_threadsafe(_settle, done, exc)

            try:
                future = self._producer.send(topic, key=key, value=value)
            except Exception as exc:  # e.g. no metadata in time: the broker is unreachable
                msg = f"could not send to {topic}: {exc}"
                raise ProduceError(msg) from exc
            future.add_callback(ok)
            future.add_errback(failed)
            waiting.append(done)
        try:
            await asyncio.wait_for(asyncio.gather(*waiting), SEND_TIMEOUT_S)
        except TimeoutError as exc:
            msg = f"the broker did not acknowledge {len(records)} records to {topic} in time"
            raise ProduceError(msg) from exc
        except Exception as exc:
            msg = f"the broker refused a record to {topic}: {exc}"
            raise ProduceError(msg) from exc

    def close(self) -> None:
        """Flush what is pending and close the connection."""
        self._producer.close(timeout=10)


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
