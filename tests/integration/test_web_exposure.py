"""Nothing internal on the network: over real HTTP, against running processes.

The worker and the notifier serve only health, readiness, metrics and the counts-only status
page: Faust's own views (`/router/` shows the cluster's worker URLs, `/table/` table data, and
the statistics, graph and performance views) answer 404. Every web server of the product, and
the embedded broker and Redis, listen on loopback unless configured otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stream.dev.stack import Endpoints
from stream.probes import http_get
from tests.integration.harness import Pipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Faust's built-in views, each with and without the trailing slash it registers.
FAUST_VIEWS = [
    "/router/",
    "/router",
    "/table/",
    "/table",
    "/table/some-table/",
    "/graph/",
    "/assignment/",
    "/performance/",
]
OURS = ["/healthz", "/metrics", "/status", "/status.json"]
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp
LOOPBACK_HEX = {
    "0100007F",  # 127.0.0.1 (little-endian)
    "00000000000000000000000001000000",  # ::1
    "0000000000000000FFFF00000100007F",  # ::ffff:127.0.0.1
}


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel prints them) of every socket listening on ``port``."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text(encoding="ascii").splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == LISTEN and int(hex_port, 16) == port:
                found.add(address)
    return found


def assert_loopback_only(what: str, port: int) -> None:
    addresses = listening_addresses(port)
    assert addresses, f"{what}: nothing listens on port {port} (the check would prove nothing)"
    assert addresses <= LOOPBACK_HEX, f"{what} listens beyond loopback: {sorted(addresses)}"


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
def test_faust_views_are_off_and_every_server_listens_on_loopback(
    pipeline: Pipeline, stack: Endpoints
) -> None:
    # No ENGAGEMENT_WEB_BIND is set: the defaults are what is checked.
    assert "ENGAGEMENT_WEB_BIND" not in pipeline.env
    pipeline.start("worker", "worker")
    pipeline.start("notifier", "notifier")
    pipeline.start("receiver", "receiver")
    for name in ("worker", "notifier"):
        base = f"http://127.0.0.1:{pipeline.ports[name]}"
        for path in FAUST_VIEWS:
            status, body = http_get(base + path)
            assert status == 404, f"{name} {path}: {status} {body[:200]!r}"
        for path in OURS:
            assert http_get(base + path)[0] == 200, f"{name} {path}"
        assert http_get(base + "/readyz")[0] in {200, 503}
        # Faust's index at / stays: it says only that the server is up.
        status, body = http_get(base + "/")
        assert (status, json.loads(body)) == (200, {"status": "OK"}), name
        assert_loopback_only(name, pipeline.ports[name])
    assert_loopback_only("receiver", pipeline.ports["receiver"])
    broker = urlsplit(f"kafka://{stack.kafka_bootstrap.split(',')[0]}")
    redis = urlsplit(stack.redis_url)
    for what, url in (("broker", broker), ("redis", redis)):
        if url.hostname == "127.0.0.1" and url.port:  # the embedded stack, not an external one
            assert_loopback_only(what, url.port)
