"""Send a request's messages through one idempotent kafka-python producer and wait, without
blocking the event loop, until the broker has acknowledged every one of them.

The HTTP reply is written only after that, so a 2xx means the events are on the raw topics
(``acks=all``). When the broker does not acknowledge in time the request is answered 503 with
``Retry-After``; a client that retries sends nothing twice that counts twice, because events
are de-duplicated by feed and event id downstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaProducer

from schemas.errors import EngagementError

log = logging.getLogger("engagement.ingest")

Outgoing = tuple[str, bytes | None, bytes]
"""One message: topic, key, value."""


class NotAcknowledged(EngagementError):
    """The broker did not acknowledge every message of a request in time."""


class Sender:
    """The ingest service's producer; thread-safe, shared by every request."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_options: Mapping[str, object] | None = None,
        linger_ms: int = 2,
    ) -> None:
        self._producer: Any = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id="engagement-ingest",
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            batch_size=262_144,
            max_request_size=1_048_576,
            **(client_options or {}),
        )

    async def send(self, messages: Sequence[Outgoing], timeout_s: float) -> None:
        """Send ``messages`` and wait for every acknowledgement; raise NotAcknowledged if the
        broker refuses one or does not answer within ``timeout_s``."""
        if not messages:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        left = len(messages)

        def settle(error: BaseException | None) -> None:
            # Runs on the event loop (call_soon_threadsafe from the producer's I/O thread).
            nonlocal left
            if done.done():
                return
            if error is not None:
                done.set_exception(NotAcknowledged(f"the broker refused a message: {error!r}"))
                return
            left -= 1
            if left == 0:
                done.set_result(None)

        def ok(_: object) -> None:
            loop.call_soon_threadsafe(settle, None)

        def failed(error: BaseException) -> None:
            loop.call_soon_threadsafe(settle, error)

        try:
            for topic, key, value in messages:
                future = self._producer.send(topic, value=value, key=key)
                future.add_callback(ok)
                future.add_errback(failed)
        except Exception as exc:  # buffer full, not connected, message too large
            done.cancel()
            msg = f"the broker cannot take messages now: {type(exc).__name__}"
            raise NotAcknowledged(msg) from exc
        try:
            await asyncio.wait_for(done, timeout_s)
        except TimeoutError:
            msg = f"the broker did not acknowledge within {timeout_s:g}s"
            raise NotAcknowledged(msg) from None

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what is queued and close the producer."""
        try:
            self._producer.flush(timeout=timeout_s)
        except Exception as exc:  # closing anyway; the requests were answered 503
            log.warning("ingest producer: flush on close failed: %s", type(exc).__name__)
        self._producer.close(timeout=timeout_s)
