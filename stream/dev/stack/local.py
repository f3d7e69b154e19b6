"""LocalStack: start, check and stop a broker and Redis in this process, for tests and the demo.

What is embedded is spawned on free loopback ports and waited for until it answers a real
request; services given as arguments (the caller reads ``KAFKA_BOOTSTRAP_SERVERS`` /
``REDIS_URL``) are never started, only checked for readiness.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import TracebackType

from stream.dev.stack.children import (
    Child,
    EarlyExitError,
    StackError,
    free_port,
    log_tail,
    spawn,
    terminate,
    wait_for_child,
)
from stream.dev.stack.services import (
    kafka_bootstrap,
    redis_argv,
    redis_bin,
    redis_url,
    tansu_argv,
    tansu_bin,
    tansu_env,
)
from stream.endpoints import Endpoints
from stream.probes import probe_kafka, probe_redis, wait_external

_SPAWN_ATTEMPTS = 3


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
        self._kafka: Child | None = None
        self._redis: Child | None = None
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
            redis = self._start_redis(deadline)
        except BaseException:
            self.stop()
            raise
        self._endpoints = Endpoints(
            kafka_bootstrap=kafka,
            redis_url=redis,
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
            terminate(child.proc)

    def stop_redis(self) -> None:
        """Stop the embedded Redis but keep its port, to simulate a Redis outage."""
        self._require_embedded_redis("stop")
        child, self._redis = self._redis, None
        if child is not None:
            terminate(child.proc)

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

    def children(self) -> dict[str, Child]:
        """Return the running embedded children by service name, for `up` to record."""
        return {c.name: c for c in (self._kafka, self._redis) if c is not None}

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
            wait_external(
                "Kafka",
                bootstrap,
                lambda: probe_kafka(bootstrap),
                deadline,
                "KAFKA_BOOTSTRAP_SERVERS",
            )
            return bootstrap
        binary = tansu_bin()
        self._kafka = self._spawn_with_retry(
            "kafka",
            lambda port: tansu_argv(binary, port),
            lambda port: probe_kafka(kafka_bootstrap(port)),
            deadline,
            tansu_env(),
        )
        return kafka_bootstrap(self._kafka.port)

    def _start_redis(self, deadline: float) -> str:
        """Check the external Redis or spawn the embedded one; return its URL."""
        if self._external_redis is not None:
            url = self._external_redis
            wait_external("Redis", url, lambda: probe_redis(url), deadline, "REDIS_URL")
            return url
        self._redis = self._spawn_redis(free_port(), deadline, retry=True)
        self._redis_port = self._redis.port
        return redis_url(self._redis.port)

    def _spawn_redis(self, port: int, deadline: float, *, retry: bool) -> Child:
        """Spawn the embedded Redis (on port, or a fresh one if it is taken and retry is set)."""
        binary = redis_bin()
        data_dir = self._state_dir / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        ports = [port]  # the first attempt uses port; retries (if allowed) use fresh ones
        return self._spawn_with_retry(
            "redis",
            lambda p: redis_argv(binary, p, data_dir),
            lambda p: probe_redis(redis_url(p)),
            deadline,
            None,
            port_source=lambda: ports.pop() if ports else free_port(),
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
        port_source: Callable[[], int] = free_port,
        attempts: int = _SPAWN_ATTEMPTS,
    ) -> Child:
        """Spawn a child and wait for it; on an early exit (port taken) retry on a new port."""
        log_path = self._state_dir / f"{name}.log"
        for attempt in range(1, attempts + 1):
            port = port_source()
            argv = argv_for(port)
            proc = spawn(argv, log_path, env)
            child = Child(name=name, port=port, argv=argv, log_path=log_path, proc=proc)
            try:
                wait_for_child(f"{name} on port {port}", partial(probe_for, port), deadline, proc)
            except EarlyExitError as exc:
                terminate(proc)
                if attempt < attempts and time.monotonic() < deadline:
                    continue
                raise StackError(self._failure(name, str(exc), log_path)) from exc
            except TimeoutError as exc:
                terminate(proc)
                raise StackError(self._failure(name, str(exc), log_path)) from exc
            except BaseException:
                terminate(proc)
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
            f"--- last lines of {log_path.name} ---\n{log_tail(log_path)}"
        )
