"""``engagement bench --part ingest``: the HTTP ingest service under load, over real HTTP.

An ``engagement ingest`` process runs on the embedded stack (identity policy ``as-is``, so no
identity map is needed). Two runs:

- **throughput**: xAPI statements in arrays of ``batch`` (default 100), posted by a few
  concurrent clients; statements accepted per second, from the first request to the last
  reply (each reply comes after the broker acknowledged the request's events);
- **latency**: single statements at a steady ``rate`` of requests per second for
  ``seconds``, each sent at its scheduled time whether or not earlier ones have been
  answered (open loop); the p50/p95/p99/max of request → reply.

Every reply must be a 200 with every statement taken; anything else fails the run.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from schemas.settings import load_settings
from stream.dev.bench.figures import percentile
from stream.dev.processes import Child, free_port
from stream.endpoints import Endpoints
from stream.topics import ensure_topics

CLIENTS = 8
START = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)


def statement(n: int) -> dict[str, Any]:
    """A statement as Moodle's xAPI plugin sends one: a student viewing a page of a course."""
    return {
        "id": str(uuid.UUID(int=n + 1, version=4)),
        "actor": {
            "objectType": "Agent",
            "name": "A Student",
            "account": {"homePage": "https://vle.example.ac.uk", "name": f"B{n % 1000:07d}"},
        },
        "verb": {"id": "http://id.tincanapi.com/verb/viewed", "display": {"en": "viewed"}},
        "object": {
            "id": f"https://vle.example.ac.uk/mod/page/view.php?id={n % 300}",
            "definition": {"type": "http://activitystrea.ms/schema/1.0/page"},
        },
        "context": {
            "platform": "Moodle",
            "contextActivities": {
                "grouping": [
                    {
                        "id": f"https://vle.example.ac.uk/course/view.php?id={n % 40}",
                        "definition": {"type": "http://purl.imsglobal.org/vocab/lis/v2/course"},
                    }
                ]
            },
        },
        "timestamp": (START + timedelta(seconds=n)).isoformat(),
    }


def ingest_bench(
    endpoints: Endpoints, workdir: Path, statements: int, batch: int, rate: int, seconds: int
) -> dict[str, Any]:
    """Run both phases against a fresh ingest process; return the figures."""
    key, token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    prefix = f"ib{secrets.token_hex(3)}"
    settings = load_settings(pseudonym_key=key, topic_prefix=f"{prefix}.", key_prefix=prefix)
    ensure_topics(endpoints.kafka_bootstrap, settings.topics, settings.partitions)
    port = free_port()
    env = {
        **endpoints.as_env(),
        "ENGAGEMENT_PSEUDONYM_KEY": key,
        "ENGAGEMENT_TOPIC_PREFIX": f"{prefix}.",
        "ENGAGEMENT_KEY_PREFIX": prefix,
        "ENGAGEMENT_INGEST_PORT": str(port),
        "ENGAGEMENT_INGEST_TOKENS": f"bench={token}",
        "ENGAGEMENT_IDENTITY_POLICY": "as-is",
        "ENGAGEMENT_LOG_LEVEL": "WARNING",
    }
    child = Child("bench-ingest", ["ingest"], env, workdir).start()
    try:
        child.wait_http(port)
        url = f"http://127.0.0.1:{port}/xapi/statements"
        figures = asyncio.run(_run(url, token, statements, batch, rate, seconds))
        figures["ingest_peak_rss_mib"] = child.peak_rss_mib()
        return figures
    finally:
        child.stop()


async def _run(
    url: str, token: str, statements: int, batch: int, rate: int, seconds: int
) -> dict[str, Any]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "X-Experience-API-Version": "1.0.3",
    }
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        # Warm-up: the producer's connections and the service's first requests.
        await _post(session, url, [statement(10_000_000 + n) for n in range(batch)])
        bodies = [
            json.dumps([statement(n) for n in range(i, min(i + batch, statements))]).encode()
            for i in range(0, statements, batch)
        ]
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)
        started = time.perf_counter()
        await asyncio.gather(*(_drain(session, url, queue) for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - started
        samples = await _steady(session, url, rate, seconds, offset=statements)
    ordered = sorted(samples)
    return {
        "statements": statements,
        "batch": batch,
        "clients": CLIENTS,
        "seconds": elapsed,
        "statements_per_second": statements / elapsed,
        "latency_rate": rate,
        "latency_requests": len(ordered),
        "latency_ms": {
            "p50": percentile(ordered, 0.50),
            "p95": percentile(ordered, 0.95),
            "p99": percentile(ordered, 0.99),
            "max": ordered[-1],
        },
    }


async def _post(session: aiohttp.ClientSession, url: str, body: Any) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with session.post(url, data=data) as response:
        reply = await response.read()
        if response.status != 200:
            msg = f"the ingest answered {response.status}: {reply[:300]!r}"
            raise RuntimeError(msg)


async def _drain(session: aiohttp.ClientSession, url: str, queue: asyncio.Queue[bytes]) -> None:
    while not queue.empty():
        await _post(session, url, queue.get_nowait())


async def _steady(
    session: aiohttp.ClientSession, url: str, rate: int, seconds: int, offset: int
) -> list[float]:
    """Single statements at ``rate`` requests/s for ``seconds``; each request's latency (ms)."""
    samples: list[float] = []

    async def one(n: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        sent = time.perf_counter()
        await _post(session, url, statement(offset + n))
        samples.append((time.perf_counter() - sent) * 1000)

    begin = time.perf_counter() + 0.1
    await asyncio.gather(*(one(n, begin + n / rate) for n in range(rate * seconds)))
    return samples
