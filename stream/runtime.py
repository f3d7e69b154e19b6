"""Start-up: settings, where the broker and Redis are, and the development pseudonym key."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis.asyncio as aioredis

from schemas.errors import ConfigError
from schemas.settings import ENV, Settings, load_settings
from stream.endpoints import load_endpoints

DEV_KEY_FILE = "pseudonym.key"
T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    """Validated settings plus the resolved service addresses."""

    settings: Settings
    kafka_bootstrap: str
    redis_url: str


def dev_key(state_dir: Path, *, create: bool) -> str | None:
    """The local stack's pseudonym key (created with the stack; never used in production)."""
    path = state_dir / DEV_KEY_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    if not create:
        return None
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    path.write_text(key, encoding="utf-8")
    path.chmod(0o600)
    return key


def load_runtime(**overrides: object) -> Runtime:
    """Settings and addresses for a worker, the notifier or a CLI command, or stop with a fix."""
    state_dir = Path(os.environ.get(ENV["state_dir"], ".engagement"))
    if ENV["pseudonym_key"] not in os.environ and "pseudonym_key" not in overrides:
        key = dev_key(state_dir, create=False)
        if key is not None:
            overrides["pseudonym_key"] = key
    settings = load_settings(**overrides)
    kafka, redis_url = settings.kafka_bootstrap_servers, settings.redis_url
    if kafka is None or redis_url is None:
        recorded = load_endpoints(settings.state_dir)  # only while its processes are alive
        if recorded is not None:
            kafka = kafka or recorded.kafka_bootstrap
            redis_url = redis_url or recorded.redis_url
    if kafka is None or redis_url is None:
        msg = (
            "No broker or Redis to use: set KAFKA_BOOTSTRAP_SERVERS and REDIS_URL, or start "
            f"the local stack with `engagement stack up` (state in {settings.state_dir})."
        )
        raise ConfigError(msg)
    # REDIS_PASSWORD_FILE (a container secret) joins the URL here, where every client gets it.
    return Runtime(settings, kafka, settings.redis_url_with_password(redis_url))


def with_redis(runtime: Runtime, work: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
    """Run one command's ``work`` on its own Redis connection, closed afterwards."""

    async def go() -> T:
        client = aioredis.Redis.from_url(runtime.redis_url)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(go())
