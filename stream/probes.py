"""Readiness probes: does a Kafka broker, a Redis server or an HTTP endpoint answer right now?

A process checks its broker and Redis before it starts (``stream.compose.preflight``), the
development stack waits on the same probes for the services it spawns, and
``engagement check`` asks a running worker's ``/readyz``. Each probe sends a real request, so
an open port that does not speak the protocol yet does not count as ready.
"""

from __future__ import annotations

import socket
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import redis

from schemas.errors import EngagementError

__all__ = [
    "PROBE_ERRORS",
    "ProbeError",
    "ServiceError",
    "http_get",
    "probe_kafka",
    "probe_kafka_login",
    "probe_redis",
    "redacted",
    "wait_external",
    "wait_for_services",
    "wait_until",
]

PROBE_TIMEOUT_S = 2.0
POLL_S = 0.05


class ServiceError(EngagementError):
    """A broker or Redis failed to start, answer or stop; the message says what to do next."""


class ProbeError(ServiceError):
    """A readiness probe got an answer that is not a valid reply (one of ``PROBE_ERRORS``:
    worth another try while waiting)."""


def split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """Parse "host:port,host:port" (optionally "PLAINTEXT://host:port") into addresses."""
    addresses: list[tuple[str, int]] = []
    for raw in bootstrap.split(","):
        item = raw.strip().rsplit("://", 1)[-1]
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            msg = f"bad Kafka bootstrap address {raw!r}; expected host:port[,host:port]"
            raise ServiceError(msg)
        addresses.append((host.strip("[]"), int(port)))
    if not addresses:
        msg = f"empty Kafka bootstrap servers {bootstrap!r}; expected host:port[,host:port]"
        raise ServiceError(msg)
    return addresses


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """Read exactly size bytes or fail: a short read means the broker hung up."""
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            msg = "connection closed mid-response"
            raise ProbeError(msg)
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
            raise ProbeError(msg)
        resp = _recv_exact(sock, size)
    got_id, _throttle, count = struct.unpack_from(">iii", resp, 0)
    if got_id != correlation_id:
        msg = f"correlation id {got_id} != {correlation_id}"
        raise ProbeError(msg)
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
        raise ProbeError(msg)
    return brokers


def probe_kafka(bootstrap: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Succeed if any bootstrap server answers a Metadata request; raise the last error."""
    last: Exception | None = None
    for host, port in split_bootstrap(bootstrap):
        try:
            _kafka_metadata(host, port, timeout)
        except (OSError, ProbeError, struct.error, UnicodeDecodeError) as exc:
            last = exc
        else:
            return
    if last is not None:
        raise last


def probe_kafka_login(
    bootstrap: str, options: Mapping[str, object], timeout: float = PROBE_TIMEOUT_S
) -> None:
    """Succeed if a broker accepts a TLS and/or SASL login with ``options`` (the raw Metadata
    probe cannot log in); the client's error otherwise."""
    from kafka import KafkaAdminClient  # kafka-python: only when a login is needed
    from kafka.errors import KafkaError

    try:
        admin: Any = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="engagement-probe",
            request_timeout_ms=int(timeout * 1000),
            **options,
        )
    except KafkaError as exc:  # e.g. NoBrokersAvailable, a refused login
        msg = f"{type(exc).__name__}: {exc}"
        raise ProbeError(msg) from exc
    admin.close()


def redacted(url: str) -> str:
    """A service URL fit for a message: a password in it is replaced by ***."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else "***@"
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=user + host))


def probe_redis(url: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Succeed if Redis at url answers PING; raise the client's error otherwise."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        if not client.ping():
            msg = "PING did not return PONG"
            raise ProbeError(msg)
    finally:
        client.close()


# What a probe raises while a service is not (yet) answering: worth another try.
PROBE_ERRORS = (OSError, ProbeError, struct.error, UnicodeDecodeError, redis.RedisError)


def wait_until(
    what: str,
    probe: Callable[[], None],
    deadline: float,
    before_each: Callable[[], None] | None = None,
) -> None:
    """Poll probe until it succeeds; raise TimeoutError with the last cause at the deadline.

    ``before_each`` runs ahead of every attempt and may raise to stop waiting early (the
    development stack uses it to notice a child process that has already exited).
    """
    while True:
        if before_each is not None:
            before_each()
        try:
            probe()
        except PROBE_ERRORS as exc:
            if time.monotonic() >= deadline:
                msg = f"{what} did not answer in time; last error: {exc!r}"
                raise TimeoutError(msg) from exc
            time.sleep(POLL_S)
        else:
            return


def wait_external(
    name: str, where: str, probe: Callable[[], None], deadline: float, setting: str
) -> None:
    """Wait for a service this process does not run to answer; raise ServiceError naming the
    setting that points at it."""
    try:
        wait_until(f"{name} at {where}", probe, deadline)
    except TimeoutError as exc:
        msg = (
            f"external {name} at {where} (from {setting}) does not answer: {exc}. "
            f"Start it, fix {setting}, or unset {setting} to use the embedded one."
        )
        raise ServiceError(msg) from exc


def wait_for_services(
    kafka_bootstrap: str,
    redis_url: str,
    timeout: float,
    kafka_options: Mapping[str, object] | None = None,
) -> None:
    """Wait until the broker and then Redis answer, both within ``timeout`` seconds in all.

    With ``kafka_options`` (TLS or SASL, from ``Settings.kafka_client_options``) the broker
    must also accept the login."""
    deadline = time.monotonic() + timeout
    options = kafka_options or {}
    wait_external(
        "Kafka",
        kafka_bootstrap,
        (lambda: probe_kafka_login(kafka_bootstrap, options))
        if options
        else (lambda: probe_kafka(kafka_bootstrap)),
        deadline,
        "KAFKA_BOOTSTRAP_SERVERS",
    )
    wait_external(
        "Redis", redacted(redis_url), lambda: probe_redis(redis_url), deadline, "REDIS_URL"
    )


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET a loopback URL; (status, body), or (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  # loopback only
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (urllib.error.URLError, OSError):
        return 0, b""
