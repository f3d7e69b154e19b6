"""Build and run the processes: the worker (ingest + engagement) and the notifier."""

from __future__ import annotations

import logging
from typing import Any

import faust
from mode import Service

from agents.context import Context
from agents.detect import Detector
from agents.engagement import EngagementAgent
from agents.ingest import RawIngest
from agents.loader import ReferenceLoader
from agents.model.pseudonym import Pseudonymiser
from agents.store.reference import ReferenceStore
from agents.store.state import EngagementStore
from agents.store.ukvi import UkviRecorder
from schemas.errors import ConfigError
from schemas.nudges import Channel
from schemas.rules import RuleSet, RulesFileError, load_rules
from schemas.settings import Settings
from sinks.channels.breaker import CircuitBreaker
from sinks.channels.kafka import KafkaChannel
from sinks.channels.outbound import Transport
from sinks.channels.producer import RecordProducer
from sinks.channels.smtp import SmtpChannel
from sinks.channels.webhook import WebhookChannel
from sinks.config import NotifierConfig, load_notifier_config
from sinks.notifier import Notifier
from sinks.service import register_notifier
from sinks.stores.cooldown import PromptCooldown
from sinks.stores.deferred import DeferredPrompts
from sinks.stores.interventions import InterventionLog
from sinks.stores.preferences import PreferenceStore
from sinks.stores.review import ReviewQueue
from stream.app import Role, create_app
from stream.logs import logging_config
from stream.probes import wait_for_services
from stream.runtime import Runtime
from stream.topics import ensure_topics

PREFLIGHT_TIMEOUT_S = 15.0
log = logging.getLogger("engagement.notifier")


def _store(ctx: Context) -> EngagementStore:
    settings = ctx.settings
    return EngagementStore(
        ctx.redis,
        prefix=settings.key_prefix,
        group=f"{settings.topic_prefix}engagement-worker",
        dedup_ttl_s=settings.dedup_ttl_days * 86_400,
        state_ttl_s=settings.state_ttl_days * 86_400,
    )


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


def build_notifier(
    ctx: Context, store: EngagementStore, rules: RuleSet
) -> tuple[Notifier, RecordProducer, Pseudonymiser]:
    """The notifier with its stores, channels, messages and review queue, from settings."""
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
    producer = RecordProducer(
        ctx.kafka_bootstrap,
        client_id="engagement-notifier",
        client_options=ctx.settings.kafka_client_options(),
    )
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
            audit_retention_days=settings.audit_retention_days,
        ),
        deferred=DeferredPrompts(ctx.redis, settings.key_prefix),
        transports=build_transports(settings, config, producer),
        messages=config.messages,
        quiet=config.quiet,
        cooldown=PromptCooldown(ctx.redis, settings.key_prefix, settings.prompt_cooldown_hours),
        dead_topic=ctx.app.topic(names.deadletter, partitions=settings.partitions),
        recipient=settings.smtp_recipient,
    )

    return notifier, producer, pseudonymise


def build(
    runtime: Runtime, role: Role, rules: RuleSet | None = None
) -> tuple[faust.App, Context, list[Service]]:
    """The Faust app for ``role`` with its agents registered, plus services to run beside it."""
    app, ctx = create_app(
        runtime.settings,
        role,
        kafka_bootstrap=runtime.kafka_bootstrap,
        redis_url=runtime.redis_url,
        rules=rules,
    )
    store = _store(ctx)
    services: list[Service] = []
    if role == "worker":
        settings = runtime.settings
        reference = ReferenceStore(
            ctx.redis, settings.key_prefix, Pseudonymiser(settings.pseudonym_key), settings.zone
        )
        detector = Detector(
            store,
            reference,
            ctx.rules,
            settings.zone,
            grace_ms=int(settings.late_grace_hours * 3_600_000),
            partitions=settings.partitions,
            ukvi=UkviRecorder(
                ctx.redis, settings.key_prefix, retention_days=settings.ukvi_retention_days
            ),
        )
        EngagementAgent(ctx, store, detector).register()
        ReferenceLoader(ctx, reference).register()
        services.append(RawIngest(ctx, store))
    else:
        register_notifier(ctx, *build_notifier(ctx, store, ctx.rules))
    return app, ctx, services


def preflight(runtime: Runtime, role: Role = "worker") -> RuleSet:
    """Check everything a process needs before it starts; stop with what to fix otherwise.

    The rules file is validated first (no connection needed), then the broker and Redis must
    answer within a few seconds, then every topic exists with the configured partitions (so
    that the first producer does not auto-create one with the broker's default instead).
    """
    settings = runtime.settings
    try:
        rules = load_rules(settings.rules_file)
    except RulesFileError as exc:
        raise ConfigError(str(exc)) from None
    if role == "notifier":
        load_notifier_config(settings, rules)  # channels, messages, teams: before connecting
    kafka_options = settings.kafka_client_options()  # TLS / SASL login, when configured
    wait_for_services(
        runtime.kafka_bootstrap, runtime.redis_url, PREFLIGHT_TIMEOUT_S, kafka_options
    )
    ensure_topics(runtime.kafka_bootstrap, settings.topics, settings.partitions, kafka_options)
    return rules


def run(runtime: Runtime, role: Role) -> Any:
    """Run a worker or the notifier until it is stopped (SIGTERM/SIGINT)."""
    settings = runtime.settings
    rules = preflight(runtime, role)
    app, _, services = build(runtime, role, rules)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    worker = faust.Worker(
        app,
        *services,
        loglevel=settings.log_level.lower(),
        quiet=True,
        logging_config=logging_config(settings.log_level, role, settings.log_format),
    )
    return worker.execute_from_commandline()
