"""Child processes of the local stack: spawn with a log file, wait until they answer, stop them.

Each embedded service runs in its own session (so a signal reaches the whole group) with its
output appended to ``<state dir>/<name>.log``, whose tail goes into every error message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stream.endpoints import process_alive
from stream.probes import ServiceError, wait_until

LOOPBACK = "127.0.0.1"
_STOP_GRACE_S = 5.0
_KILL_WAIT_S = 5.0
_POLL_S = 0.05
_LOG_TAIL_LINES = 30

# One error class for "a service did not start, answer or stop", whoever waited for it: what
# the shared probes raise about an external service is then a StackError to this stack's
# callers too, as it was when the probes lived here.
StackError = ServiceError
"""A local service failed to start, answer or stop; the message says what to do next."""

# Popen objects of processes started by `up` in this interpreter: kept so that they are not
# garbage-collected while running (a ResourceWarning) and so that `down` can reap them.
DETACHED: dict[int, subprocess.Popen[bytes]] = {}


@dataclass
class Child:
    """One running embedded service: its process, port, command line and log file."""

    name: str
    port: int
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes]

    def record(self) -> dict[str, object]:
        """Return the JSON-able facts `down` and `status` need to find the process again."""
        return {
            "pid": self.proc.pid,
            "port": self.port,
            "argv": self.argv,
            "log": str(self.log_path),
        }


class EarlyExitError(StackError):
    """A child process exited before it answered (caught by the stack, which retries or
    reports a StackError with the child's log)."""


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago, for a child to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """Return the last lines of a child's log, so an error message can show why it failed."""
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return f"(no log at {path})"
    text = data.decode("utf-8", errors="replace").rstrip()
    tail = "\n".join(text.splitlines()[-lines:])
    return tail or "(log is empty)"


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    """Start a child in its own session with output appended to its log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting: {argv}\n".encode())
        log.flush()
        try:
            return subprocess.Popen(  # noqa: S603 - argv is built here from resolved binaries
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            msg = f"cannot run {argv[0]}: {exc}; check that the binary exists and is executable"
            raise StackError(msg) from exc


def wait_for_child(
    what: str, probe: Callable[[], None], deadline: float, proc: subprocess.Popen[bytes]
) -> None:
    """Poll probe until the child answers; raise EarlyExitError if it exits first, or
    TimeoutError with the last cause at the deadline."""

    def still_running() -> None:
        if proc.poll() is not None:
            msg = f"{what} exited with status {proc.returncode} before answering"
            raise EarlyExitError(msg)

    wait_until(what, probe, deadline, still_running)


def terminate(proc: subprocess.Popen[bytes], grace: float = _STOP_GRACE_S) -> bool:
    """Stop a child (SIGTERM, then SIGKILL after the grace period) and reap it."""
    if proc.poll() is not None:
        return False
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal a child's whole session (it is the group leader), ignoring one already gone."""
    with contextlib.suppress(ProcessLookupError):
        try:
            os.killpg(pid, sig)
        except PermissionError:
            os.kill(pid, sig)


def alive(pid: int, argv: list[str]) -> bool:
    """Tell whether a recorded process is running, reaping it first if this process owns it."""
    proc = DETACHED.get(pid)
    if proc is not None:
        return proc.poll() is None
    return process_alive(pid, argv)


def terminate_pid(pid: int, argv: list[str], grace: float = _STOP_GRACE_S) -> bool:
    """Stop a recorded process this interpreter may not own: SIGTERM, then SIGKILL."""
    proc = DETACHED.pop(pid, None)
    if proc is not None:
        return terminate(proc, grace)
    if not process_alive(pid, argv):
        return False
    _signal_group(pid, signal.SIGTERM)
    if _wait_gone(pid, argv, time.monotonic() + grace):
        return True
    _signal_group(pid, signal.SIGKILL)
    if not _wait_gone(pid, argv, time.monotonic() + _KILL_WAIT_S):
        msg = f"process {pid} ({argv[0]}) survived SIGKILL; check it with `ps -p {pid}`"
        raise StackError(msg)
    return True


def _wait_gone(pid: int, argv: list[str], deadline: float) -> bool:
    """Poll until a process has exited or the deadline passes; return whether it exited."""
    while process_alive(pid, argv):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True
