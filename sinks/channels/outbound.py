"""What every delivery channel shares: the message going out, how a delivery ended, the protocol.

A transport never raises for a delivery failure; it returns a :class:`DeliveryResult`. A
result with reason ``circuit_open`` was not attempted: the caller waits
``transport.breaker.retry_in_s()`` and tries again instead of recording a failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from schemas.interventions import RenderedMessage
from schemas.nudges import Channel
from sinks.channels.breaker import CircuitBreaker

CIRCUIT_OPEN = "circuit_open"


@dataclass(frozen=True)
class Outbound:
    """One message for one student on one channel."""

    nudge_id: str  # also the idempotency key
    channel: Channel
    student_id: str  # the real id: re-identified only at this point
    address: str | None  # e-mail address for SMTP, else None
    message: RenderedMessage
    payload: dict[str, Any]  # the JSON document the notifier built (webhook body / Kafka value)


@dataclass(frozen=True)
class DeliveryResult:
    """How a delivery ended; ``reason`` is a short machine-readable word such as ``http_503``."""

    ok: bool
    reason: str
    attempts: int
    status: int | None = None


class Transport(Protocol):
    """A delivery channel: webhook, SMTP or Kafka."""

    name: str
    breaker: CircuitBreaker

    async def deliver(self, out: Outbound) -> DeliveryResult:
        """Deliver ``out`` with bounded retries; never raise for a delivery failure."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): "equal jitter".

    The step doubles per attempt up to ``cap_s``; the wait is drawn uniformly from
    [step/2, step], so it never exceeds the cap and many senders do not retry in lockstep.
    """
    step = min(base_s * 2 ** min(attempt - 1, 60), cap_s)  # bounded exponent: no overflow
    return rng.uniform(step / 2, step)
