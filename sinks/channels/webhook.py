"""The webhook channel: POST a signed JSON message to the institution's notification service.

Contract (docs/channels.md is the long form): ``POST`` with the body
``json.dumps(payload, separators=(",", ":"), sort_keys=True)``, serialised once so every
retry sends identical bytes, and the headers ``Content-Type: application/json``,
``Idempotency-Key: <nudge id>`` (the service must treat a repeated key as the same message),
``X-Engagement-Signature: sha256=<hex HMAC-SHA256(secret, body bytes)>``,
``X-Engagement-Channel: <email|sms|app>`` and ``User-Agent: engagement-stream``.

2xx means accepted. 5xx, 408, 425, 429, timeouts and connection errors are retried, up to
``attempts`` in all, with exponential backoff and jitter (a ``Retry-After`` on 429/503 is
honoured, capped at ``max_backoff_s``); other 4xx and 3xx (redirects are not followed) are
final. Each attempt has its own ``timeout_s``. A circuit breaker is consulted before the
first attempt: while it is open nothing is sent and the result is ``circuit_open``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from sinks.channels.breaker import CircuitBreaker
from sinks.channels.outbound import CIRCUIT_OPEN, DeliveryResult, Outbound, backoff_delay

__all__ = ["DeliveryResult", "WebhookChannel", "sign", "verify"]

SIGNATURE_HEADER = "X-Engagement-Signature"
CHANNEL_HEADER = "X-Engagement-Channel"
USER_AGENT = "engagement-stream"

_RETRYABLE = frozenset({408, 425, 429})
_RETRY_AFTER = frozenset({429, 503})


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, header: str) -> bool:
    """Does ``header`` sign exactly ``body`` with ``secret``? Constant-time comparison."""
    if not header.isascii():
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.encode())


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delay-seconds or an HTTP date), None if unusable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": a date without a known zone
            return None
        seconds = max(0.0, (when - datetime.now(UTC)).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


class WebhookChannel:
    """Delivers one message at a time with bounded retries, signed, behind a circuit breaker."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout_s: float,
        attempts: int,
        backoff_s: float = 0.25,
        max_backoff_s: float = 5.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not secret:
            msg = "the webhook secret must not be empty: the receiver could not verify anything"
            raise ValueError(msg)
        if attempts < 1:
            msg = f"attempts must be at least 1, got {attempts}"
            raise ValueError(msg)
        self.url = url
        self._secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.breaker = breaker if breaker is not None else CircuitBreaker()
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
            self._session = None

    async def deliver(self, out: Outbound) -> DeliveryResult:
        """POST ``out.payload``, retrying what may succeed later; never raises for a failure."""
        if not self.breaker.allow():
            return DeliveryResult(False, CIRCUIT_OPEN, 0)
        result, service_down = await self._attempt_all(out)
        # A final 4xx proves the service is up: it counts as an answer, not as an outage.
        if service_down:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        return result

    def _headers(self, out: Outbound, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Idempotency-Key": out.nudge_id,
            SIGNATURE_HEADER: sign(self._secret, body),
            CHANNEL_HEADER: out.channel.value,
            "User-Agent": USER_AGENT,
        }

    async def _attempt_all(self, out: Outbound) -> tuple[DeliveryResult, bool]:
        """The result, and whether it failed on a retryable error (i.e. the service looks down)."""
        body = json.dumps(out.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = self._headers(out, body)
        reason = "not_attempted"
        status: int | None = None
        for attempt in range(1, self.attempts + 1):
            server_wait: float | None = None
            try:
                session = await self._client()
                async with session.post(
                    self.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    status = response.status
                    await response.read()
                    if status in _RETRY_AFTER:
                        server_wait = retry_after_s(response.headers.get("Retry-After"))
                if 200 <= status < 300:
                    return DeliveryResult(True, "accepted", attempt, status), False
                reason = f"http_{status}"
                if status < 500 and status not in _RETRYABLE:
                    return DeliveryResult(False, reason, attempt, status), False
            except TimeoutError:
                reason, status = "timeout", None
            except aiohttp.ClientError as exc:
                reason, status = f"connection_error:{type(exc).__name__}", None
            if attempt < self.attempts:
                if server_wait is not None:
                    delay = min(server_wait, self.max_backoff_s)
                else:
                    delay = backoff_delay(attempt, self.backoff_s, self.max_backoff_s, self._jitter)
                await asyncio.sleep(delay)
        return DeliveryResult(False, reason, self.attempts, status), True
