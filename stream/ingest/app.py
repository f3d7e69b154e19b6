"""The ingest service's routes, and running it (``engagement ingest``)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from kafka.errors import KafkaError
from prometheus_client import generate_latest

from ops.health import broker_answers
from ops.ingest_metrics import create_ingest_metrics
from schemas.errors import ConfigError
from schemas.sources import SOURCES
from stream.ingest.formats import FORMATS
from stream.ingest.import_endpoint import Imports
from stream.ingest.problems import problem
from stream.ingest.sender import Sender
from stream.ingest.service import XAPI_VERSION, Ingest
from stream.ingest.tokens import Tokens
from stream.runtime import Runtime

log = logging.getLogger("engagement.ingest")

DEV_TOKEN_FILE = "ingest-token"  # noqa: S105  # a file name, not a token
DEV_SENDER = "local"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def routes(ingest: Ingest, imports: Imports | None = None) -> web.Application:
    """The application: format endpoints, xAPI's resources, health, readiness and metrics."""
    app = web.Application(client_max_size=ingest.settings.ingest_max_body_bytes + 1)

    def endpoint(fmt: str, path: str) -> web.RouteDef:
        async def post(request: web.Request) -> web.StreamResponse:
            return await ingest.handle(request, FORMATS[fmt], path)

        return web.post(path, post)

    async def healthz(_: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True, "role": "ingest"})

    async def readyz(_: web.Request) -> web.StreamResponse:
        # As the worker's /readyz: a bootstrap broker accepts a connection (the producer keeps
        # no connection open while idle, so its own state says nothing).
        broker = await broker_answers(ingest.bootstrap) is None
        try:
            redis_ok = bool(await asyncio.wait_for(ingest.redis.ping(), 2))
        except Exception:
            redis_ok = False
        ready = broker and redis_ok
        body = {"ready": ready, "role": "ingest", "checks": {"broker": broker, "redis": redis_ok}}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.StreamResponse:
        body = generate_latest(ingest.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": METRICS_TYPE})

    app.add_routes(
        [
            endpoint("caliper", "/caliper"),
            endpoint("canvas", "/canvas/live-events"),
            endpoint("moodle-log", "/moodle/log"),
            *(endpoint(f"events-{name}", f"/events/{name}") for name in SOURCES),
            *_xapi_routes(ingest),
            *([web.post("/import/{mapping}", imports.handle)] if imports is not None else []),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics),
        ]
    )

    app.middlewares.append(_refusals)
    return app


def _xapi_routes(ingest: Ingest) -> list[web.RouteDef]:
    """The Statement resource (POST, PUT) and the About resource, as LRS clients expect."""

    async def post(request: web.Request) -> web.StreamResponse:
        return await ingest.handle(request, FORMATS["xapi"], "/xapi/statements", xapi="post")

    async def put(request: web.Request) -> web.StreamResponse:
        return await ingest.handle(request, FORMATS["xapi"], "/xapi/statements", xapi="put")

    async def about(request: web.Request) -> web.StreamResponse:
        if ingest.tokens.sender(request.headers) is None:
            return problem(401, "unauthorised", "a valid bearer token for a sender is required")
        response = web.json_response({"version": [XAPI_VERSION], "extensions": {}})
        response.headers["X-Experience-API-Version"] = XAPI_VERSION
        return response

    return [
        web.post("/xapi/statements", post),
        web.put("/xapi/statements", put),
        web.get("/xapi/about", about),
    ]


@web.middleware
async def _refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own refusals as problem details."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return problem(413, "oversized", "the body is over the size limit")
    except web.HTTPMethodNotAllowed:
        return problem(405, "method_not_allowed", f"{request.method} is not taken here")
    except web.HTTPNotFound:
        return problem(404, "not_found", "no such endpoint; see docs/ingest.md")
    return response


def load_tokens(runtime: Runtime, *, local: bool) -> Tokens:
    """The configured tokens; for the local stack without any, a development token kept in the
    state folder (never used in production: a configured broker requires real tokens)."""
    settings = runtime.settings
    pairs = settings.token_hashes()
    if pairs:
        return Tokens(pairs)
    if not local:
        msg = (
            "The ingest service needs tokens: set ENGAGEMENT_INGEST_TOKENS (sender=token,...) "
            "or ENGAGEMENT_INGEST_TOKENS_FILE (lines of 'sender sha256-of-token')"
        )
        raise ConfigError(msg)
    token = dev_token(settings.state_dir)
    print(
        f"ingest: no ENGAGEMENT_INGEST_TOKENS; using the local stack's development token in "
        f"{settings.state_dir / DEV_TOKEN_FILE} (sender {DEV_SENDER!r})",
        flush=True,
    )
    from schemas.ingest_settings import token_hash

    return Tokens([(DEV_SENDER, token_hash(token))])


def dev_token(state_dir: Path) -> str:
    """The local stack's ingest token, created on first use."""
    path = state_dir / DEV_TOKEN_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.write_text(token, encoding="utf-8")
    path.chmod(0o600)
    return token


def run(runtime: Runtime) -> None:
    """Serve until SIGINT or SIGTERM."""
    settings = runtime.settings
    tokens = load_tokens(runtime, local=settings.kafka_bootstrap_servers is None)
    asyncio.run(_serve(runtime, tokens))


async def _serve(runtime: Runtime, tokens: Tokens) -> None:
    settings = runtime.settings
    try:
        sender = Sender(runtime.kafka_bootstrap, client_options=settings.kafka_client_options())
    except KafkaError as exc:  # no broker answers, or the login is refused
        msg = (
            f"The ingest service cannot reach the broker at {runtime.kafka_bootstrap} "
            f"({type(exc).__name__}): check KAFKA_BOOTSTRAP_SERVERS and the Kafka login"
        )
        raise ConfigError(msg) from None
    redis = aioredis.Redis.from_url(settings.redis_url_with_password(runtime.redis_url))
    ingest = Ingest(settings, tokens, sender, redis, create_ingest_metrics())
    ingest.bootstrap = runtime.kafka_bootstrap
    imports = Imports(ingest, settings.redis_url_with_password(runtime.redis_url))
    runner = web.AppRunner(routes(ingest, imports), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.web_bind, settings.ingest_port)
    await site.start()
    log.warning(
        "ingest: listening on http://%s:%d for senders %s",
        settings.web_bind,
        settings.ingest_port,
        ", ".join(tokens.senders),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await asyncio.to_thread(sender.close)
        await redis.aclose()
