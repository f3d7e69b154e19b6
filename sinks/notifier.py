"""The notifier: from a nudge to exactly one recorded decision per stage.

Order for every nudge: already decided? → shadow or suppressed by the detector? → needs a
human (invitation, referral: the review queue)? → preferences, read at send time (fail
closed: if Redis cannot be read, nothing is sent and the nudge waits; the wait is recorded)
→ a channel the student has not opted out of → quiet hours (the prompt is deferred, not
dropped) → recipient → deliver → record.

Deliveries are at-least-once towards the notification service and exactly-once as the
student sees them: a ``sending`` mark is set before each delivery, and a notifier that dies
before recording the result delivers again with the same idempotency key (the nudge id),
which the service acknowledges as a repeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, TypeVar

from pydantic import ValidationError
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agents.reference import ReferenceStore
from agents.state import EngagementStore
from schemas.common import Reason
from schemas.deadletter import DeadLetter
from schemas.interventions import (
    InterventionRecord,
    Outcome,
    RenderedMessage,
    Stage,
)
from schemas.nudges import Channel, Nudge, Route, Tier
from schemas.preferences import PreferenceChange, Preferences
from sinks.cooldown import PromptCooldown
from sinks.deferred import DeferredPrompts
from sinks.interventions import InterventionLog, record_id
from sinks.messages import MessageTemplates
from sinks.outbound import Outbound, Transport
from sinks.preferences import PreferenceStore
from sinks.producer import ProduceError
from sinks.quiet import QuietHours
from sinks.review import ReviewQueue
from stream.app import Context
from stream.pseudonym import Pseudonymiser

log = logging.getLogger("engagement.notifier")

T = TypeVar("T")
REDIS_ERRORS: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ConnectionError,
    TimeoutError,
    OSError,
)
DEFERRED_LEASE_S: Final = 120.0
MIN_BREAKER_WAIT_S: Final = 0.2


def utc_now() -> datetime:
    """The wall clock, as an aware UTC datetime."""
    return datetime.now(UTC)


class Notifier:
    """Turns each nudge into its recorded decisions."""

    def __init__(  # the notifier's collaborators, each a separate concern
        self,
        ctx: Context,
        *,
        preferences: PreferenceStore,
        interventions: InterventionLog,
        identities: EngagementStore,
        references: ReferenceStore,
        review: ReviewQueue,
        deferred: DeferredPrompts,
        transports: Mapping[Channel, Transport],
        messages: MessageTemplates,
        quiet: QuietHours | None,
        cooldown: PromptCooldown,
        dead_topic: Any,
        recipient: str = "{student_id}@student.example.ac.uk",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.ctx = ctx
        self.preferences = preferences
        self.log = interventions
        self.identities = identities
        self.references = references
        self.review = review
        self.deferred = deferred
        self.transports = transports
        self.messages = messages
        self.quiet = quiet
        self.cooldown = cooldown
        self.dead_topic = dead_topic
        self.recipient = recipient
        self.clock = clock
        self.metrics = ctx.metrics

    # -- waiting for Redis -------------------------------------------------------------------

    async def _patiently(self, stage: str, step: Callable[[float], Awaitable[T]]) -> T:
        """Run ``step(waited_s)`` until Redis answers; ``waited_s`` is how long it has waited,
        so the decision can record it. Nothing is sent while Redis cannot be read."""
        delay = self.ctx.settings.redis_retry_s
        first_failure: float | None = None
        while True:
            waited = 0.0 if first_failure is None else time.monotonic() - first_failure
            try:
                return await step(waited)
            except REDIS_ERRORS as exc:
                if first_failure is None:
                    first_failure = time.monotonic()
                self.metrics.redis_waits.labels(stage).inc()
                log.warning("redis unavailable in %s (%s); retrying in %.1fs", stage, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- nudges ------------------------------------------------------------------------------

    async def handle(self, message: Any) -> None:
        """Decide one nudge message; waits (never drops) while Redis is unavailable."""
        try:
            nudge = Nudge.model_validate_json(message.value)
        except ValidationError as exc:
            await self._refuse(message, f"not a valid nudge: {exc.errors()[0]['msg']}")
            return
        await self._patiently("notify", lambda waited: self.decide(nudge, waited))

    async def handle_many(self, messages: Sequence[Any]) -> None:
        """Decide a batch of nudges, up to ``notifier_concurrency`` at a time: each nudge is
        independent (its own id, record and idempotency key), and most of a decision's time
        is spent waiting for Redis and the notification service."""
        limit = asyncio.Semaphore(self.ctx.settings.notifier_concurrency)

        async def one(message: Any) -> None:
            async with limit:
                await self.handle(message)

        await asyncio.gather(*(one(m) for m in messages))

    async def decide(self, nudge: Nudge, waited_s: float = 0.0) -> None:
        """The notifier's decision; safe to repeat after a failure at any point."""
        status = await self.log.status(nudge.nudge_id)
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
                message=self._would_send(nudge),
                waited_s=waited_s,
            )
            return
        if nudge.suppressed is not None:
            why = " ".join(nudge.explanation.notes) or f"Not sent ({nudge.suppressed})."
            await self._record(nudge, Outcome.SUPPRESSED, nudge.suppressed, why, waited_s=waited_s)
            return
        if nudge.tier is not Tier.PROMPT:
            await self._queue(nudge, waited_s)
            return
        preferences = await self.preferences.get(nudge.pseudonym)
        channel = self._channel(nudge, preferences)
        if channel is None:
            await self._opted_out(nudge, Stage.NOTIFIER, waited_s)
            return
        now = self.clock()
        # A delivery already under way ("sending") is finished, never deferred half-way.
        if status is None and self.quiet is not None and self.quiet.contains(now):
            due = self.quiet.ends_after(now)
            await self.deferred.add(nudge, due)
            local = due.astimezone(self.quiet.zone)
            await self._record(
                nudge,
                Outcome.DEFERRED,
                "quiet_hours",
                f"Decided during quiet hours ({self.quiet.describe()}); it will be sent after "
                f"{local:%H:%M on %d %b}, if the student has not opted out by then.",
                channels=(channel,),
                message=self.messages.render(nudge, channel),
                deferred_until=due,
                waited_s=waited_s,
            )
            return
        await self._deliver(nudge, channel, Stage.NOTIFIER, waited_s)

    async def deliver_deferred(self, nudge: Nudge, waited_s: float = 0.0) -> None:
        """A prompt whose quiet hours are over: check preferences again, then deliver."""
        status = await self.log.status(nudge.nudge_id, Stage.DEFERRED_DELIVERY)
        if status != "done":
            preferences = await self.preferences.get(nudge.pseudonym)
            channel = self._channel(nudge, preferences)
            now = self.clock()
            if channel is None:
                await self._opted_out(nudge, Stage.DEFERRED_DELIVERY, waited_s)
            elif status is None and self.quiet is not None and self.quiet.contains(now):
                await self.deferred.add(nudge, self.quiet.ends_after(now))  # not yet: wait on
                return
            else:
                await self._deliver(nudge, channel, Stage.DEFERRED_DELIVERY, waited_s)
        await self.deferred.finish(nudge.nudge_id)

    async def _deliver_deferred_to(self, nudge: Nudge, waited_s: float) -> None:
        await self.deliver_deferred(nudge, waited_s)

    def _channel(self, nudge: Nudge, preferences: Preferences) -> Channel | None:
        """The rule's first channel that is configured and that the student has not opted
        out of: one message per nudge, never the same prompt on every channel."""
        for channel in nudge.channels:
            if channel in self.transports and preferences.allows(channel):
                return channel
        return None

    def _would_send(self, nudge: Nudge) -> RenderedMessage | None:
        if nudge.tier is not Tier.PROMPT:
            return None
        for channel in nudge.channels:
            if channel in self.transports:
                return self.messages.render(nudge, channel)
        return None

    async def _opted_out(self, nudge: Nudge, stage: Stage, waited_s: float) -> None:
        await self._record(
            nudge,
            Outcome.SUPPRESSED,
            "opted_out",
            "Not sent: the student has opted out of automated prompts on "
            + ", ".join(c.value for c in nudge.channels)
            + ".",
            stage=stage,
            waited_s=waited_s,
        )

    async def _queue(self, nudge: Nudge, waited_s: float) -> None:
        tutor: str | None = None
        if nudge.route is Route.PERSONAL_TUTOR:
            enrolment = (await self.references.enrolments([nudge.pseudonym])).get(nudge.pseudonym)
            tutor = enrolment.personal_tutor if enrolment is not None else None
        queue = self.review.queue_for(nudge.route, tutor)
        await self.review.enqueue(nudge, queue, self.clock())
        who = (
            f"personal tutor {tutor}"
            if tutor
            else f"{nudge.route.value.replace('_', ' ')} team ({queue})"
        )
        await self._record(
            nudge,
            Outcome.QUEUED_FOR_REVIEW,
            "needs_human",
            f"Queued for the {who} to decide whether and how to get in touch; nothing is "
            "sent to the student automatically.",
            queue=queue,
            waited_s=waited_s,
        )

    async def _deliver(self, nudge: Nudge, channel: Channel, stage: Stage, waited_s: float) -> None:
        student_id = await self.identities.identity(nudge.pseudonym)
        if student_id is None:
            await self._record(
                nudge,
                Outcome.FAILED,
                "unknown_recipient",
                "Not sent: the student's contact identity has expired or was erased.",
                stage=stage,
                waited_s=waited_s,
            )
            return
        held_since = await self.cooldown.claim(nudge.pseudonym, nudge.nudge_id, self.clock())
        if held_since is not None:
            hours = self.cooldown.ms / 3_600_000
            await self._record(
                nudge,
                Outcome.SUPPRESSED,
                "cooldown",
                f"Not sent: the student was sent another automated message at "
                f"{held_since:%H:%M on %d %b %Y} (UTC), and we send at most one every "
                f"{hours:g} hours.",
                stage=stage,
                waited_s=waited_s,
            )
            return
        rendering = self.messages.render_checked(nudge, channel)
        if rendering.fallback is not None:
            log.warning("message template: %s", rendering.fallback)
        message = rendering.message
        transport = self.transports[channel]
        out = Outbound(
            nudge_id=nudge.nudge_id,
            channel=channel,
            student_id=student_id,
            address=self.recipient.format(student_id=student_id)
            if transport.name == "smtp"
            else None,
            message=message,
            payload=self._payload(nudge, student_id, channel, message),
        )
        await self.log.mark_sending(nudge.nudge_id, stage)
        started = time.perf_counter()
        result = await transport.deliver(out)
        while result.reason == "circuit_open":
            # The service is failing: hold this prompt (and the ones behind it) until the
            # breaker lets a trial through, rather than failing every prompt in the outage.
            wait = max(transport.breaker.retry_in_s(), MIN_BREAKER_WAIT_S)
            self.metrics.deliveries.labels(channel.value, "circuit_open").inc()
            log.warning("%s transport circuit open; retrying in %.1fs", transport.name, wait)
            await asyncio.sleep(wait)
            result = await transport.deliver(out)
        self.metrics.delivery_seconds.labels(transport.name).observe(time.perf_counter() - started)
        self.metrics.deliveries.labels(channel.value, "ok" if result.ok else "failed").inc()
        if result.ok:
            await self._record(
                nudge,
                Outcome.DELIVERED,
                "delivered",
                f"Sent by {channel.value} through the notification service ({transport.name}).",
                stage=stage,
                channels=(channel,),
                attempts=result.attempts,
                message=message,
                waited_s=waited_s,
            )
        else:
            await self.cooldown.release(nudge.pseudonym, nudge.nudge_id)
            await self._record(
                nudge,
                Outcome.FAILED,
                result.reason,
                f"Not sent by {channel.value}: delivery failed after {result.attempts} "
                f"attempts ({result.reason}).",
                stage=stage,
                channels=(channel,),
                attempts=result.attempts,
                message=message,
                waited_s=waited_s,
            )

    @staticmethod
    def _payload(
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

    async def _record(  # every field of the record is a keyword
        self,
        nudge: Nudge,
        outcome: Outcome,
        reason: str,
        detail: str,
        *,
        stage: Stage = Stage.NOTIFIER,
        channels: tuple[Channel, ...] = (),
        attempts: int = 0,
        message: RenderedMessage | None = None,
        waited_s: float = 0.0,
        deferred_until: datetime | None = None,
        queue: str | None = None,
    ) -> None:
        if waited_s >= 1:
            detail += (
                f" It waited {waited_s:.0f} s for the preference store, which could not be "
                "read; nothing was sent meanwhile."
            )
        record = InterventionRecord(
            record_id=record_id(nudge.nudge_id, stage),
            nudge_id=nudge.nudge_id,
            pseudonym=nudge.pseudonym,
            rule_id=nudge.rule_id,
            rule_version=nudge.rule_version,
            tier=nudge.tier,
            route=nudge.route,
            stage=stage,
            outcome=outcome,
            reason=reason,
            detail=detail,
            channels=channels,
            attempts=attempts,
            decided_at=self.clock(),
            summary=nudge.explanation.summary,
            message=message,
            waited_s=round(waited_s, 3),
            deferred_until=deferred_until,
            queue=queue,
        )
        if await self.log.append(record):
            self.metrics.interventions.labels(outcome.value).inc()
        log.info("nudge %s: %s (%s) at %s", nudge.nudge_id, outcome.value, reason, stage.value)

    async def publish_records(self) -> None:
        """Publish the records of the batch just decided; if the broker or Redis cannot take
        them now they stay in the outbox for the timer."""
        try:
            await self.log.flush()
        except (*REDIS_ERRORS, ProduceError) as exc:
            log.warning("intervention records wait in the outbox (%s)", exc)

    # -- the timer: outbox, due prompts, escalations ---------------------------------------------

    async def tick(self) -> None:
        """Publish waiting records, deliver prompts whose quiet hours are over, escalate
        review items nobody has acted on. Redis being down only postpones this."""
        try:
            await self.log.flush()
            for nudge in await self.deferred.take_due(self.clock(), lease_s=DEFERRED_LEASE_S):
                await self._patiently("deferred", partial(self._deliver_deferred_to, nudge))
            for record in await self.review.escalate_due(self.clock()):
                self.metrics.interventions.labels(record.outcome.value).inc()
            await self.log.flush()
            self.metrics.deferred_waiting.set(await self.deferred.waiting())
            self.metrics.outbox_waiting.set(await self.log.pending())
        except (*REDIS_ERRORS, ProduceError) as exc:
            log.warning("notifier timer postponed (%s)", exc)

    # -- preference changes ------------------------------------------------------------------

    async def change_preferences(self, message: Any, pseudonymise: Pseudonymiser) -> None:
        """Apply one change from the preferences topic; a change it cannot read is
        dead-lettered with the reason."""
        try:
            change = PreferenceChange.model_validate_json(message.value)
        except ValidationError as exc:
            await self._refuse(message, f"not a valid preference change: {exc.errors()[0]['msg']}")
            return
        pseudonym = pseudonymise(change.student_id)
        await self._patiently(
            "preferences", lambda _waited: self.preferences.apply(pseudonym, change)
        )
        self.metrics.preference_changes.inc()

    async def _refuse(self, message: Any, detail: str) -> None:
        letter = DeadLetter(
            reason=Reason.INVALID_VALUE,
            detail=detail,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            received_at=utc_now(),
            payload_excerpt="",
        )
        await (await self.dead_topic.send(value=letter.model_dump_json().encode(), force=True))
        self.metrics.dead_lettered.labels(letter.reason.value).inc()
