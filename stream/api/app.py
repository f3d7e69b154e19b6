"""The people-facing API (``engagement api``): the app factory, and running it.

FastAPI on uvicorn: typed routes whose OpenAPI document comes from the same pydantic models
the rest of the product uses. ``/healthz``, ``/readyz`` and ``/metrics`` answer without
sign-in; everything else is under ``/v1`` and needs it. Every refusal is a problem-details
answer (``stream/api/problems.py``). Nothing about a request is logged by uvicorn (its access
log is off: a path can hold a student id); the metrics name route templates only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.errors import ConfigError
from schemas.review import load_teams
from schemas.rules import load_rules
from schemas.settings import Settings, load_settings
from sinks.config import staff_routes
from stream.api import problems, routes_me, routes_students
from stream.api.pages import pages_router
from stream.api.problems import responses
from stream.api.routes_common import Api
from stream.api.routes_corrections import router as corrections_router
from stream.api.routes_insights import router as insights_router
from stream.api.routes_reports import router as reports_router
from stream.api.routes_review import router as review_router
from stream.api.session import CSRF_HEADER, session_of
from stream.runtime import Runtime

log = logging.getLogger("engagement.api")

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass(frozen=True)
class ApiMetrics:
    """Requests by route template (never the path: it may hold a student id) and status."""

    registry: CollectorRegistry
    requests: Counter
    seconds: Histogram


def create_api_metrics(registry: CollectorRegistry | None = None) -> ApiMetrics:
    """The API's metrics on ``registry`` (a fresh one by default)."""
    registry = registry or CollectorRegistry()
    return ApiMetrics(
        registry,
        Counter(
            "engagement_api_requests",
            "API requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        ),
        Histogram(
            "engagement_api_request_seconds",
            "Time to answer an API request, by route template.",
            ["route"],
            buckets=_BUCKETS,
            registry=registry,
        ),
    )


class Measured:
    """ASGI middleware counting each answer by route template, method and status, and timing
    it. Plain ASGI rather than ``@app.middleware``: that wraps every request in a second task
    and a streamed response, a measurable cost on the hot reads."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if nothing answers (the catch-all's own answer)

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            route = getattr(scope.get("route"), "path", "(none)")
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.seconds.labels(route).observe(time.perf_counter() - started)


def _version() -> str:
    try:
        return metadata.version("engagement-stream")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a plain checkout
        return "0.0.0"


def create_app(
    api: Api, *, authenticator: Any | None = None, metrics: ApiMetrics | None = None
) -> FastAPI:
    """The API on ``api``'s stores. ``authenticator`` validates bearer tokens (the process
    passes the one ``build_authenticator`` discovers; tests pass their own); sign-in's pages
    and the local issuer are added by :func:`stream.api.session.install_signin`."""
    measured = metrics or create_api_metrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await api.close()

    app = FastAPI(
        title="engagement-stream API",
        version=_version(),
        description="Students' own engagement data, staff access by role, every read audited. "
        "Errors are RFC 9457 problem details. See docs/api.md.",
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.api = api
    app.state.settings = api.settings
    app.state.redis = api.redis
    app.state.audit = api.audit
    app.state.authenticator = authenticator
    problems.install(app)

    app.add_middleware(Measured, metrics=measured)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "role": "api"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            redis_ok = bool(await asyncio.wait_for(api.redis.ping(), 2))
        except Exception:  # any failure to answer is "not ready", never an error
            redis_ok = False
        body = {"ready": redis_ok, "role": "api", "checks": {"redis": redis_ok}}
        return JSONResponse(body, status_code=200 if redis_ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_page() -> Response:
        return Response(generate_latest(measured.registry), media_type=METRICS_TYPE)

    refusals = responses(400, 401, 403, 500)
    app.include_router(routes_me.router, responses=refusals)
    app.include_router(routes_students.router, responses=refusals)
    app.include_router(reports_router, responses=refusals)
    app.include_router(review_router, responses=refusals)
    app.include_router(corrections_router, responses=refusals)
    app.include_router(insights_router, responses=refusals)
    app.include_router(pages_router(session_of, CSRF_HEADER))
    return app


def build_api(settings: Settings, redis_url: str, kafka_bootstrap: str | None) -> Api:
    """The API's stores and rules from settings (the rules and teams files are checked)."""
    rules = load_rules(settings.rules_file)
    teams = load_teams(settings.teams_file, routes=staff_routes(rules))
    # A burst waits for a free connection (up to 5 s) rather than failing at once.
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=100, timeout=5)
    client = aioredis.Redis(connection_pool=pool)
    return Api(settings, client, rules, teams, kafka_bootstrap)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as served at /v1/openapi.json (docs/api.openapi.json is it)."""
    from stream.api.session import session_router

    settings = load_settings(pseudonym_key="openapi-document-" + "x" * 32)
    api = build_api(settings, "redis://127.0.0.1:1/0", None)  # never connected
    app = create_app(api)
    app.include_router(session_router())
    return app.openapi()


def openapi_text() -> str:
    """The OpenAPI document as checked in: sorted keys, two-space indent, final newline."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def run(runtime: Runtime) -> None:
    """Serve on ENGAGEMENT_WEB_BIND:ENGAGEMENT_API_PORT until SIGINT or SIGTERM, on uvloop's
    event loop (less CPU per request than asyncio's own; see docs/api.md, "Speed")."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(runtime))


async def _serve(runtime: Runtime) -> None:
    import uvicorn

    from stream.api.auth import build_authenticator
    from stream.api.session import install_signin

    settings = runtime.settings
    authenticator = await build_authenticator(settings)
    api = build_api(settings, runtime.redis_url, runtime.kafka_bootstrap)
    try:
        await asyncio.wait_for(api.redis.ping(), 5)
    except Exception as exc:  # no Redis: one line, not a trace
        msg = f"the API cannot reach Redis ({type(exc).__name__}): check REDIS_URL"
        raise ConfigError(msg) from None
    app = create_app(api, authenticator=authenticator)
    install_signin(app, settings, client=api.redis, authenticator=authenticator)
    config = uvicorn.Config(
        app,
        host=settings.web_bind,
        port=settings.api_port,
        access_log=False,  # a path may hold a student id
        http="httptools",  # the C parser uvicorn prefers; h11 costs more per request
        log_level="warning",
        server_header=False,
    )
    log.warning("api: listening on http://%s:%d", settings.web_bind, settings.api_port)
    try:
        await uvicorn.Server(config).serve()
    finally:
        await api.redis.aclose(close_connection_pool=True)
