"""Where a running local stack said its broker and Redis answer, read back from its state file.

``engagement stack up`` (the development stack) records its endpoints and processes in
``<state dir>/stack.json``. A worker, the notifier or a CLI command started without
``KAFKA_BOOTSTRAP_SERVERS``/``REDIS_URL`` uses them, but only while every recorded process
is still alive: a stale file must not send production traffic to a port someone else now
holds. Reading the file and checking a pid are safe anywhere; starting and stopping the
processes is the development stack's business (``stream.dev.stack``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "STATE_FILE",
    "Endpoints",
    "endpoints_from",
    "load_endpoints",
    "process_alive",
    "read_state",
    "recorded_processes",
]

STATE_FILE = "stack.json"


@dataclass(frozen=True)
class Endpoints:
    """Where the broker and Redis answer, and whether this stack started them itself."""

    kafka_bootstrap: str
    redis_url: str
    embedded_kafka: bool
    embedded_redis: bool

    def as_env(self) -> dict[str, str]:
        """Return the settings' environment variables, to hand these endpoints to a child."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap, "REDIS_URL": self.redis_url}


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """Return the parsed stack.json, or None if it is missing or unreadable."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_processes(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the recorded embedded processes by service name, skipping malformed entries."""
    processes = data.get("processes")
    if not isinstance(processes, dict):
        return {}
    return {
        name: rec
        for name, rec in processes.items()
        if isinstance(rec, dict) and isinstance(rec.get("pid"), int) and rec.get("argv")
    }


def endpoints_from(data: dict[str, Any]) -> Endpoints | None:
    """Return the Endpoints recorded in stack.json data, or None if malformed."""
    raw = data.get("endpoints")
    try:
        return Endpoints(**raw) if isinstance(raw, dict) else None
    except TypeError:
        return None


def process_alive(pid: int, argv: list[str]) -> bool:
    """Tell whether pid is alive (not a zombie) and still runs the recorded binary."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc_dir = Path(f"/proc/{pid}")
    if not proc_dir.is_dir():  # no procfs (macOS): the signal check is all there is
        return True
    try:
        stat = (proc_dir / "stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
            return False
        exe = os.readlink(proc_dir / "exe").removesuffix(" (deleted)")
        if os.path.realpath(exe) == os.path.realpath(argv[0]):
            return True
        # Redis rewrites its process title, so compare the first word's basename as well.
        first = (proc_dir / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return False
    return bool(first.split()) and Path(first.split()[0]).name == Path(argv[0]).name


def load_endpoints(
    state_dir: Path, *, alive: Callable[[int, list[str]], bool] = process_alive
) -> Endpoints | None:
    """Return the endpoints in state_dir/stack.json if all its recorded processes are alive.

    ``alive`` decides whether one recorded process runs; the development stack passes its own,
    which also reaps the children it started itself.
    """
    data = read_state(Path(state_dir))
    if data is None:
        return None
    endpoints = endpoints_from(data)
    processes = recorded_processes(data)
    if endpoints is None:
        return None
    expected = int(endpoints.embedded_kafka) + int(endpoints.embedded_redis)
    if len(processes) != expected:
        return None
    if all(alive(rec["pid"], rec["argv"]) for rec in processes.values()):
        return endpoints
    return None
