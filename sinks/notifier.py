"""The notifier: from a nudge to a delivered, suppressed or failed decision, logged once.

Order for every nudge: already decided? → needs a human? → preferences (fail closed: if they
cannot be read, nothing is sent and the nudge waits) → recipient → deliver → record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from agents.state import EngagementStore
from schemas.common import Reason
from schemas.deadletter import DeadLetter
from schemas.interventions import InterventionRecord, Outcome
from schemas.nudges import Channel, Nudge, Tier
from sinks.interventions import InterventionLog, record_id
from sinks.preferences import PreferenceStore
from sinks.webhook import WebhookChannel
from stream.app import Context

log = logging.getLogger("engagement.notifier")

NOTIFIER_STAGE = "notifier"


def render_message(nudge: Nudge) -> dict[str, str]:
    """The student-facing text: what we noticed, why it matters, help, data access, opting out."""
    body = (
        f"{nudge.explanation.summary}\n\n"
        "This is an automated message from your university's learning-analytics service. "
        "It is not part of any assessment and does not affect your marks.\n"
        "You can see all the data behind this message, and ask for anything wrong to be "
        "corrected, in your student account.\n"
        "If you would rather not receive automated messages like this one, you can turn them "
        "off there at any time; your personal tutor remains available either way."
    )
    return {"subject": "Checking in about your studies", "body": body}


class Notifier:
    """Turns each nudge into exactly one intervention record."""

    def __init__(
        self,
        ctx: Context,
        *,
        preferences: PreferenceStore,
        interventions: InterventionLog,
        identities: EngagementStore,
        webhook: WebhookChannel,
        dead_topic: Any,
    ) -> None:
        self.ctx = ctx
        self.preferences = preferences
        self.interventions = interventions
        self.identities = identities
        self.webhook = webhook
        self.dead_topic = dead_topic
        self.metrics = ctx.metrics

    async def handle(self, message: Any) -> None:
        """Decide one nudge message; waits (never drops) while Redis is unavailable."""
        try:
            nudge = Nudge.model_validate_json(message.value)
        except ValidationError as exc:
            await self._refuse(message, f"not a valid nudge: {exc.errors()[0]['msg']}")
            return

        async def decide() -> None:
            await self.decide(nudge)

        await self.ctx.until_redis_answers("notify", decide)

    async def decide(self, nudge: Nudge) -> None:
        """The decision itself; safe to repeat after a failure at any point."""
        status = await self.interventions.status(nudge.nudge_id)
        if status == "done":
            self.metrics.duplicates.inc()
            return
        if nudge.mode == "shadow":
            await self._record(
                nudge,
                Outcome.SHADOW,
                "shadow_rule",
                "Shadow rule: recorded so staff can judge the rule before it goes live; "
                "nothing was sent and nobody was asked to act.",
            )
            return
        if nudge.suppressed is not None:
            why = " ".join(nudge.explanation.notes) or f"Not sent ({nudge.suppressed})."
            await self._record(nudge, Outcome.SUPPRESSED, nudge.suppressed, why)
            return
        if nudge.tier is not Tier.PROMPT:
            who = nudge.route.value.replace("_", " ")
            await self._record(
                nudge,
                Outcome.QUEUED_FOR_REVIEW,
                "needs_human",
                f"Queued for the {who} to decide whether and how to get in touch.",
            )
            return
        preferences = await self.preferences.get(nudge.pseudonym)
        allowed = tuple(c for c in nudge.channels if preferences.allows(c))
        if not allowed:
            await self._record(
                nudge,
                Outcome.SUPPRESSED,
                "opted_out",
                "Not sent: the student has opted out of automated prompts on "
                + ", ".join(c.value for c in nudge.channels)
                + ".",
            )
            return
        student_id = await self.identities.identity(nudge.pseudonym)
        if student_id is None:
            await self._record(
                nudge,
                Outcome.FAILED,
                "unknown_recipient",
                "Not sent: the student's contact identity has expired or was erased.",
            )
            return
        await self.interventions.mark_sending(nudge.nudge_id)
        result = await self.webhook.deliver(
            self._payload(nudge, student_id, allowed), nudge.nudge_id
        )
        for channel in allowed:
            self.metrics.deliveries.labels(channel.value, "ok" if result.ok else "failed").inc()
        if result.ok:
            detail = (
                f"Delivered to the notification service for {', '.join(c.value for c in allowed)}."
            )
            await self._record(
                nudge, Outcome.DELIVERED, "delivered", detail, allowed, result.attempts
            )
        else:
            detail = f"Delivery failed after {result.attempts} attempts ({result.reason})."
            await self._record(
                nudge, Outcome.FAILED, result.reason, detail, allowed, result.attempts
            )

    def _payload(
        self, nudge: Nudge, student_id: str, channels: Sequence[Channel]
    ) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "nudge_id": nudge.nudge_id,
            "student_id": student_id,
            "channels": [c.value for c in channels],
            "tier": nudge.tier.value,
            "rule_id": nudge.rule_id,
            "rule_version": nudge.rule_version,
            "message": render_message(nudge),
            "explanation": nudge.explanation.model_dump(mode="json"),
            "created_at": nudge.created_at.isoformat(),
        }

    async def _record(
        self,
        nudge: Nudge,
        outcome: Outcome,
        reason: str,
        detail: str,
        channels: tuple[Channel, ...] = (),
        attempts: int = 0,
    ) -> None:
        record = InterventionRecord(
            record_id=record_id(nudge.nudge_id, NOTIFIER_STAGE),
            nudge_id=nudge.nudge_id,
            pseudonym=nudge.pseudonym,
            rule_id=nudge.rule_id,
            rule_version=nudge.rule_version,
            tier=nudge.tier,
            outcome=outcome,
            reason=reason,
            detail=detail,
            channels=channels,
            attempts=attempts,
            decided_at=datetime.now(UTC),
            summary=nudge.explanation.summary,
        )
        if await self.interventions.append(record):
            self.metrics.interventions.labels(outcome.value).inc()
        log.info("nudge %s: %s (%s)", nudge.nudge_id, outcome.value, reason)

    async def _refuse(self, message: Any, detail: str) -> None:
        letter = DeadLetter(
            reason=Reason.INVALID_VALUE,
            detail=detail,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            received_at=datetime.now(UTC),
            payload_excerpt="",
        )
        await (await self.dead_topic.send(value=letter.model_dump_json().encode(), force=True))
        self.metrics.dead_lettered.labels(letter.reason.value).inc()


def register_notifier(ctx: Context, store: EngagementStore) -> Notifier:
    """Register the notifier agent on the nudges topic."""
    settings = ctx.settings
    if not settings.webhook_url:
        from stream.errors import ConfigError  # only needed on this path

        msg = "ENGAGEMENT_WEBHOOK_URL is not set: the notifier needs the notification service URL"
        raise ConfigError(msg)
    names = settings.topics
    app = ctx.app
    nudges_topic = app.topic(names.nudges, partitions=settings.partitions)
    interventions_topic = app.topic(names.interventions, partitions=settings.partitions)
    dead_topic = app.topic(names.deadletter, partitions=settings.partitions)
    notifier = Notifier(
        ctx,
        preferences=PreferenceStore(ctx.redis, settings.key_prefix),
        interventions=InterventionLog(ctx.redis, settings.key_prefix, interventions_topic),
        identities=store,
        webhook=WebhookChannel(
            settings.webhook_url,
            timeout_s=settings.webhook_timeout_s,
            attempts=settings.webhook_attempts,
        ),
        dead_topic=dead_topic,
    )

    async def notify(stream: Any) -> None:
        async for events in stream.take_events(100, settings.batch_within_s):
            for event in events:
                await notifier.handle(event.message)

    app.agent(nudges_topic, name="notifier", concurrency=1)(notify)
    return notifier
