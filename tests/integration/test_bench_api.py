"""``engagement bench api`` at a tiny size, so the command cannot rot: it seeds students the
way the worker and notifier store them, starts a real API process, drives both endpoints over
real HTTP, writes its figures and leaves none of its keys behind."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from stream.dev.stack import Endpoints

pytestmark = pytest.mark.integration


async def _keys(redis_url: str, prefix: str) -> list[bytes]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    finally:
        await client.aclose()


def test_the_api_bench_answers_every_request_and_cleans_up(
    stack: Endpoints, tmp_path: Path
) -> None:
    out = tmp_path / "api.json"
    env = {**os.environ, **stack.as_env(), "ENGAGEMENT_LOG_LEVEL": "WARNING"}
    args = ["bench", "api", "--students", "60", "--seconds", "2", "--rate", "20"]
    args += ["--review-rate", "5", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GET /v1/me: 40 requests" in done.stdout
    figures = json.loads(out.read_text())["api"]
    assert figures["students"] == 60
    assert figures["review_tutors"] == 2  # tutors of students 0 and 30 (one in ten queued)
    me, review = figures["me"], figures["review"]
    assert (me["requests"], me["statuses"], me["errors"]) == (40, {"200": 40}, {})
    assert me["distinct_users"] == 40
    assert (review["requests"], review["statuses"]) == (10, {"200": 10})
    for run in (me, review):
        lat = run["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert figures["redis_used_mib"] > 0 and figures["api_peak_rss_mib"] > 0
    assert asyncio.run(_keys(stack.redis_url, figures["key_prefix"])) == []
