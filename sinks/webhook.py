"""The webhook channel: POST a JSON message to the institution's notification service.

Contract: ``Content-Type: application/json``, ``Idempotency-Key: <nudge id>`` (the service
must treat a repeated key as the same message), 2xx means accepted. 5xx, 408, 429, timeouts
and connection errors are retried with exponential backoff and jitter; other 4xx are not.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

import aiohttp

_RETRYABLE = frozenset({408, 425, 429})


@dataclass(frozen=True)
class DeliveryResult:
    """How a delivery ended."""

    ok: bool
    reason: str
    attempts: int
    status: int | None = None


class WebhookChannel:
    """Delivers one message at a time with bounded retries."""

    def __init__(
        self, url: str, *, timeout_s: float, attempts: int, backoff_s: float = 0.25
    ) -> None:
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._session: aiohttp.ClientSession | None = None
        self._jitter = random.Random()  # noqa: S311  # jitter, not security

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        """Release the HTTP connection pool."""
        if self._session is not None:
            await self._session.close()

    async def deliver(self, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        """POST ``payload``; retry what may succeed later; never raise for a delivery failure."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        reason = "not_attempted"
        status: int | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                session = await self._client()
                async with session.post(self.url, data=body, headers=headers) as response:
                    status = response.status
                    await response.read()
                if 200 <= status < 300:
                    return DeliveryResult(True, "accepted", attempt, status)
                reason = f"http_{status}"
                if status < 500 and status not in _RETRYABLE:
                    return DeliveryResult(False, reason, attempt, status)
            except TimeoutError:
                reason = "timeout"
            except aiohttp.ClientError as exc:
                reason = f"connection_error:{type(exc).__name__}"
            if attempt < self.attempts:
                delay = min(self.backoff_s * 2 ** (attempt - 1), 5.0)
                await asyncio.sleep(delay + self._jitter.uniform(0, delay / 2))
        return DeliveryResult(False, reason, self.attempts, status)
