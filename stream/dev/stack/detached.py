"""``engagement stack up|down|status``: a local stack that outlives the command that started it.

``up`` starts a LocalStack and records its endpoints and processes in ``<state dir>/stack.json``
(read back by :mod:`stream.endpoints`); ``down`` stops what the file records, even when another
process started it; ``status`` says what is recorded and whether each service answers. A lock
file keeps concurrent ``up``/``down`` calls from racing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from stream import endpoints as recorded
from stream.dev.stack.children import DETACHED, alive, terminate_pid
from stream.dev.stack.local import LocalStack
from stream.endpoints import STATE_FILE, Endpoints
from stream.probes import PROBE_ERRORS, probe_kafka, probe_redis

_LOCK_FILE = ".stack.lock"
_STATE_VERSION = 1
_STATUS_PROBE_TIMEOUT_S = 1.0


def load_endpoints(state_dir: Path) -> Endpoints | None:
    """Return the endpoints in state_dir/stack.json if all its recorded processes are alive."""
    return recorded.load_endpoints(state_dir, alive=alive)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on state_dir so concurrent `up`/`down` calls do not race."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / _LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_state(state_dir: Path, data: dict[str, object]) -> None:
    """Write stack.json atomically, so a reader never sees half a file."""
    path = state_dir / STATE_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _stop_recorded(state_dir: Path) -> bool:
    """Stop every process recorded in stack.json and remove it; return whether any was running."""
    data = recorded.read_state(state_dir)
    stopped = False
    if data is not None:
        for rec in recorded.recorded_processes(data).values():
            stopped = terminate_pid(rec["pid"], rec["argv"]) or stopped
    with contextlib.suppress(FileNotFoundError):
        (state_dir / STATE_FILE).unlink()
    return stopped


def up(
    state_dir: Path,
    *,
    kafka_bootstrap: str | None = None,
    redis_url: str | None = None,
    timeout: float = 60.0,
) -> Endpoints:
    """Start the stack detached (it outlives this process) and record it in stack.json."""
    state_dir = Path(state_dir)
    with _locked(state_dir):
        existing = load_endpoints(state_dir)
        if existing is not None:
            return existing
        _stop_recorded(state_dir)  # a half-dead earlier stack: clear it before starting anew
        stack = LocalStack(state_dir, kafka_bootstrap=kafka_bootstrap, redis_url=redis_url)
        endpoints = stack.start(timeout)
        children = stack.children()
        try:
            _write_state(
                state_dir,
                {
                    "version": _STATE_VERSION,
                    "started_at": time.time(),
                    "launcher_pid": os.getpid(),
                    "endpoints": asdict(endpoints),
                    "processes": {name: child.record() for name, child in children.items()},
                },
            )
        except BaseException:
            stack.stop()
            raise
        for child in children.values():
            DETACHED[child.proc.pid] = child.proc
        return endpoints


def down(state_dir: Path) -> bool:
    """Stop the processes recorded by `up` and remove stack.json; return whether any ran."""
    state_dir = Path(state_dir)
    if not (state_dir / STATE_FILE).exists():
        return False
    with _locked(state_dir):
        return _stop_recorded(state_dir)


def status(state_dir: Path) -> dict[str, object]:
    """Report what stack.json records and whether each service is alive and answering."""
    state_dir = Path(state_dir)
    path = state_dir / STATE_FILE
    data = recorded.read_state(state_dir)
    report: dict[str, object] = {"state_file": str(path), "recorded": data is not None}
    if data is None:
        return report
    endpoints = recorded.endpoints_from(data)
    processes = recorded.recorded_processes(data)
    report["started_at"] = data.get("started_at")
    report["endpoints"] = asdict(endpoints) if endpoints is not None else None
    if endpoints is None:
        return report
    probes: dict[str, tuple[str, Callable[[], None]]] = {
        "kafka": (
            endpoints.kafka_bootstrap,
            lambda: probe_kafka(endpoints.kafka_bootstrap, _STATUS_PROBE_TIMEOUT_S),
        ),
        "redis": (
            endpoints.redis_url,
            lambda: probe_redis(endpoints.redis_url, _STATUS_PROBE_TIMEOUT_S),
        ),
    }
    for name, (where, probe) in probes.items():
        rec = processes.get(name)
        entry: dict[str, object] = {"endpoint": where, "embedded": rec is not None}
        if rec is not None:
            entry.update(pid=rec["pid"], port=rec.get("port"), log=rec.get("log"))
            entry["alive"] = alive(rec["pid"], rec["argv"])
        try:
            probe()
        except PROBE_ERRORS as exc:
            entry["answering"] = False
            entry["error"] = repr(exc)
        else:
            entry["answering"] = True
        report[name] = entry
    return report
