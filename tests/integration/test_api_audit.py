"""The audit log on the session's real Redis: appended only, per student, trimmed by age;
the review queue's reads reach it too. `engagement api` as a process: a bad configuration
stops it with one line; a good one serves students signed in by the local issuer."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from schemas.keys import Keys
from schemas.review import DEFAULT_TEAMS, load_teams
from sinks.review.rules import ReviewError
from sinks.stores.audit import AuditLog
from sinks.stores.review import ReviewQueue
from stream.dev.processes import Child, free_port
from stream.dev.stack import Endpoints
from tests.integration.harness import Pipeline
from tests.integration.test_review import RecordingLog, nudge, queue_invitation

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
P1, P2 = "p_" + "1" * 32, "p_" + "2" * 32


@pytest_asyncio.fixture
async def client(stack: Endpoints) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest.mark.asyncio
async def test_entries_are_kept_per_student_newest_first(
    client: aioredis.Redis, prefix: str
) -> None:
    log = AuditLog(client, prefix, retention_days=30)
    await log.record(who="T1", role="tutor", pseudonym=P1, action="read a", now=NOW)
    await log.record(who="T2", role="support", pseudonym=P2, action="read b", now=NOW)
    await log.record(
        who="T3", role="tutor", pseudonym=P1, action="read c", now=NOW, outcome="refused"
    )
    assert [(e.who, e.outcome) for e in await log.about(P1)] == [("T3", "refused"), ("T1", "read")]
    assert [e.action for e in await log.about(P1, limit=1)] == ["read c"]
    assert [e.pseudonym for e in await log.latest()] == [P1, P2, P1]
    with pytest.raises(ValueError, match="timezone-aware"):
        await log.record(
            who="T1", role="tutor", pseudonym=P1, action="x", now=NOW.replace(tzinfo=None)
        )


@pytest.mark.asyncio
async def test_entries_older_than_the_retention_are_trimmed(
    client: aioredis.Redis, prefix: str
) -> None:
    log = AuditLog(client, prefix, retention_days=30)
    for days in (40, 35, 1):
        when = NOW - timedelta(days=days)
        await log.record(who="T1", role="tutor", pseudonym=P1, action=f"{days}", now=when)
    await log.record(who="T1", role="tutor", pseudonym=P2, action="now", now=NOW)
    assert [e.action for e in await log.latest()] == ["now", "1"]
    assert [e.action for e in await log.about(P1)] == ["1"]
    keys = Keys(prefix)
    assert 29 * 86_400 < await client.ttl(keys.audit_student(P2)) <= 30 * 86_400
    assert await log.trim(NOW + timedelta(days=60)) == 2  # a retention job empties it
    assert await log.latest() == []


@pytest.mark.asyncio
async def test_a_read_of_many_students_leaves_one_entry_each_in_one_call(
    client: aioredis.Redis, prefix: str
) -> None:
    log = AuditLog(client, prefix, retention_days=30)
    await log.record(
        who="C1", role="compliance", pseudonym=P1, action="old", now=NOW - timedelta(days=40)
    )
    P3 = "p_" + "3" * 32
    await log.record_many(
        who="C1", role="compliance", pseudonyms=[P1, P2, P3], action="GET report", now=NOW
    )
    await log.record_many(who="C1", role="compliance", pseudonyms=[], action="none", now=NOW)
    assert [e.pseudonym for e in await log.latest()] == [P3, P2, P1]  # the old entry trimmed
    for pseudonym in (P1, P2, P3):
        assert [(e.who, e.action) for e in await log.about(pseudonym)] == [("C1", "GET report")]
        assert 29 * 86_400 < await client.ttl(Keys(prefix).audit_student(pseudonym)) <= 30 * 86_400


@pytest.mark.asyncio
async def test_the_review_queues_reads_are_kept_as_long_as_configured(
    client: aioredis.Redis, prefix: str
) -> None:
    review = ReviewQueue(
        client,
        prefix,
        load_teams(DEFAULT_TEAMS),
        RecordingLog(client, prefix).append,
        audit_retention_days=10,
    )
    await queue_invitation(review, 8, "T001", NOW)
    await review.visible_to("T001", now=NOW)
    key = Keys(prefix).audit_student(nudge(8).pseudonym)
    assert 9 * 86_400 < await client.ttl(key) <= 10 * 86_400


@pytest.mark.asyncio
async def test_the_review_queues_reads_reach_the_students_audit(
    client: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    review = ReviewQueue(
        client, prefix, load_teams(DEFAULT_TEAMS), RecordingLog(client, prefix).append
    )
    nudge_id = await queue_invitation(review, 7, "T001", NOW)
    pseudonym = nudge(7).pseudonym
    await review.show(nudge_id, "T001", NOW + timedelta(minutes=1))
    with pytest.raises(ReviewError):
        await review.show(nudge_id, "T002", NOW + timedelta(minutes=2))
    await review.visible_to("T001", now=NOW + timedelta(minutes=3))
    seen = [
        (e.who, e.action, e.outcome)
        for e in await AuditLog(client, prefix, retention_days=1).about(pseudonym)
    ]
    assert seen == [
        ("T001", "review list", "read"),
        ("T002", "review show", "refused"),
        ("T001", "review show", "read"),
    ]
    assert await client.llen(review.audit_key) == 3  # the review queue's own list still has them


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "ENGAGEMENT_OIDC_ISSUER is not set"),
        ({"ENGAGEMENT_OIDC_ISSUER": "local"}, "ENGAGEMENT_LOCAL_SETUP=yes"),
        ({"ENGAGEMENT_OIDC_ISSUER": "http://127.0.0.1:9/none"}, "did not answer"),
        # The settings' own check: a heading, then one line per wrong variable.
        ({"ENGAGEMENT_API_PORT": "99999"}, "- ENGAGEMENT_API_PORT: Input should be less"),
    ],
)
def test_a_bad_configuration_stops_the_api_with_one_line(
    stack: Endpoints, tmp_path: Path, env: dict[str, str], says: str
) -> None:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("ENGAGEMENT_", "KAFKA_", "REDIS_"))
    }
    done = subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "stream.cli", "api"],
        env={
            **clean,
            **stack.as_env(),
            "ENGAGEMENT_PSEUDONYM_KEY": "api-startup-test-key-0123456789abcdef",
            "ENGAGEMENT_STATE_DIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == (2 if "ENGAGEMENT_API_PORT" in env else 1), done.stderr
    assert "Traceback" not in done.stderr


def test_the_api_process_serves_a_student_signed_in_by_the_local_issuer(
    pipeline: Pipeline,
) -> None:
    port = free_port()
    pipeline.env.update(
        {
            "ENGAGEMENT_API_PORT": str(port),
            "ENGAGEMENT_API_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "ENGAGEMENT_OIDC_ISSUER": "local",
            "ENGAGEMENT_LOCAL_SETUP": "yes",
            "ENGAGEMENT_SESSION_SECRET": "api-process-test-session-secret-0123456789",
        }
    )
    api = Child("api", ["api"], pipeline.env, pipeline.workdir).start()
    pipeline.children.append(api)
    api.wait_http(port)
    student = "S-API-PROC-1"
    token = pipeline.cli("token", "--role", "student", "--subject", student).strip()
    tutor = pipeline.cli("token", "--role", "tutor", "--subject", "T-PROC").strip()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        mine = http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert mine.status_code == 200, mine.text
        assert mine.json()["engagement"]["score"] is None  # nothing held yet
        refused = http.get(f"/v1/students/{student}", headers={"Authorization": f"Bearer {tutor}"})
        assert refused.status_code == 404
        assert http.get("/v1/me").status_code == 401
        assert http.get("/readyz").status_code == 200
    api.stop()
    assert student not in api.log_path.read_text(encoding="utf-8", errors="replace")
