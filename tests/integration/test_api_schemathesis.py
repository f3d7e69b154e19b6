"""A property-based run of the API against its own OpenAPI document (Schemathesis), over HTTP.

Every operation of the document the server answers at ``/v1/openapi.json`` is called with
generated requests, valid and invalid, signed in as a student, a personal tutor, a compliance
officer and an insights user, against one server with seeded data. Every answer must be no
5xx, a documented status, content type, headers and body, and a refusal of every request the
document says is invalid. A second run fixes the path parameters to seeded students, review
items and corrections, so the operations that name one are answered past their 404 too.
Bounded and derandomized: the same cases on every run, in about a minute.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import hypothesis
import jwt
import pytest
import redis.asyncio as aioredis
import schemathesis
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from schemas.access import Role
from schemas.nudges import Route, Tier
from schemas.reference import RosterEntry
from schemas.settings import Settings, load_settings
from sinks.stores.corrections import CorrectionKind, CorrectionRequest, CorrectionStore, new_id
from sinks.stores.interventions import InterventionLog
from sinks.stores.review import ReviewQueue
from stream.api.app import openapi_document
from stream.api.session import install_signin
from stream.dev.stack import Endpoints
from tests.integration.test_api import ApiServer, queued_record
from tests.integration.test_api_staff import invitation

pytestmark = pytest.mark.integration

# The document as the server builds it (one test below checks the server answers exactly it).
schema = schemathesis.openapi.from_dict(openapi_document())

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
BOUNDED = hypothesis.settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# Who signs in, one per role, and the students each may see.
READERS = {
    Role.STUDENT: "S-FZ-SELF",
    Role.TUTOR: "T-FZ-TUTOR",
    Role.COMPLIANCE: "ST-COMPLIANCE-1",  # in the demo teams file
    Role.INSIGHTS: "I-FZ-1",
}
TUTEE, SPONSORED, ERASED = "S-FZ-TUTEE", "S-FZ-VISA", "S-FZ-ERASE"
SESSION_SECRET = "schemathesis-session-secret-0123456789abcdef"  # noqa: S105  # test secret


class Seeded:
    """The ids the seeded data answers to, filled in by the fixture."""

    nudges: ClassVar[dict[Role, str]] = {}
    corrections: ClassVar[dict[tuple[Role, str], str]] = {}  # by role, "accept" or "reject"


# Every status each operation answered in this session's run, by "METHOD /path".
ANSWERED: dict[str, set[int]] = {}


def settings_for(prefix: str) -> Settings:
    return load_settings(
        pseudonym_key=f"api-fuzz-key-{uuid.uuid4().hex}",
        key_prefix=prefix,
        topic_prefix=f"{prefix}.",
        session_secret=SESSION_SECRET,
    )


@pytest.fixture(scope="module")
def served(stack: Endpoints) -> Iterator[ApiServer]:
    """One server for the module, with sign-in's routes, and data each role may reach."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    server = ApiServer(settings_for(prefix), stack.redis_url, stack.kafka_bootstrap)
    install_signin(
        server.app, server.settings, client=server.api.redis,
        authenticator=server.mint.authenticator(),
    )  # fmt: skip
    with server:

        async def work(client: aioredis.Redis) -> None:
            key_prefix = server.settings.key_prefix
            for entry in (
                RosterEntry(student_id=READERS[Role.STUDENT], personal_tutor="T-FZ-ELSE"),
                RosterEntry(student_id=TUTEE, personal_tutor=READERS[Role.TUTOR]),
                RosterEntry(student_id=SPONSORED, sponsored_visa=True),
                RosterEntry(student_id=ERASED, sponsored_visa=True),
            ):
                await server.put_roster(client, entry)
            log = InterventionLog(client, key_prefix)
            queue = ReviewQueue(client, key_prefix, server.api.teams, log.append)
            corrections = CorrectionStore(client, key_prefix)
            for role, student, where in (
                (Role.STUDENT, READERS[Role.STUDENT], "tutor:T-FZ-ELSE"),
                (Role.TUTOR, TUTEE, f"tutor:{READERS[Role.TUTOR]}"),
                (Role.COMPLIANCE, SPONSORED, "team:compliance"),
            ):
                pseudonym = server.pseudonym(student)
                await log.append(queued_record(pseudonym, 2, Route.COMPLIANCE, where))
                nudge = invitation(pseudonym)
                if where == "team:compliance":
                    nudge = nudge.model_copy(
                        update={"route": Route.COMPLIANCE, "tier": Tier.REFERRAL}
                    )
                await queue.enqueue(nudge, where, datetime.now(UTC))
                Seeded.nudges[role] = nudge.nudge_id
                for action in ("accept", "reject"):
                    request = CorrectionRequest(
                        correction_id=new_id(), pseudonym=pseudonym,
                        kind=CorrectionKind.NOT_MINE, day=datetime.now(UTC).date(),
                        asked_at=datetime.now(UTC),
                    )  # fmt: skip
                    await corrections.ask(request)
                    Seeded.corrections[role, action] = request.correction_id

        server.seed(work)
        yield server


def tally(case: schemathesis.Case[Any], status: int) -> None:
    """Count the answer for its operation (not a probe with another method)."""
    if case.method.upper() == case.operation.method.upper():
        ANSWERED.setdefault(f"{case.method.upper()} {case.operation.path}", set()).add(status)


def signed_in_as(served: ApiServer, subject: str, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.mint.token(subject, role)}"}


def signed_in(served: ApiServer, role: Role) -> dict[str, str]:
    return signed_in_as(served, READERS[role], role)


def test_the_server_answers_the_document_the_cases_come_from(served: ApiServer) -> None:
    answer = httpx.get(f"{served.url}/v1/openapi.json", timeout=30)
    assert answer.status_code == 200
    assert answer.json() == schema.raw_schema


ROLES = pytest.mark.parametrize("role", list(READERS), ids=[r.value for r in READERS])


@ROLES
@schema.parametrize()
@BOUNDED
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], served: ApiServer, role: Role
) -> None:
    answer = case.call_and_validate(
        base_url=served.url, headers=signed_in(served, role), checks=CHECKS
    )
    tally(case, answer.status_code)


def fixed_ids(role: Role, path: str) -> dict[str, Any] | None:
    """The path parameters that name what ``role`` may see (None: nothing seeded for it)."""
    if "{student_id}" in path:
        student = {Role.TUTOR: TUTEE, Role.COMPLIANCE: SPONSORED}.get(role)
        if student is not None and path.endswith("/erasure"):
            student = ERASED
        return None if student is None else {"student_id": student}
    if "{nudge_id}" in path:
        nudge = Seeded.nudges.get(role)
        return None if nudge is None else {"nudge_id": nudge}
    if "{correction_id}" in path:
        correction = Seeded.corrections.get((role, path.rsplit("/", 1)[-1]))
        return None if correction is None else {"correction_id": correction}
    return None


NAMED = [
    pytest.param(role, method, path, id=f"{role.value}-{method}-{path}")
    for role in (Role.TUTOR, Role.COMPLIANCE)
    for path, operations in schema.raw_schema["paths"].items()
    if "{" in path
    for method in operations
]


@pytest.mark.parametrize(("role", "method", "path"), NAMED)
def test_operations_on_seeded_records_answer_as_documented(
    served: ApiServer, role: Role, method: str, path: str
) -> None:
    ids = fixed_ids(role, path)
    if ids is None:
        pytest.skip(f"nothing seeded that {role.value} may reach by {path}")
    operation = schema[path][method.upper()]
    headers = signed_in(served, role)

    @BOUNDED
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(path_parameters=ids))
        answer = case.call_and_validate(base_url=served.url, headers=headers, checks=CHECKS)
        tally(case, answer.status_code)

    run()


# Operations no generated request can carry past a refusal here: a callback needs the state
# and code of a real sign-in, the SLC report a configured census point, a correction a day
# still held, a backtest report one filed in the state folder (the tests of each reach them
# with real values).
REFUSED_BY_DESIGN = {
    "GET /auth/callback",
    "GET /v1/reports/slc",
    "POST /v1/me/corrections",
    "GET /v1/insights/backtests/{name}",
}


def test_the_run_reached_every_operation_past_its_refusals() -> None:
    if not ANSWERED:
        pytest.skip("the property-based run above did not run in this session")
    unreached = sorted(
        operation
        for operation, statuses in ANSWERED.items()
        if operation not in REFUSED_BY_DESIGN and min(statuses) >= 400
    )
    assert unreached == []


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def bad_tokens(served: ApiServer, subject: str, role: Role) -> dict[str, str]:
    """Expired, wrongly signed, wrong-audience and ``alg: none`` tokens for ``subject``."""
    mint = served.mint
    good = mint.token(subject, role)
    body = good.split(".")[1]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(good, options={"verify_signature": False})
    return {
        "expired": mint.token(subject, role, exp=int(time.time()) - 3600),
        "bad signature": jwt.encode(claims, other, algorithm="RS256", headers={"kid": mint.kid}),
        "wrong audience": mint.token(subject, role, aud="another-app"),
        "algorithm not allowed": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': mint.kid})}.{body}.",
    }


def test_expired_wrongly_signed_wrong_audience_and_unsigned_tokens_are_refused(
    served: ApiServer,
) -> None:
    student, tutor = TUTEE, READERS[Role.TUTOR]
    before = httpx.get(
        f"{served.url}/v1/me/preferences", headers=signed_in_as(served, student, Role.STUDENT)
    )
    assert before.status_code == 200 and before.json()["opt_out_all"] is False
    calls = [
        ("GET", "/v1/me", student, Role.STUDENT, None),
        ("PUT", "/v1/me/preferences", student, Role.STUDENT, {"opt_out_all": True}),
        ("GET", f"/v1/students/{student}", tutor, Role.TUTOR, None),
        ("POST", f"/v1/review/{Seeded.nudges[Role.TUTOR]}/claim", tutor, Role.TUTOR, None),
    ]
    for method, path, subject, role, body in calls:
        for reason, token in bad_tokens(served, subject, role).items():
            answer = httpx.request(
                method, f"{served.url}{path}", json=body,
                headers={"Authorization": f"Bearer {token}"}, timeout=30,
            )  # fmt: skip
            where = f"{method} {path} with a token refused as {reason}"
            assert answer.status_code == 401, where
            assert answer.headers["content-type"].startswith("application/problem+json"), where
            assert answer.json()["detail"] == reason, where
            assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"', where
    after = httpx.get(
        f"{served.url}/v1/me/preferences", headers=signed_in_as(served, student, Role.STUDENT)
    )
    assert after.json() == before.json()  # no refused change took effect


def test_a_change_without_a_broker_is_a_documented_503(stack: Endpoints) -> None:
    """Not bad input: the broker the change goes to is missing. The answer is the documented
    problem, and the schema holds for it."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    with ApiServer(settings_for(prefix), stack.redis_url, None) as server:
        student = READERS[Role.STUDENT]

        async def work(client: aioredis.Redis) -> None:
            await server.put_roster(client, RosterEntry(student_id=student))

        server.seed(work)
        case = schema["/v1/me/preferences"]["PUT"].Case(
            body={"opt_out_all": True, "opted_out_channels": []}, media_type="application/json"
        )
        checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
        answer = case.call_and_validate(
            base_url=server.url, headers=signed_in_as(server, student, Role.STUDENT), checks=checks
        )
        assert answer.status_code == 503
        assert answer.json()["type"] == "urn:engagement:problem:http_error"
