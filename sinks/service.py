"""The notifier's agents on the Faust app: nudges, preference changes, the timer, shutdown."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from agents.context import Context
from agents.model.pseudonym import Pseudonymiser
from sinks.channels.producer import RecordProducer
from sinks.notifier import Notifier
from sinks.retention.job import claim_run, publisher, run_with_settings

log = logging.getLogger("engagement.notifier")
RETENTION_LOOK_S = 3600.0  # how often a notifier looks whether the day's retention run is due


def register_notifier(
    ctx: Context, notifier: Notifier, producer: RecordProducer, pseudonymise: Pseudonymiser
) -> None:
    """Register the notifier's agents (nudges, preference changes), its timer and its
    shutdown on the Faust app; the notifier itself is built by ``stream.compose``."""
    settings = ctx.settings
    names = settings.topics
    app = ctx.app

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

    register_retention(ctx, producer)

    async def close(_sender: Any, **_kwargs: Any) -> None:
        for transport in set(notifier.transports.values()):
            await transport.close()
        producer.close()

    app.on_before_shutdown.connect(close)


def register_retention(ctx: Context, producer: RecordProducer) -> None:
    """Retention and withdrawn-past-grace erasure, once per interval (a day) across every
    notifier: each looks hourly, and the one that takes the run's key runs it."""
    settings = ctx.settings
    interval = settings.retention_interval_s
    publish = publisher(producer, settings.topics.interventions)

    async def retain() -> None:
        now = datetime.now(UTC)
        try:
            if await claim_run(ctx.redis, settings.key_prefix, interval, now):
                await run_with_settings(ctx.redis, settings, now, publish)
        except Exception:  # the next interval's run finishes what this one began
            log.exception("retention run failed; retrying at the next interval")

    ctx.app.timer(min(interval, RETENTION_LOOK_S), name="retention")(retain)
