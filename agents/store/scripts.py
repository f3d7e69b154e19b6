"""Lua scripts: one folder (``agents/store/lua``), one style, loaded once, called by SHA.

Each script opens with what it does, then ``KEYS[n]`` and ``ARGV[n]`` one per line and what
it returns. A script receives every key it touches through ``KEYS`` (built by
``schemas.keys.Keys``), never builds a key name itself, so the key register sees them all.
redis-py's ``AsyncScript`` calls ``EVALSHA`` and loads the script only when Redis does not
know it yet (after a restart or a ``SCRIPT FLUSH``).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

FOLDER = "lua"
NAMES = (
    "state_apply",
    "feeds",
    "deferred_take",
    "record_append",
    "outbox_trim",
    "lock_release",
    "cooldown_claim",
    "cooldown_release",
    "review_enqueue",
    "review_escalate",
)


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``, read from the package once per process."""
    if name not in NAMES:
        msg = f"no Lua script named {name!r}"
        raise KeyError(msg)
    return resources.files(__package__).joinpath(FOLDER, f"{name}.lua").read_text("utf-8")


def script(client: aioredis.Redis, name: str) -> AsyncScript:
    """The script ``name`` bound to a client; each call runs it by its SHA."""
    return client.register_script(source(name))
