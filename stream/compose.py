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
from schemas.errors import ConfigError
from schemas.rules import RuleSet, RulesFileError, load_rules
from sinks.service import register_notifier
from stream.app import Role, create_app
from stream.logs import logging_config
from stream.probes import wait_for_services
from stream.runtime import Runtime
from stream.topics import ensure_topics

PREFLIGHT_TIMEOUT_S = 15.0


def _store(ctx: Context) -> EngagementStore:
    settings = ctx.settings
    return EngagementStore(
        ctx.redis,
        prefix=settings.key_prefix,
        group=f"{settings.topic_prefix}engagement-worker",
        dedup_ttl_s=settings.dedup_ttl_days * 86_400,
        state_ttl_s=settings.state_ttl_days * 86_400,
    )


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
        )
        EngagementAgent(ctx, store, detector).register()
        ReferenceLoader(ctx, reference).register()
        services.append(RawIngest(ctx, store))
    else:
        register_notifier(ctx, store, ctx.rules)
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
        from sinks.config import load_notifier_config  # the worker needs none of it

        load_notifier_config(settings, rules)  # channels, messages, teams: before connecting
    wait_for_services(runtime.kafka_bootstrap, runtime.redis_url, PREFLIGHT_TIMEOUT_S)
    ensure_topics(runtime.kafka_bootstrap, settings.topics, settings.partitions)
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
