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

from agents.context import Context
from agents.model.pseudonym import Pseudonymiser
from agents.store.reference import ReferenceStore
from agents.store.retry import REDIS_ERRORS, until_redis_answers
from agents.store.state import EngagementStore
from schemas.common import Reason
from schemas.deadletter import DeadLetter
from schemas.interventions import (
    Outcome,
    RenderedMessage,
    Stage,
)
from schemas.nudges import Channel, Nudge, Route, Tier
from schemas.preferences import PreferenceChange, Preferences
from schemas.quiet import QuietHours
from sinks.channels.outbound import CIRCUIT_OPEN, Outbound, Transport
from sinks.messages import MessageTemplates
from sinks.producer import ProduceError
from sinks.stores.cooldown import PromptCooldown
from sinks.stores.deferred import DeferredPrompts
from sinks.stores.interventions import InterventionLog, new_record
from sinks.stores.preferences import PreferenceStore
from sinks.stores.review import ReviewQueue

log = logging.getLogger("engagement.notifier")

T = TypeVar("T")
DEFERRED_PER_TICK: Final = 10
MIN_BREAKER_WAIT_S: Final = 0.2


def utc_now() -> datetime:
    """The wall clock, as an aware UTC datetime."""
    return datetime.now(UTC)


class HoldOn(Exception):  # a signal to wait, not an error
    """A transport's circuit breaker is open: nothing was sent; decide again after a wait."""

    def __init__(self, channel: str, transport: str, wait_s: float) -> None:
        super().__init__(f"the {transport} transport's circuit breaker is open")
        self.channel = channel
        self.wait_s = max(wait_s, MIN_BREAKER_WAIT_S)


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
        return await until_redis_answers(
            stage,
            step,
            waits=self.metrics.redis_waits,
            first_delay_s=self.ctx.settings.redis_retry_s,
            max_delay_s=5.0,
        )

    # -- nudges ------------------------------------------------------------------------------

    async def handle(self, message: Any) -> None:
        """Decide one nudge message."""
        await self.handle_many([message])

    async def handle_many(self, messages: Sequence[Any]) -> None:
        """Decide a batch of nudges, up to ``notifier_concurrency`` at a time: each nudge is
        independent (its own id, record and idempotency key), and most of a decision's time
        is spent waiting for Redis and the notification service. A nudge that appears twice
        in the batch is decided once."""
        nudges: dict[str, tuple[Nudge, Any]] = {}
        for message in messages:
            try:
                nudge = Nudge.model_validate_json(message.value)
            except ValidationError as exc:
                await self._refuse(message, f"not a valid nudge: {exc.errors()[0]['msg']}")
                continue
            if nudge.nudge_id in nudges:
                self.metrics.duplicates.inc()
                continue
            nudges[nudge.nudge_id] = (nudge, message)
        limit = asyncio.Semaphore(self.ctx.settings.notifier_concurrency)

        async def one(nudge: Nudge, message: Any) -> None:
            async with limit:
                await self._decide_until_done(nudge, message)

        await asyncio.gather(*(one(n, m) for n, m in nudges.values()))

    async def _decide_until_done(self, nudge: Nudge, message: Any) -> None:
        """Decide one nudge; wait (never drop) while Redis cannot be read or the transport's
        circuit breaker is open, then decide again from the start: preferences and quiet
        hours are read afresh after every wait."""
        while True:
            try:
                await self._patiently("notify", partial(self.decide, nudge))
                return
            except HoldOn as hold:
                self.metrics.deliveries.labels(hold.channel, "circuit_open").inc()
                log.warning(
                    "nudge %s held: %s; retrying in %.1fs", nudge.nudge_id, hold, hold.wait_s
                )
                await asyncio.sleep(hold.wait_s)
            except Exception as exc:  # one bad nudge must not stop the agent
                log.exception(
                    "nudge %s could not be decided",
                    nudge.nudge_id,
                    extra={"nudge_id": nudge.nudge_id},
                )
                detail = f"could not be decided: {exc}"
                await self._refuse(message, detail, Reason.PROCESSING_ERROR)
                return

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
        if status == "sending":
            await self._resume(nudge, preferences, Stage.NOTIFIER, waited_s)
            return
        channel = self._channel(nudge, preferences)
        if channel is None:
            await self._opted_out(nudge, Stage.NOTIFIER, waited_s)
            return
        now = self.clock()
        due = await self.deferred.due(nudge.nudge_id)  # deferred before its record was lost?
        if due is None and self.quiet is not None and self.quiet.contains(now):
            due = self.quiet.ends_after(now)
            await self.deferred.add(nudge, due)
        if due is not None:
            local = due.astimezone(self.ctx.settings.zone)
            hours = f" ({self.quiet.describe()})" if self.quiet is not None else ""
            await self._record(
                nudge,
                Outcome.DEFERRED,
                "quiet_hours",
                f"Decided during quiet hours{hours}; it will be sent after "
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
        stage = Stage.DEFERRED_DELIVERY
        status = await self.log.status(nudge.nudge_id, stage)
        if status != "done":
            preferences = await self.preferences.get(nudge.pseudonym)
            channel = self._channel(nudge, preferences)
            now = self.clock()
            if status == "sending":
                await self._resume(nudge, preferences, stage, waited_s)
            elif channel is None:
                await self._opted_out(nudge, stage, waited_s)
            elif self.quiet is not None and self.quiet.contains(now):
                await self.deferred.add(nudge, self.quiet.ends_after(now))  # not yet: wait on
                return
            else:
                await self._deliver(nudge, channel, stage, waited_s)
        await self.deferred.finish(nudge.nudge_id)

    async def _resume(
        self, nudge: Nudge, preferences: Preferences, stage: Stage, waited_s: float
    ) -> None:
        """Finish a delivery a stopped notifier had begun: on the same channel and with the
        same idempotency key (so the service sees a repeat), unless the student has opted
        out of that channel since."""
        channel = await self.log.sending_channel(nudge.nudge_id, stage)
        if channel is None or channel not in self.transports or not preferences.allows(channel):
            await self._opted_out(
                nudge,
                stage,
                waited_s,
                note=" A delivery had been started before the notifier stopped; it was not "
                "attempted again.",
            )
            return
        await self._deliver(nudge, channel, stage, waited_s)

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

    async def _opted_out(self, nudge: Nudge, stage: Stage, waited_s: float, note: str = "") -> None:
        await self.cooldown.release(nudge.pseudonym, nudge.nudge_id)  # claimed before a crash?
        usable = [c.value for c in nudge.channels if c in self.transports]
        await self._record(
            nudge,
            Outcome.SUPPRESSED,
            "opted_out",
            "Not sent: the student has opted out of automated prompts on "
            + ", ".join(usable)
            + "."
            + note,
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
        transport = self.transports[channel]
        if transport.breaker.state == "open":  # nothing sent, nothing claimed: wait, decide again
            raise HoldOn(channel.value, transport.name, transport.breaker.retry_in_s())
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
        await self.log.mark_sending(nudge.nudge_id, stage, channel)
        started = time.perf_counter()
        result = await transport.deliver(out)
        if result.reason == CIRCUIT_OPEN:  # another delivery holds the breaker's one trial
            await self.log.clear_sending(nudge.nudge_id, stage)
            await self.cooldown.release(nudge.pseudonym, nudge.nudge_id)
            raise HoldOn(channel.value, transport.name, transport.breaker.retry_in_s())
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
        record = new_record(
            nudge,
            nudge.explanation.summary,
            stage,
            outcome,
            reason,
            detail,
            self.clock(),
            channels=channels,
            attempts=attempts,
            message=message,
            waited_s=round(waited_s, 3),
            deferred_until=deferred_until,
            queue=queue,
        )
        if await self.log.append(record):
            self.metrics.interventions.labels(outcome.value).inc()
        log.info(
            "nudge %s: %s (%s) at %s",
            nudge.nudge_id,
            outcome.value,
            reason,
            stage.value,
            extra={"nudge_id": nudge.nudge_id, "record_id": record.record_id, "stage": stage.value},
        )

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
            settings = self.ctx.settings
            # Long enough for every prompt taken to fail all its attempts, so that no other
            # notifier takes one while this one is still delivering it.
            lease_s = DEFERRED_PER_TICK * (
                settings.webhook_attempts * settings.webhook_timeout_s + 10
            )
            due = await self.deferred.take_due(
                self.clock(), lease_s=lease_s, limit=DEFERRED_PER_TICK
            )
            for nudge in due:
                try:
                    await self._patiently("deferred", partial(self.deliver_deferred, nudge))
                except HoldOn as hold:  # the rest stay deferred; their lease runs out
                    log.warning("deferred prompts held: %s", hold)
                    break
            for record in await self.review.escalate_due(self.clock()):
                self.metrics.interventions.labels(record.outcome.value).inc()
            await self.log.flush()
            self.metrics.deferred_waiting.set(await self.deferred.waiting())
            self.metrics.review_open.set(await self.review.waiting())
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

    async def _refuse(
        self, message: Any, detail: str, reason: Reason = Reason.INVALID_VALUE
    ) -> None:
        letter = DeadLetter(
            reason=reason,
            detail=detail,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            received_at=utc_now(),
            payload_excerpt="",
        )
        self.metrics.dead_lettered.labels(letter.reason.value).inc()
        try:
            await (await self.dead_topic.send(value=letter.model_dump_json().encode(), force=True))
        except Exception:  # the agent must carry on; the counter and the log keep the reason
            log.exception("could not dead-letter %s:%s", message.topic, message.offset)
