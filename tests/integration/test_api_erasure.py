"""Erasure on a compliance request, over real HTTP: only compliance may ask; afterwards no key
or value names the student, the audit entry names nobody, and the student's export says when
and why their data was erased."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from schemas.access import Role
from stream.dev.stack import Endpoints
from tests.integration.test_api import STUDENT, ApiServer, seed_student, settings_for

pytestmark = pytest.mark.integration

COMPLIANCE = "ST-COMPLIANCE-1"


@pytest.fixture
def served(stack: Endpoints, prefix: str) -> Iterator[ApiServer]:
    with ApiServer(settings_for(prefix), stack.redis_url, stack.kafka_bootstrap) as server:
        yield server


def _everything(server: ApiServer) -> list[tuple[str, str]]:
    """(key, value text) of every key under the deployment's prefix, whatever its type."""
    found: list[tuple[str, str]] = []

    async def work(client: aioredis.Redis) -> None:
        async for raw in client.scan_iter(match=f"{server.settings.key_prefix}:*", count=500):
            key = raw.decode()
            kind = (await client.type(key)).decode()
            if kind == "string":
                value = [await client.get(key)]
            elif kind == "hash":
                value = list((await client.hgetall(key)).items())
            elif kind == "list":
                value = await client.lrange(key, 0, -1)
            elif kind == "set":
                value = list(await client.smembers(key))
            elif kind == "zset":
                value = await client.zrange(key, 0, -1)
            else:
                value = [kind]
            found.append((key, repr(value)))

    server.seed(work)
    return found


def test_only_compliance_erases_and_nothing_names_the_student_afterwards(
    served: ApiServer,
) -> None:
    seed_student(served)
    pseudonym = served.pseudonym(STUDENT)
    with served.client(STUDENT, Role.STUDENT) as http:
        assert http.get("/v1/me").status_code == 200  # an audited read to be erased too
    path = f"/v1/students/{STUDENT}/erasure"
    body = {"reason": "subject request 2026-114"}
    for who, roles, status in [
        (None, (), 401),
        (STUDENT, (Role.STUDENT,), 403),
        ("T-API-1", (Role.TUTOR,), 403),
        ("IN-1", (Role.INSIGHTS,), 403),
    ]:
        with served.client(who, *roles) as http:
            assert http.post(path, json=body).status_code == status, who
    assert any(pseudonym in value or pseudonym in key for key, value in _everything(served))

    with served.client(COMPLIANCE, Role.COMPLIANCE) as http:
        naming = http.post(path, json={"reason": f"asked by {STUDENT}"})
        assert naming.status_code == 400  # a reason that names the student is refused
        done = http.post(path, json=body)
    assert done.status_code == 200, done.text
    assert done.json()["keys_deleted"] > 0 and done.json()["reason"] == body["reason"]

    leftovers = [
        key
        for key, value in _everything(served)
        if pseudonym in key or pseudonym in value or STUDENT in key or STUDENT in value
    ]
    assert leftovers == []
    erasure = next(e for e in served.audit() if e.outcome == "erased")
    assert erasure.who == COMPLIANCE and erasure.pseudonym is None

    with served.client(STUDENT, Role.STUDENT) as http:
        export = http.get("/v1/me/export")
    assert export.status_code == 200
    document = json.loads(zipfile.ZipFile(io.BytesIO(export.content)).read("export.json"))
    assert document["erasure"]["reason"] == body["reason"]
    assert document["erasure"]["erased_at"] == done.json()["erased_at"]
    assert document["interventions"] == []
