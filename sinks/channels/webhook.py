"""The webhook channel: POST a signed JSON message to the institution's notification service.

Contract (docs/channels.md is the long form): ``POST`` with the body
``json.dumps(payload, separators=(",", ":"), sort_keys=True)``, serialised once so every
retry sends identical bytes, signed as Standard Webhooks (standardwebhooks.com) prescribes:
``webhook-id: <nudge id>`` (the same on every retry), ``webhook-timestamp: <Unix seconds of
this attempt>`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``,
one signature per configured secret, space-separated (two while a secret is being rotated).
Because the id and the time are signed, a captured request cannot be replayed later (the
receiver refuses a timestamp more than five minutes off) nor passed off as another message
(the receiver acts on each id once). Also ``Content-Type: application/json``,
``Idempotency-Key: <nudge id>``, ``X-Engagement-Channel: <email|sms|app>`` and
``User-Agent: engagement-stream``.

2xx means accepted. 5xx, 408, 425, 429, timeouts and connection errors are retried, up to
``attempts`` in all, with exponential backoff and jitter (a ``Retry-After`` on 429/503 is
honoured, capped at ``max_backoff_s``); other 4xx and 3xx (redirects are not followed) are
final. Each attempt has its own ``timeout_s`` and its own timestamp and signatures. A circuit
breaker is consulted before the first attempt: while it is open nothing is sent and the result
is ``circuit_open``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from sinks.channels.breaker import CircuitBreaker
from sinks.channels.outbound import CIRCUIT_OPEN, DeliveryResult, Outbound, backoff_delay

__all__ = [
    "DeliveryResult",
    "WebhookChannel",
    "refusal",
    "secret_keys",
    "sign",
    "verify",
]

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
CHANNEL_HEADER = "X-Engagement-Channel"
USER_AGENT = "engagement-stream"
SECRET_PREFIX = "whsec_"  # noqa: S105  # the marker of the form, not a secret
# How far a request's signed time may be from the receiver's clock (the Standard Webhooks
# libraries use five minutes): long enough for clock drift and a slow network, short enough
# that a captured request is useless soon after.
TOLERANCE_S = 300.0

_RETRYABLE = frozenset({408, 425, 429})
_RETRY_AFTER = frozenset({429, 503})
_MAX_TIMESTAMP_DIGITS = 12  # Unix seconds until the year 33658: anything longer is not a time


# -- signatures (Standard Webhooks, "v1": symmetric HMAC-SHA256) ---------------------------


def secret_key(secret: str) -> bytes:
    """The HMAC key of one secret: ``whsec_<base64>`` (the Standard Webhooks form) is decoded;
    any other text is used as its UTF-8 bytes (e.g. the output of ``openssl rand -hex 32``)."""
    if secret.startswith(SECRET_PREFIX):
        text = secret[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            msg = "a secret that starts with whsec_ must be base64 after the prefix"
            raise ValueError(msg) from None
    else:
        key = secret.encode()
    if not key:
        msg = "a webhook secret must not be empty"
        raise ValueError(msg)
    return key


def secret_keys(secrets: str | Iterable[str]) -> list[bytes]:
    """The keys of a secret setting: one secret, or several separated by white space (two while
    a secret is rotated). Secrets never contain white space, in either form."""
    texts = [secrets] if isinstance(secrets, str) else list(secrets)
    return [secret_key(part) for text in texts for part in text.split()]


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign(secrets: str | Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``
    for each secret, space-separated."""
    keys = secret_keys(secrets)
    return " ".join(_signature(key, msg_id, str(timestamp), body) for key in keys)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (aiohttp's and http.server's headers already are)."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def refusal(
    secrets: str | Iterable[str],
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> str | None:
    """Why a request is not a fresh delivery signed with one of ``secrets``, in a sentence; None
    when it is. Checks what a receiver must check (docs/channels.md): the three headers, a
    timestamp within ``tolerance_s`` of ``now``, and a matching signature (constant-time).
    Whether the id was seen before is the receiver's own record."""
    msg_id = _header(headers, ID_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    offered = _header(headers, SIGNATURE_HEADER)
    if not (msg_id and stamp and offered):
        return f"the {ID_HEADER}, {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required"
    if not msg_id.isascii():  # ours are; and a header's stray bytes must not crash the check
        return f"{ID_HEADER} must be ASCII"
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_TIMESTAMP_DIGITS):
        return f"{TIMESTAMP_HEADER} must be a whole number of seconds since 1970"
    age = (time.time() if now is None else now) - int(stamp)
    if age > tolerance_s:
        return (
            f"{TIMESTAMP_HEADER} is {age:.0f}s old, more than the {tolerance_s:.0f}s allowed: "
            "a replayed or long-delayed request"
        )
    if age < -tolerance_s:
        return f"{TIMESTAMP_HEADER} is {-age:.0f}s in the future, more than {tolerance_s:.0f}s"
    candidates = [s.encode() for s in offered.split() if s.isascii()]
    for key in secret_keys(secrets):
        expected = _signature(key, msg_id, stamp, body).encode()
        # Every candidate is compared, so the time taken does not say which one matched.
        matched = [hmac.compare_digest(expected, c) for c in candidates]
        if any(matched):
            return None
    return f"no {SIGNATURE_HEADER} matches this id, timestamp and body under the shared secret"


def verify(
    secrets: str | Iterable[str],
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> bool:
    """Is the request signed with one of ``secrets``, and fresh? See :func:`refusal`."""
    return refusal(secrets, body, headers, now=now, tolerance_s=tolerance_s) is None


# -- delivery ------------------------------------------------------------------------------


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``secret``: one secret, or two separated by a space while rotating (each signs)."""
        keys = secret_keys(secret)
        if not keys:
            msg = "the webhook secret must not be empty: the receiver could not verify anything"
            raise ValueError(msg)
        if attempts < 1:
            msg = f"attempts must be at least 1, got {attempts}"
            raise ValueError(msg)
        self.url = url
        self._keys = keys
        self._clock = clock
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
        """One attempt's headers: signed at this attempt's time, so that a retry after a long
        wait is still fresh, while the id stays the nudge id on every attempt."""
        stamp = str(int(self._clock()))
        signatures = " ".join(_signature(key, out.nudge_id, stamp, body) for key in self._keys)
        return {
            "Content-Type": "application/json",
            "Idempotency-Key": out.nudge_id,
            ID_HEADER: out.nudge_id,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: signatures,
            CHANNEL_HEADER: out.channel.value,
            "User-Agent": USER_AGENT,
        }

    async def _attempt_all(self, out: Outbound) -> tuple[DeliveryResult, bool]:
        """The result, and whether it failed on a retryable error (i.e. the service looks down)."""
        body = json.dumps(out.payload, separators=(",", ":"), sort_keys=True).encode()
        reason = "not_attempted"
        status: int | None = None
        for attempt in range(1, self.attempts + 1):
            server_wait: float | None = None
            try:
                session = await self._client()
                async with session.post(
                    self.url, data=body, headers=self._headers(out, body), allow_redirects=False
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
