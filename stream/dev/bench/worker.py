"""A worker child process for one bench run, on its own topics, keys and metrics port."""

from __future__ import annotations

import os
from pathlib import Path

from schemas.settings import Settings
from stream.dev.processes import Child, free_port
from stream.endpoints import Endpoints


def start_worker(
    endpoints: Endpoints,
    settings: Settings,
    key: str,
    workdir: Path,
    name: str,
    metrics: str = "full",
) -> tuple[Child, int]:
    """Start ``engagement worker`` on the bench's prefixes; return it and its metrics port."""
    port = free_port()
    env = {
        **endpoints.as_env(),
        "ENGAGEMENT_PSEUDONYM_KEY": key,
        "ENGAGEMENT_TOPIC_PREFIX": settings.topic_prefix,
        "ENGAGEMENT_KEY_PREFIX": settings.key_prefix,
        "ENGAGEMENT_WEB_PORT": str(port),
        "ENGAGEMENT_LOG_LEVEL": os.environ.get("ENGAGEMENT_LOG_LEVEL", "WARNING"),
        "ENGAGEMENT_METRICS": metrics,
    }
    return Child(name, ["worker"], env, workdir).start(), port
