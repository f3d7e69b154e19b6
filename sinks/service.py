"""Wiring the notifier into its process: transports, stores, agents and the timer."""

from __future__ import annotations

import logging
from typing import Any

from agents.context import Context
from agents.model.pseudonym import Pseudonymiser
from agents.store.reference import ReferenceStore
from agents.store.state import EngagementStore
from schemas.nudges import Channel
from schemas.rules import RuleSet
from schemas.settings import Settings
from sinks.channels.breaker import CircuitBreaker
from sinks.channels.kafka import KafkaChannel
from sinks.channels.outbound import Transport
from sinks.channels.producer import RecordProducer
from sinks.channels.smtp import SmtpChannel
from sinks.channels.webhook import WebhookChannel
from sinks.config import NotifierConfig, load_notifier_config
from sinks.notifier import Notifier
from sinks.stores.cooldown import PromptCooldown
from sinks.stores.deferred import DeferredPrompts
from sinks.stores.interventions import InterventionLog
from sinks.stores.preferences import PreferenceStore
from sinks.stores.review import ReviewQueue

log = logging.getLogger("engagement.notifier")


def build_transports(
    settings: Settings, config: NotifierConfig, producer: RecordProducer
) -> dict[Channel, Transport]:
    """One transport object per transport name, shared by the channels routed to it (so a
    failing service trips one breaker, whichever channel found it)."""
    made: dict[str, Transport] = {}
    for transport in set(config.routes.values()):
        breaker = CircuitBreaker(
            failure_threshold=settings.breaker_failures, reset_after_s=settings.breaker_reset_s
        )
        if transport == "webhook":
            assert settings.webhook_url is not None  # noqa: S101  # checked by the config
            assert settings.webhook_secret is not None  # noqa: S101
            made[transport] = WebhookChannel(
                settings.webhook_url,
                settings.webhook_secret.get_secret_value(),
                timeout_s=settings.webhook_timeout_s,
                attempts=settings.webhook_attempts,
                breaker=breaker,
            )
        elif transport == "smtp":
            assert settings.smtp_host is not None  # noqa: S101  # checked by the config
            assert settings.smtp_sender is not None  # noqa: S101
            made[transport] = SmtpChannel(
                settings.smtp_host,
                settings.smtp_port,
                sender=settings.smtp_sender,
                starttls=settings.smtp_starttls,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value()
                if settings.smtp_password
                else None,
                timeout_s=settings.webhook_timeout_s,
                attempts=settings.webhook_attempts,
                breaker=breaker,
            )
        else:
            made[transport] = KafkaChannel(producer, settings.topics.outbound, breaker=breaker)
    return {channel: made[transport] for channel, transport in config.routes.items()}


def register_notifier(ctx: Context, store: EngagementStore, rules: RuleSet) -> Notifier:
    """Register the notifier's agents (nudges, preference changes) and its timer."""
    settings = ctx.settings
    config = load_notifier_config(settings, rules)
    if config.messages.example_fields:
        log.warning(
            "the messages file %s still has example values for %s: students would be sent "
            "to example.ac.uk; set ENGAGEMENT_MESSAGES_FILE to the institution's own file",
            config.messages.source,
            ", ".join(config.messages.example_fields),
        )
    names = settings.topics
    app = ctx.app
    producer = RecordProducer(ctx.kafka_bootstrap, client_id="engagement-notifier")
    interventions = InterventionLog(
        ctx.redis,
        settings.key_prefix,
        producer=producer,
        topic=names.interventions,
        autoflush=False,
    )
    pseudonymise = Pseudonymiser(settings.pseudonym_key)
    notifier = Notifier(
        ctx,
        preferences=PreferenceStore(ctx.redis, settings.key_prefix),
        interventions=interventions,
        identities=store,
        references=ReferenceStore(ctx.redis, settings.key_prefix, pseudonymise, settings.zone),
        review=ReviewQueue(
            ctx.redis,
            settings.key_prefix,
            config.teams,
            interventions.append,
            recorded_key=interventions.recorded_key,
        ),
        deferred=DeferredPrompts(ctx.redis, settings.key_prefix),
        transports=build_transports(settings, config, producer),
        messages=config.messages,
        quiet=config.quiet,
        cooldown=PromptCooldown(ctx.redis, settings.key_prefix, settings.prompt_cooldown_hours),
        dead_topic=app.topic(names.deadletter, partitions=settings.partitions),
        recipient=settings.smtp_recipient,
    )

    async def notify(stream: Any) -> None:
        async for events in stream.take_events(100, settings.batch_within_s):
            await notifier.handle_many([event.message for event in events])
            await notifier.publish_records()

    async def preferences(stream: Any) -> None:
        async for events in stream.take_events(100, settings.batch_within_s):
            for event in events:
                await notifier.change_preferences(event.message, pseudonymise)

    app.agent(
        app.topic(names.nudges, partitions=settings.partitions), name="notifier", concurrency=1
    )(notify)
    app.agent(
        app.topic(names.preferences, partitions=settings.partitions),
        name="preferences",
        concurrency=1,
    )(preferences)

    async def tick() -> None:
        try:
            await notifier.tick()
        except Exception:  # the timer must outlive any one failure; it runs again soon
            log.exception("notifier timer failed; retrying at the next interval")

    app.timer(settings.notifier_tick_s, name="notifier-tick")(tick)

    async def close(_sender: Any, **_kwargs: Any) -> None:
        for transport in set(notifier.transports.values()):
            await transport.close()
        producer.close()

    app.on_before_shutdown.connect(close)

    return notifier
