"""The notifier's decision, pure: from a nudge and the facts read about it, what must happen.

The notifier reads every fact in one batched Redis read, calls ``decide`` and carries out the
decision. The checks keep this order: already decided? → shadow → suppressed by the detector →
needs a human (invitation, referral: the review queue) → preferences (fail closed) → a delivery
begun before a crash (finished, unless notifiers stopped ``MAX_BEGUN`` times while delivering
it) → a channel the student has not opted out of → quiet hours → recipient → deliver.
Claiming the cooling-off period and the delivery itself are atomic writes, so they stay with
the notifier; the records they end in are made here too (``cooldown_refused``, ``delivered``,
``delivery_failed``), so that every sentence of the notifier's records lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo

from schemas.interventions import Outcome, Stage
from schemas.nudges import Channel, Nudge, Route, Tier
from schemas.preferences import Preferences
from schemas.quiet import QuietHours
from schemas.review import queue_name

Status = Literal["done", "sending"] | None
Fact = Literal["status", "preferences", "deferred_until", "tutor", "recipient"]

SHADOW_DETAIL: Final = (
    "Shadow rule: recorded so staff can judge the rule before it goes live; "
    "nothing was sent and nobody was asked to act."
)
RESUMED_NOTE: Final = (
    " A delivery had been started before the notifier stopped; it was not attempted again."
)
# Deliveries of one nudge begun by notifiers that stopped before recording the answer, after
# which it is not begun again: a crash loop (a service that hangs, a notifier killed while it
# waits) must not re-send the same message at every restart.
MAX_BEGUN: Final = 3


@dataclass(frozen=True)
class Config:
    """What the deployment configures: channels that have a transport, quiet hours, timezone."""

    channels: frozenset[Channel]
    quiet: QuietHours | None
    zone: ZoneInfo


@dataclass(frozen=True)
class Facts:
    """Everything one decision needs, read at once. A fact named in ``unreadable`` could not
    be read; the decision waits (nothing is done) if and when it needs that fact."""

    stage: Stage
    now: datetime
    status: Status = None  # "done" once the stage recorded its decision
    sending_channel: Channel | None = None  # the channel of a delivery begun, not recorded
    begun: int = 0  # deliveries begun and not recorded (each by a notifier that stopped)
    preferences: Preferences = field(default_factory=Preferences)
    deferred_until: datetime | None = None  # due time of a prompt already deferred
    tutor: str | None = None  # the student's personal tutor (for invitations)
    recipient_known: bool = True  # the contact identity exists (not expired or erased)
    unreadable: frozenset[Fact] = frozenset()


@dataclass(frozen=True)
class Skip:
    """Decided already: nothing to do. ``duplicate`` counts it as a redelivered nudge."""

    duplicate: bool


@dataclass(frozen=True)
class Wait:
    """A fact the decision needs could not be read: nothing is sent or recorded now; the
    notifier waits and decides again from the start (opt-out fails closed)."""

    missing: Fact


@dataclass(frozen=True)
class Record:
    """Write one intervention record. ``message_channel``: include the message as it would
    read on that channel; ``release_cooldown``: give back a period claimed before a crash."""

    outcome: Outcome
    reason: str
    detail: str
    stage: Stage = Stage.NOTIFIER
    channels: tuple[Channel, ...] = ()
    attempts: int = 0
    message_channel: Channel | None = None
    deferred_until: datetime | None = None
    queue: str | None = None
    release_cooldown: bool = False


@dataclass(frozen=True)
class Queue:
    """Put the nudge in a review queue for a member of staff, then write ``record``."""

    queue: str
    record: Record


@dataclass(frozen=True)
class Defer:
    """Quiet hours: keep the prompt until ``due`` (``store``: it is not kept yet), then write
    ``record``."""

    due: datetime
    channel: Channel
    store: bool
    record: Record


@dataclass(frozen=True)
class Postpone:
    """A deferred prompt taken while quiet hours still hold: keep it until ``due``; no record."""

    due: datetime


@dataclass(frozen=True)
class Deliver:
    """Claim the cooling-off period and deliver on ``channel``; ``resumed``: a delivery begun
    before a crash, finished on its channel with the same idempotency key; ``begun``: how
    many deliveries stopped notifiers had begun before this one."""

    channel: Channel
    stage: Stage
    resumed: bool = False
    begun: int = 0


Decision = Skip | Wait | Record | Queue | Defer | Postpone | Deliver


def decide(nudge: Nudge, facts: Facts, config: Config) -> Decision:
    """What the notifier must do with ``nudge`` at ``facts.stage``."""
    if "status" in facts.unreadable:
        return Wait("status")
    if facts.status == "done":
        return Skip(duplicate=facts.stage is Stage.NOTIFIER)
    if facts.stage is Stage.NOTIFIER:
        return _first_decision(nudge, facts, config)
    return _when_due(nudge, facts, config)


def _first_decision(nudge: Nudge, facts: Facts, config: Config) -> Decision:
    """The notifier's stage: the nudge as the detector sent it."""
    if nudge.mode == "shadow":
        return Record(
            Outcome.SHADOW, "shadow_rule", SHADOW_DETAIL, message_channel=_would_send(nudge, config)
        )
    if nudge.suppressed is not None:
        why = " ".join(nudge.explanation.notes) or f"Not sent ({nudge.suppressed})."
        return Record(Outcome.SUPPRESSED, nudge.suppressed, why)
    if nudge.tier is not Tier.PROMPT:
        return _queue(nudge, facts)
    if "preferences" in facts.unreadable:
        return Wait("preferences")
    if facts.status == "sending":
        return _resume(nudge, facts, config)
    channel = first_channel(nudge, facts.preferences, config)
    if channel is None:
        return _opted_out(nudge, facts.stage, config)
    if "deferred_until" in facts.unreadable:
        return Wait("deferred_until")
    due, store = facts.deferred_until, False  # deferred before its record was lost?
    if due is None and config.quiet is not None and config.quiet.contains(facts.now):
        due, store = config.quiet.ends_after(facts.now), True
    if due is not None:
        return Defer(due, channel, store, _deferred_record(channel, due, config))
    return _deliver(channel, facts)


def _when_due(nudge: Nudge, facts: Facts, config: Config) -> Decision:
    """The deferred delivery's stage: quiet hours are over; preferences are checked again."""
    if "preferences" in facts.unreadable:
        return Wait("preferences")
    if facts.status == "sending":
        return _resume(nudge, facts, config)
    channel = first_channel(nudge, facts.preferences, config)
    if channel is None:
        return _opted_out(nudge, facts.stage, config)
    if config.quiet is not None and config.quiet.contains(facts.now):
        return Postpone(config.quiet.ends_after(facts.now))  # not yet: wait on
    return _deliver(channel, facts)


def first_channel(nudge: Nudge, preferences: Preferences, config: Config) -> Channel | None:
    """The rule's first channel that is configured and that the student has not opted out
    of: one message per nudge, never the same prompt on every channel."""
    for channel in nudge.channels:
        if channel in config.channels and preferences.allows(channel):
            return channel
    return None


def _would_send(nudge: Nudge, config: Config) -> Channel | None:
    """The channel a shadow prompt's message is shown for: the first configured one."""
    if nudge.tier is not Tier.PROMPT:
        return None
    return next((c for c in nudge.channels if c in config.channels), None)


def _resume(nudge: Nudge, facts: Facts, config: Config) -> Decision:
    """Finish a delivery a stopped notifier had begun: on the same channel, unless the student
    has opted out of it since (or it is no longer configured)."""
    channel = facts.sending_channel
    if channel is None or channel not in config.channels or not facts.preferences.allows(channel):
        return _opted_out(nudge, facts.stage, config, note=RESUMED_NOTE)
    if facts.begun >= MAX_BEGUN:
        return interrupted(channel, facts.begun, facts.stage)
    return _deliver(channel, facts, resumed=True)


def _deliver(channel: Channel, facts: Facts, *, resumed: bool = False) -> Decision:
    if "recipient" in facts.unreadable:
        return Wait("recipient")
    if not facts.recipient_known:
        return Record(
            Outcome.FAILED,
            "unknown_recipient",
            "Not sent: the student's contact identity has expired or was erased.",
            stage=facts.stage,
        )
    return Deliver(channel, facts.stage, resumed, facts.begun if resumed else 0)


def _opted_out(nudge: Nudge, stage: Stage, config: Config, note: str = "") -> Record:
    usable = [c.value for c in nudge.channels if c in config.channels]
    return Record(
        Outcome.SUPPRESSED,
        "opted_out",
        "Not sent: the student has opted out of automated prompts on "
        + ", ".join(usable)
        + "."
        + note,
        stage=stage,
        release_cooldown=True,  # claimed before a crash?
    )


def _deferred_record(channel: Channel, due: datetime, config: Config) -> Record:
    local = due.astimezone(config.zone)
    hours = f" ({config.quiet.describe()})" if config.quiet is not None else ""
    return Record(
        Outcome.DEFERRED,
        "quiet_hours",
        f"Decided during quiet hours{hours}; it will be sent after "
        f"{local:%H:%M on %d %b}, if the student has not opted out by then.",
        channels=(channel,),
        message_channel=channel,
        deferred_until=due,
    )


def review_queue(route: Route, tutor: str | None) -> str:
    """The queue an item on ``route`` joins (``schemas.review.queue_name``)."""
    queue = queue_name(route, tutor)
    if queue is None:
        msg = f"route {route.value!r} goes to the student, never to a review queue"
        raise ValueError(msg)
    return queue


def _queue(nudge: Nudge, facts: Facts) -> Decision:
    tutor: str | None = None
    if nudge.route is Route.PERSONAL_TUTOR:
        if "tutor" in facts.unreadable:
            return Wait("tutor")
        tutor = facts.tutor
    queue = review_queue(nudge.route, tutor)
    who = (
        f"personal tutor {tutor}"
        if tutor
        else f"{nudge.route.value.replace('_', ' ')} team ({queue})"
    )
    detail = (
        f"Queued for the {who} to decide whether and how to get in touch; nothing is "
        "sent to the student automatically."
    )
    return Queue(queue, Record(Outcome.QUEUED_FOR_REVIEW, "needs_human", detail, queue=queue))


# -- the records that follow the notifier's own writes ---------------------------------------


def cooldown_refused(held_since: datetime, hours: float, stage: Stage) -> Record:
    """The claim on the cooling-off period was refused: another prompt holds it."""
    return Record(
        Outcome.SUPPRESSED,
        "cooldown",
        f"Not sent: the student was sent another automated message at "
        f"{held_since:%H:%M on %d %b %Y} (UTC), and we send at most one every "
        f"{hours:g} hours.",
        stage=stage,
    )


def delivered(
    channel: Channel, transport: str, attempts: int, stage: Stage, begun: int = 0
) -> Record:
    """The notification service accepted the message. ``begun``: deliveries begun before
    this one by notifiers that stopped; they count as attempts (each may have reached it)."""
    return Record(
        Outcome.DELIVERED,
        "delivered",
        f"Sent by {channel.value} through the notification service ({transport})."
        + _begun_note(begun),
        stage=stage,
        channels=(channel,),
        attempts=begun + attempts,
    )


def delivery_failed(
    channel: Channel, reason: str, attempts: int, stage: Stage, begun: int = 0
) -> Record:
    """Every attempt failed; ``reason`` is the transport's (e.g. ``http_500``, ``timeout``)."""
    return Record(
        Outcome.FAILED,
        reason,
        f"Not sent by {channel.value}: delivery failed after {attempts} attempts ({reason})."
        + _begun_note(begun),
        stage=stage,
        channels=(channel,),
        attempts=begun + attempts,
    )


def interrupted(channel: Channel, begun: int, stage: Stage) -> Record:
    """Notifiers stopped ``begun`` times while delivering this prompt: it is not begun again.
    The cooling-off period stays claimed (the student may have the message); the record
    carries the message as it would have read."""
    return Record(
        Outcome.FAILED,
        "interrupted",
        f"Not sent again by {channel.value}: the notifier stopped {begun} times while "
        "delivering it, before the notification service answered, so it was not tried once "
        "more. The service may have received it, always as the same message (the nudge id "
        "as its key).",
        stage=stage,
        channels=(channel,),
        attempts=begun,
        message_channel=channel,
    )


def _begun_note(begun: int) -> str:
    if begun <= 0:
        return ""
    times = "once" if begun == 1 else f"{begun} times"
    return (
        f" The notifier had stopped {times} while delivering it, before the answer was "
        "recorded; it was sent again as the same message (the nudge id as its key), so the "
        f"service may have received it {begun + 1} times."
    )


def waited_note(waited_s: float) -> str:
    """What a record adds when its decision waited for Redis (one second or more)."""
    if waited_s < 1:
        return ""
    return (
        f" It waited {waited_s:.0f} s for the preference store, which could not be "
        "read; nothing was sent meanwhile."
    )
