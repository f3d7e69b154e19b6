"""The notifier: from a nudge to exactly one recorded decision per stage.

For every nudge it reads the facts in one batched Redis read (``sinks.facts``), asks the pure
policy (``sinks.policy``, which holds the order of checks and every record's wording) and does
what it decided: record, queue for a human, defer, or deliver. The cooling-off claim and the
delivery are atomic writes, so they happen here.

Deliveries are at-least-once towards the notification service and exactly-once as the
student sees them: the attempt is recorded (a ``sending`` mark: channel and count) before it
is handed to the transport, and a notifier that dies before recording the answer leaves it
for the next one to resume, with the same idempotency key (the nudge id), which the service
acknowledges as a repeat. Repeats are bounded: only a delivery in flight when a notifier
stopped is sent again, once per stop and at most ``policy.MAX_BEGUN`` times; once the
transport has answered, Redis being away delays the record, never causes another send.
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
from schemas.interventions import RenderedMessage, Stage
from schemas.nudges import Channel, Nudge
from schemas.preferences import PreferenceChange
from schemas.quiet import QuietHours
from sinks import policy
from sinks.channels.outbound import CIRCUIT_OPEN, Outbound, Transport
from sinks.channels.producer import ProduceError
from sinks.delivery import HoldOn, payload
from sinks.facts import FactReader
from sinks.messages import MessageTemplates
from sinks.policy import Config, Decision, Defer, Deliver, Postpone, Queue, Record, Skip, Wait
from sinks.stores.cooldown import PromptCooldown
from sinks.stores.deferred import DeferredPrompts
from sinks.stores.interventions import InterventionLog, new_record
from sinks.stores.preferences import PreferenceStore
from sinks.stores.review import ReviewQueue

log = logging.getLogger("engagement.notifier")

T = TypeVar("T")
DEFERRED_PER_TICK: Final = 10


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
        self.reader = FactReader(interventions, preferences, deferred, identities, references)

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
        await self._carry_out(nudge, Stage.NOTIFIER, waited_s)

    async def deliver_deferred(self, nudge: Nudge, waited_s: float = 0.0) -> None:
        """A prompt whose quiet hours are over: check preferences again, then deliver."""
        decision = await self._carry_out(nudge, Stage.DEFERRED_DELIVERY, waited_s)
        if not isinstance(decision, Postpone):
            await self.deferred.finish(nudge.nudge_id)

    @property
    def config(self) -> Config:
        """What the policy needs from the deployment's configuration."""
        return Config(frozenset(self.transports), self.quiet, self.ctx.settings.zone)

    async def _carry_out(self, nudge: Nudge, stage: Stage, waited_s: float) -> Decision:
        """Read the facts in one batch, ask the policy, do what it decided."""
        reading = await self.reader.read(nudge, stage, self.clock())
        decision = policy.decide(nudge, reading.facts, self.config)
        match decision:
            case Skip(duplicate=duplicate):
                if duplicate:
                    self.metrics.duplicates.inc()
            case Wait(missing=fact):  # fail closed: Redis errors are waited out by the caller
                raise reading.errors[fact]
            case Record():
                await self._record(nudge, decision, waited_s)
            case Queue(queue=queue, record=record):
                await self.review.enqueue(nudge, queue, self.clock())
                await self._record(nudge, record, waited_s)
            case Defer(due=due, store=store, record=record):
                if store:
                    await self.deferred.add(nudge, due)
                await self._record(nudge, record, waited_s)
            case Postpone(due=due):
                await self.deferred.add(nudge, due)
            case Deliver():
                await self._deliver(nudge, decision, reading.student_id, waited_s)
        return decision

    async def _deliver(
        self, nudge: Nudge, decision: Deliver, student_id: str | None, waited_s: float
    ) -> None:
        """Claim the cooling-off period, deliver, record; a delivery begun before a crash is
        finished the same way, with the same idempotency key (the service sees a repeat)."""
        channel, stage = decision.channel, decision.stage
        if student_id is None:  # the policy delivers only to a known recipient
            msg = f"nudge {nudge.nudge_id}: no student id to deliver to"
            raise RuntimeError(msg)
        transport = self.transports[channel]
        if transport.breaker.state == "open":  # nothing sent, nothing claimed: wait, decide again
            raise HoldOn(channel.value, transport.name, transport.breaker.retry_in_s())
        held_since = await self.cooldown.claim(nudge.pseudonym, nudge.nudge_id, self.clock())
        if held_since is not None:  # a resumed delivery finds the claim it made before
            hours = self.cooldown.ms / 3_600_000
            await self._record(nudge, policy.cooldown_refused(held_since, hours, stage), waited_s)
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
            payload=payload(nudge, student_id, channel, message),
        )
        begun = decision.begun  # deliveries begun by notifiers that stopped
        await self.log.mark_sending(nudge.nudge_id, stage, channel, begun + 1)
        started = time.perf_counter()
        result = await transport.deliver(out)
        if result.reason == CIRCUIT_OPEN:  # another delivery holds the breaker's one trial
            await self.log.clear_sending(nudge.nudge_id, stage, channel, begun)
            if not begun:  # kept when an earlier delivery may have reached the student
                await self.cooldown.release(nudge.pseudonym, nudge.nudge_id)
            raise HoldOn(channel.value, transport.name, transport.breaker.retry_in_s())
        self.metrics.delivery_seconds.labels(transport.name).observe(time.perf_counter() - started)
        self.metrics.deliveries.labels(channel.value, "ok" if result.ok else "failed").inc()
        if result.ok:
            record = policy.delivered(channel, transport.name, result.attempts, stage, begun)
        else:
            record = policy.delivery_failed(channel, result.reason, result.attempts, stage, begun)
        # The transport has answered: from here on only the record is retried while Redis is
        # away. Deciding again would find the mark and send the message once more.
        release = not result.ok and not begun  # a failure gives the claim back, unless an
        # earlier delivery (begun by a notifier that stopped) may have reached the student

        async def finish(_waited_s: float) -> None:
            if release:
                await self.cooldown.release(nudge.pseudonym, nudge.nudge_id)
            await self._record(nudge, record, waited_s, message)

        await self._patiently("notify", finish)

    async def _record(
        self,
        nudge: Nudge,
        decided: Record,
        waited_s: float,
        message: RenderedMessage | None = None,
    ) -> None:
        """Append the record of ``decided``, once per nudge and stage."""
        if decided.release_cooldown:
            await self.cooldown.release(nudge.pseudonym, nudge.nudge_id)
        if message is None and decided.message_channel is not None:
            message = self.messages.render(nudge, decided.message_channel)
        outcome, stage = decided.outcome, decided.stage
        record = new_record(
            nudge,
            nudge.explanation.summary,
            stage,
            outcome,
            decided.reason,
            decided.detail + policy.waited_note(waited_s),
            self.clock(),
            channels=decided.channels,
            attempts=decided.attempts,
            message=message,
            waited_s=round(waited_s, 3),
            deferred_until=decided.deferred_until,
            queue=decided.queue,
        )
        if await self.log.append(record):
            self.metrics.interventions.labels(outcome.value).inc()
        log.info(
            "nudge %s: %s (%s) at %s",
            nudge.nudge_id,
            outcome.value,
            decided.reason,
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
