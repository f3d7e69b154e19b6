"""What the notifier hands the notification service, and the signal to hold a delivery back."""

from __future__ import annotations

from typing import Any, Final

from schemas.interventions import RenderedMessage
from schemas.nudges import Channel, Nudge

MIN_BREAKER_WAIT_S: Final = 0.2


class HoldOn(Exception):  # a signal to wait, not an error
    """A transport's circuit breaker is open: nothing was sent; decide again after a wait."""

    def __init__(self, channel: str, transport: str, wait_s: float) -> None:
        super().__init__(f"the {transport} transport's circuit breaker is open")
        self.channel = channel
        self.wait_s = max(wait_s, MIN_BREAKER_WAIT_S)


def payload(
    nudge: Nudge, student_id: str, channel: Channel, message: RenderedMessage
) -> dict[str, Any]:
    """The document the notification service receives (webhook body, Kafka value)."""
    return {
        "schema_version": 1,
        "nudge_id": nudge.nudge_id,
        "student_id": student_id,
        "channel": channel.value,
        "tier": nudge.tier.value,
        "rule_id": nudge.rule_id,
        "rule_version": nudge.rule_version,
        "message": {"subject": message.subject, "body": message.body},
        "created_at": nudge.created_at.isoformat(),
    }
