"""The API over real HTTP: uvicorn on a free port, the session's real Redis (and broker).

A student reads their engagement, records, opt-outs, who has looked at their data and their
export; opting out through the API suppresses the next nudge; refusals are problem details;
no student id reaches a log line or a metric.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import threading
import time
import uuid
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import redis.asyncio as aioredis
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa

from agents.model.eventtime import local_day, to_epoch_ms
from agents.model.pseudonym import Pseudonymiser
from agents.store.reference import ReferenceStore
from schemas.access import Role
from schemas.interventions import InterventionRecord, Outcome, Stage
from schemas.keys import Keys
from schemas.nudges import Channel, Route, Tier
from schemas.reference import RosterEntry
from schemas.settings import Settings, load_settings
from sinks.stores.audit import AuditEntry, AuditLog
from sinks.stores.interventions import InterventionLog
from stream.api.app import build_api, create_app
from stream.api.auth import Authenticator, KeySet, Provider
from stream.dev.processes import free_port
from stream.dev.stack import Endpoints
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration

ISSUER = "https://idp.test.example/realms/uni"
AUDIENCE = "engagement-stream"


class TokenMint:
    """A test identity provider: one RSA key, its JWKS, and tokens signed with it."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:12]
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwks = {"keys": [public | {"kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def authenticator(self) -> Authenticator:
        async def fetch() -> dict[str, Any]:
            return self.jwks

        provider = Provider(ISSUER, f"{ISSUER}/auth", f"{ISSUER}/token", f"{ISSUER}/jwks")
        return Authenticator(provider, KeySet(fetch), audience=AUDIENCE, algorithms=["RS256"])

    def token(self, subject: str, *roles: Role, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "roles": [r.value for r in roles],
            "iat": now,
            "exp": now + 600,
            **claims,
        }
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


class ApiServer:
    """The API app on uvicorn in a thread of its own, on a free loopback port."""

    def __init__(self, settings: Settings, redis_url: str, kafka: str | None) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.mint = TokenMint()
        self.api = build_api(settings, redis_url, kafka)
        self.app = create_app(self.api, authenticator=self.mint.authenticator())
        self.port = free_port()
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, access_log=False, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.pseudonym = Pseudonymiser(settings.pseudonym_key)
        self.keys = Keys(settings.key_prefix)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ApiServer:
        self.thread.start()
        wait_for("the API to start", lambda: self.server.started, 30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def client(self, subject: str | None = None, *roles: Role) -> httpx.Client:
        """An HTTP client signed in as ``subject`` with ``roles`` (none: not signed in)."""
        headers = {}
        if subject is not None:
            headers["Authorization"] = f"Bearer {self.mint.token(subject, *roles)}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def seed(self, work: Callable[[aioredis.Redis], Awaitable[None]]) -> None:
        """Run ``work`` on a fresh Redis connection (test data, written through the stores)."""

        async def go() -> None:
            client = aioredis.Redis.from_url(self.redis_url)
            try:
                await work(client)
            finally:
                await client.aclose()

        asyncio.run(go())

    async def put_roster(self, client: aioredis.Redis, entry: RosterEntry) -> None:
        """A roster entry, stored as the reference loader stores it."""
        store = ReferenceStore(client, self.settings.key_prefix, self.pseudonym, self.settings.zone)
        await store.put_roster(entry)

    def audit(self, limit: int = 1000) -> list[AuditEntry]:
        """The newest entries of the global audit log, newest first."""
        found: list[AuditEntry] = []

        async def work(client: aioredis.Redis) -> None:
            log = AuditLog(client, self.settings.key_prefix, retention_days=30)
            found.extend(await log.latest(limit))

        self.seed(work)
        return found


def settings_for(prefix: str) -> Settings:
    """Settings of one test deployment: its own key prefix and pseudonym key."""
    return load_settings(
        pseudonym_key=f"api-test-key-{uuid.uuid4().hex}",
        key_prefix=prefix,
        topic_prefix=f"{prefix}.",
    )


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status``; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("urn:engagement:problem:")
    assert body["detail"]
    return body


def queued_record(pseudonym: str, n: int, route: Route, queue: str) -> InterventionRecord:
    """The record of a referral or invitation the notifier queued for staff."""
    return InterventionRecord(
        record_id=f"r_{uuid.uuid4().hex}",
        nudge_id=f"n_{uuid.uuid4().hex}",
        pseudonym=pseudonym,
        rule_id="visa_no_contact_21d" if route is Route.COMPLIANCE else "no_activity_14d",
        rule_version=1,
        tier=Tier.REFERRAL,
        route=route,
        stage=Stage.NOTIFIER,
        outcome=Outcome.QUEUED_FOR_REVIEW,
        reason="review",
        detail=f"Queued for staff ({queue}).",
        decided_at=datetime.now(UTC) - timedelta(hours=n),
        summary="No activity for 14 days.",
        queue=queue,
    )


# -- the student's own data -----------------------------------------------------------------

STUDENT = "S-API-ME-1"
TUTOR = "T-API-1"


@pytest.fixture
def served(stack: Endpoints, prefix: str) -> Iterator[ApiServer]:
    with ApiServer(settings_for(prefix), stack.redis_url, stack.kafka_bootstrap) as server:
        yield server


def seed_student(server: ApiServer) -> int:
    """Twenty days of records for STUDENT: online and on campus every day until 8 days ago,
    at one of two sessions on each of two recent days. Returns today's day ordinal."""
    today = local_day(datetime.now(UTC), server.settings.zone)
    pseudonym = server.pseudonym(STUDENT)

    async def work(client: aioredis.Redis) -> None:
        entry = RosterEntry(student_id=STUDENT, personal_tutor=TUTOR, course="CS")
        await server.put_roster(client, entry)
        fields = {"first": str(to_epoch_ms(datetime.now(UTC) - timedelta(days=20)))}
        for day in range(today - 20, today - 7):
            fields[f"d:{day}:vle"] = "3"
            fields[f"d:{day}:swipe"] = "1"
        for day in (today - 3, today - 2):
            fields[f"a:{day}"] = "1,0,1,0"  # present at one session, absent from the other
        await client.hset(server.keys.state(pseudonym), mapping=fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
        log = InterventionLog(client, server.settings.key_prefix)
        await log.append(queued_record(pseudonym, 1, Route.PERSONAL_TUTOR, f"tutor:{TUTOR}"))

    server.seed(work)
    return today


def test_a_student_reads_their_engagement_with_each_rules_window_and_threshold(
    served: ApiServer,
) -> None:
    today = seed_student(served)
    with served.client(STUDENT, Role.STUDENT) as http:
        response = http.get("/v1/me")
    assert response.status_code == 200, response.text
    seen = response.json()["engagement"]
    assert seen["as_of"] == date.fromordinal(today).isoformat()
    # The score over the last 7 days: half the sessions attended, nothing else: 1 of 5.
    assert seen["score"] == 1.0 and seen["band"] == "very low"
    assert "1 out of 5 (very low)" in seen["explanation"]
    assert "attended 2 of 4 sessions" in seen["explanation"]
    rules = {rule["rule_id"]: rule for rule in seen["rules"]}
    quiet = rules["no_vle_activity_7d"]
    assert quiet["window_days"] == 7 and quiet["value"] == {"active_days": 0}
    assert quiet["holds"] is True and "7 days" in quiet["threshold"]
    attendance = rules["attendance_below_50pct_14d"]
    assert attendance["value"]["sessions_attended"] == 2
    assert attendance["value"]["sessions_expected"] == 4
    assert "50%" in attendance["threshold"]
    assert "visa_no_contact_21d" not in rules  # sponsored-visa students only
    vle = next(source for source in seen["sources"] if source["source"] == "vle")
    assert vle["events"] == 0 and vle["last_active"] == date.fromordinal(today - 8).isoformat()
    assert len(seen["weekly"]) == 8
    assert sum(week["events"]["vle"] for week in seen["weekly"]) == 13 * 3
    assert sum(week["active_days"]["attendance"] for week in seen["weekly"]) == 2


def test_a_student_sees_every_record_and_who_has_looked_at_their_data(served: ApiServer) -> None:
    seed_student(served)
    with served.client(TUTOR, Role.TUTOR) as tutor:
        assert tutor.get(f"/v1/students/{STUDENT}").json()["seen_as"] == "tutor"
    with served.client("T-SOMEONE-ELSE", Role.TUTOR) as other:
        is_problem(other.get(f"/v1/students/{STUDENT}/interventions"), 404)
    with served.client(STUDENT, Role.STUDENT) as http:
        records = http.get("/v1/me/interventions").json()
        log = http.get("/v1/me/access-log").json()
    assert [r["outcome"] for r in records] == ["queued_for_review"]
    assert "pseudonym" not in records[0]
    by = [(e["who"], e["role"], e["action"], e["outcome"]) for e in log]
    assert by == [
        ("you", "student", "GET /v1/me/access-log", "read"),
        ("you", "student", "GET /v1/me/interventions", "read"),
        ("T-SOMEONE-ELSE", "tutor", "GET /v1/students/{student_id}/interventions", "refused"),
        (TUTOR, "tutor", "GET /v1/students/{student_id}", "read"),
    ]
    # The audit log names the student by pseudonym only, the reader included.
    assert STUDENT not in json.dumps([e.model_dump(mode="json") for e in served.audit()])


def test_the_export_is_json_and_csv_of_everything_held(served: ApiServer) -> None:
    seed_student(served)
    pseudonym = served.pseudonym(STUDENT)
    with served.client(STUDENT, Role.STUDENT) as http:
        response = http.get("/v1/me/export")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert set(archive.namelist()) == {
        "README.txt",
        "export.json",
        "interventions.csv",
        "review_items.csv",
        "access_log.csv",
        "stored_data.csv",
    }
    document = json.loads(archive.read("export.json"))
    stored = document["stored"]
    for key in (served.keys.state(pseudonym), served.keys.roster(pseudonym)):
        assert key in stored
    assert stored[served.keys.roster(pseudonym)]["value"]["personal_tutor"] == TUTOR
    (record,) = document["interventions"]
    rows = list(csv.DictReader(io.StringIO(archive.read("interventions.csv").decode())))
    assert [row["record_id"] for row in rows] == [record["record_id"]]
    access = list(csv.DictReader(io.StringIO(archive.read("access_log.csv").decode())))
    assert access[0]["action"] == "GET /v1/me/export" and access[0]["who"] == "you"
    flat = list(csv.DictReader(io.StringIO(archive.read("stored_data.csv").decode())))
    assert {"family": "state", "field": "first"}.items() <= next(
        row for row in flat if row["family"] == "state" and row["field"] == "first"
    ).items()


def test_refusals_are_problem_details_and_no_student_id_reaches_logs_or_metrics(
    served: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seed_student(served)
    with served.client() as anonymous:
        assert anonymous.get("/healthz").json()["ok"] is True
        assert anonymous.get("/readyz").status_code == 200
        refused = anonymous.get("/v1/me")
        is_problem(refused, 401)
        assert refused.headers["www-authenticate"].startswith("Bearer")
        is_problem(anonymous.get(f"/v1/students/{STUDENT}"), 401)
        is_problem(anonymous.put("/v1/me/preferences", json={"opt_out_all": True}), 401)
        bad = anonymous.get("/v1/me", headers={"Authorization": "Bearer not-a-token"})
        assert is_problem(bad, 401)["detail"] == "malformed token"
        late = served.mint.token(STUDENT, Role.STUDENT, exp=int(time.time()) - 3600)
        expired = anonymous.get("/v1/me", headers={"Authorization": f"Bearer {late}"})
        assert is_problem(expired, 401)["detail"] == "expired"
        assert "/v1/me" in anonymous.get("/v1/openapi.json").json()["paths"]
    with served.client(TUTOR, Role.TUTOR) as tutor:
        is_problem(tutor.get("/v1/me"), 403)  # a role-wide refusal
        is_problem(tutor.get("/v1/students/has%20space"), 400)
        is_problem(tutor.get(f"/v1/students/{'S' * 65}"), 400)
        is_problem(tutor.get("/v1/nothing-here"), 404)
        is_problem(tutor.delete(f"/v1/students/{STUDENT}"), 405)
    with served.client(STUDENT, Role.STUDENT) as http:
        is_problem(http.put("/v1/me/preferences", json={"opted_out_channels": ["pigeon"]}), 400)
        is_problem(http.put("/v1/me/preferences", content=b"{not json"), 400)
        is_problem(http.put("/v1/me/preferences", json={"opt_out_all": "perhaps"}), 400)
        is_problem(http.get("/v1/me/access-log", params={"limit": "-1"}), 400)
        is_problem(http.put("/v1/me/preferences", content=b"[" * 100_000), 413)
        chunks = (b"[" * 1000 for _ in range(100))  # no Content-Length: counted as it comes
        is_problem(http.put("/v1/me/preferences", content=chunks), 413)
        metrics = http.get("/metrics").text
    assert 'route="/v1/students/{student_id}"' in metrics
    # Everything the server side logged (the test's own HTTP client logs its URLs).
    served_lines = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    )
    assert served_lines, "nothing was logged: the check would prove nothing"
    for text in (metrics, served_lines):
        assert STUDENT not in text and "has space" not in text


def test_an_opt_out_through_the_api_suppresses_the_next_nudge(
    pipeline: Pipeline, stack: Endpoints
) -> None:
    from tests.integration.test_notifier_process import prompt_for

    pipeline.start("receiver", "receiver")
    pipeline.start("notifier", "notifier")
    student = "S-API-OPT"
    nudge = prompt_for(pipeline, student)
    assert set(nudge.channels) == {Channel.EMAIL, Channel.APP}
    with (
        ApiServer(pipeline.settings, stack.redis_url, stack.kafka_bootstrap) as served,
        served.client(student, Role.STUDENT) as http,
    ):
        before = http.get("/v1/me/preferences").json()
        assert before["opted_out_channels"] == [] and set(before["channels"]) >= {"email", "app"}
        changed = http.put("/v1/me/preferences", json={"opted_out_channels": ["email", "app"]})
        assert changed.status_code == 202, changed.text
        wait_for(
            "the notifier to apply the opt-out",
            lambda: (
                set(http.get("/v1/me/preferences").json()["opted_out_channels"]) == {"email", "app"}
            ),
        )
        pipeline.publish_nudges([nudge])

        def suppressed() -> list[dict[str, Any]]:
            records = http.get("/v1/me/interventions").json()
            return [r for r in records if r["outcome"] == "suppressed"]

        (record,) = wait_for("the nudge's record", suppressed)
        assert record["reason"] == "opted_out" and record["nudge_id"] == nudge.nudge_id
        assert record["detail"]
    assert pipeline.received() == []


def test_a_redis_that_does_not_answer_is_a_503_problem_with_no_trace(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    with ApiServer(settings_for(prefix), nowhere, None) as served:
        with served.client() as anonymous:
            assert anonymous.get("/readyz").status_code == 503
        with served.client(STUDENT, Role.STUDENT) as http:
            answer = http.get("/v1/me")
            body = is_problem(answer, 503)
    assert answer.headers["retry-after"] == "5"
    assert body["type"] == "urn:engagement:problem:unavailable" and "Error" not in body["detail"]
    logged = [r.getMessage() for r in caplog.records if r.name == "engagement.api"]
    assert logged == ["api: Redis did not answer (ConnectionError) on GET /v1/me"]
    assert "Traceback" not in caplog.text and STUDENT not in "".join(logged)
