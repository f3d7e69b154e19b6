"""The Faust application of a process: its agents' app, metrics, health and status pages."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Literal

import faust
from prometheus_client import generate_latest

from agents.context import Context
from ops.health import (
    PartitionLag,
    Progress,
    Readiness,
    broker_answers,
    faust_partitions,
    publish_lag,
    redis_answers,
    topics_missing,
)
from ops.metrics import create_metrics, initialise_labels
from ops.status import register_status_pages
from schemas.rules import RuleSet, load_rules
from schemas.settings import Settings
from stream.transport import install

log = logging.getLogger("engagement")

Role = Literal["worker", "notifier"]
METRICS_TYPE = "text/plain; version=0.0.4"


def broker_url(bootstrap: str, scheme: str = "kafka") -> str:
    """Faust's broker URL for a comma-separated bootstrap list."""
    hosts = (host.strip() for host in bootstrap.split(","))
    return ";".join(f"{scheme}://{host}" for host in hosts if host)


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's login to the brokers, from the same settings as every other Kafka client."""
    context = settings.kafka_ssl_context()
    if settings.kafka_security_protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password(),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,  # SASL_SSL when set, SASL_PLAINTEXT when None
        )
    return faust.SSLCredentials(context) if context is not None else None


def create_app(
    settings: Settings,
    role: Role,
    *,
    kafka_bootstrap: str,
    redis_url: str,
    rules: RuleSet | None = None,
) -> tuple[faust.App, Context]:
    """Build the Faust app for a role; agents are registered on it by the caller."""
    rules = rules if rules is not None else load_rules(settings.rules_file)
    ctx = Context(
        settings=settings,
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        rules=rules,
        metrics=create_metrics(minimal=settings.metrics == "minimal"),
    )
    initialise_labels(ctx.metrics, role, rules)
    app = faust.App(
        f"{settings.topic_prefix}engagement-{role}",
        broker=broker_url(kafka_bootstrap, install(settings.fetch_max_wait_ms)),
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        value_serializer="raw",
        key_serializer="raw",
        consumer_auto_offset_reset="earliest",
        # The first JoinGroup waits about half the session timeout; 10 s starts in ~6 s.
        broker_session_timeout=10,
        broker_heartbeat_interval=3,
        producer_acks=-1,
        broker_credentials=broker_credentials(settings),
        web_port=settings.web_port_for(role),
        web_bind=settings.web_bind,
        # Only our own pages are served (/healthz, /readyz, /metrics, /status). Faust's views
        # would show table data (/table/), the cluster's worker URLs (/router/), sensor
        # statistics and partition assignment (/, /assignment/), the service graph (/graph/)
        # and /performance/, without authentication; nothing here uses them (no Faust tables).
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        # Agents catch their own errors; a crash must stop the process so that it restarts.
        worker_redirect_stdouts=False,
    )
    ctx.app = app

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # The versioned text format's content type (Prometheus 3 refuses a bare text/plain);
        # aiohttp takes the charset separately, so it is left off here (the body is ASCII).
        return web.bytes(generate_latest(ctx.metrics.registry), content_type=METRICS_TYPE)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "alive", "role": role})

    register_status_pages(app, ctx.metrics.registry, role)
    group = f"{settings.topic_prefix}engagement-{role}"
    progress = Progress(stuck_after_s=settings.stuck_after_s)

    def partitions() -> list[PartitionLag]:
        rows = faust_partitions(app, group)
        for source in ctx.lag_sources:
            rows.extend(source())
        return rows

    reported: set[tuple[str, str, str]] = set()

    async def measure_lag() -> None:
        nonlocal reported
        rows = partitions()
        reported = publish_lag(ctx.metrics, rows, reported)
        ctx.stuck = progress.update(rows, time.monotonic())

    app.timer(settings.lag_interval_s, name="engagement-lag")(measure_lag)

    async def broker_topics() -> set[str]:
        # Asked afresh through the app's own producer (its login, no topic auto-created): the
        # clients' cached metadata still lists topics a broker that restarted empty has lost.
        producer = getattr(app.producer, "_producer", None)  # aiokafka's, once started
        if producer is None:
            msg = "the producer has not started yet"
            raise RuntimeError(msg)
        cluster = await producer.client.fetch_all_metadata()
        return set(cluster.topics())

    async def readiness() -> Readiness:
        assigned = partitions()
        checks = {
            "redis": await redis_answers(ctx.redis),
            "broker": await broker_answers(kafka_bootstrap),
            "partitions": None if assigned else "no partitions assigned yet",
            "topics": await topics_missing(broker_topics, settings.topics.all),
        }
        stuck = [
            f"{r.topic}[{r.partition}]: lag {r.lag}, no commit for {settings.stuck_after_s:.0f}s"
            for r in ctx.stuck
        ]
        report = Readiness(checks, stuck)
        ctx.metrics.ready.set(1 if report.ready else 0)
        return report

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        report = await readiness()
        # Which process answered: `engagement check` refuses an answer from the wrong role.
        body = {**report.as_json(), "role": role, "pid": os.getpid()}
        return web.json(body, status=200 if report.ready else 503)

    return app, ctx
