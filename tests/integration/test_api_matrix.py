"""Every role, every endpoint, every kind of student, over real HTTP, against one table.

One API server for the module; each cell is one request whose exact status the table gives.
No read is allowed that the table does not allow; a refusal about one student is a 404 that
reads exactly as the one for a student who does not exist; every read of one student's data,
allowed or refused, leaves exactly one audit entry naming the reader, their role, the
student's pseudonym and the outcome.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from schemas.access import Role
from schemas.nudges import Route, Tier
from schemas.reference import RosterEntry
from sinks.stores.corrections import CorrectionKind, CorrectionRequest, CorrectionStore, new_id
from sinks.stores.interventions import InterventionLog
from sinks.stores.review import ReviewQueue
from stream.dev.stack import Endpoints
from tests.integration.test_api import ApiServer, queued_record, settings_for
from tests.integration.test_api_staff import invitation

pytestmark = pytest.mark.integration

# The readers: one per role. Support and compliance staff are in the demo teams file.
READERS = {
    Role.STUDENT: "S-MX-SELF",
    Role.TUTOR: "T-MX-TUTOR",
    Role.SUPPORT: "ST-SUPPORT-1",
    Role.COMPLIANCE: "ST-COMPLIANCE-1",
    Role.INSIGHTS: "I-MX-1",
    Role.OPS: "O-MX-1",
}
# The students, by what they are to the readers.
SUBJECTS = {
    "self": "S-MX-SELF",  # the student reader themselves
    "tutee": "S-MX-TUTEE",  # the tutor reader's tutee
    "sponsored": "S-MX-VISA",  # on a sponsored visa
    "referred": "S-MX-REFERRED",  # a referral routed to the support team
    "unrelated": "S-MX-OTHER",  # on the roster, nobody's business here
    "nonexistent": "S-MX-NOBODY",  # nothing held at all
}
# Who may read whom: everything else is a 404.
ALLOWED = {
    Role.STUDENT: {"self"},
    Role.TUTOR: {"tutee"},
    Role.SUPPORT: {"referred"},
    Role.COMPLIANCE: {"sponsored"},
    Role.INSIGHTS: set(),
    Role.OPS: set(),
}
PER_STUDENT = ("/v1/students/{id}", "/v1/students/{id}/interventions")
OWN = ("/v1/me", "/v1/me/interventions", "/v1/me/preferences", "/v1/me/access-log", "/v1/me/export")
TABLE = {
    (role, endpoint, subject): 200 if subject in ALLOWED[role] else 404
    for role in Role
    for endpoint in PER_STUDENT
    for subject in SUBJECTS
} | {
    (role, endpoint, "self"): 200 if role is Role.STUDENT else 403
    for role in Role
    for endpoint in OWN
}

# The staff queues and the insights table: one role's work, a 403 for every other role. A
# listing holds exactly the students the per-student table lets the reader see.
STAFF = frozenset({Role.TUTOR, Role.SUPPORT, Role.COMPLIANCE})
ROLE_WIDE = {
    (role, endpoint): 200 if role in allowed else 403
    for role in Role
    for endpoint, allowed in (
        ("/v1/review", STAFF),
        ("/v1/corrections", STAFF),
        ("/v1/me/corrections", {Role.STUDENT}),
        ("/v1/insights/cohorts?by=course", {Role.INSIGHTS}),
    )
}
# Backtest reports filed under the state directory: insights reads them, every other role
# gets a 403; one that names a student on the roster is withheld (409), an unknown one is 404.
REPORT = "backtest-20260101T000000Z"
NAMING = "backtest-20260102T000000Z"
ROLE_WIDE |= {
    (role, endpoint): status if role is Role.INSIGHTS else 403
    for role in Role
    for endpoint, status in (
        ("/v1/insights/backtests", 200),
        (f"/v1/insights/backtests/{REPORT}", 200),
        (f"/v1/insights/backtests/{NAMING}", 409),
        ("/v1/insights/backtests/backtest-20250101T000000Z", 404),
    )
}
# Review items: each subject on the roster has one, in the queue its route gives it.
QUEUES = {
    "self": "tutor:T-MX-ELSE",
    "tutee": "tutor:T-MX-TUTOR",
    "sponsored": "team:compliance",
    "referred": "team:support",
    "unrelated": "tutor:T-Y",
}
REVIEW_ITEM = {
    (role, subject): (200 if subject in ALLOWED[role] else 404) if role in STAFF else 403
    for role in Role
    for subject in QUEUES
}
NUDGES: dict[str, str] = {}


def file_reports(state_dir: Path) -> None:
    """Two filed backtest reports: counts only, and one that names an unrelated student."""
    reports = state_dir / "reports"
    reports.mkdir(parents=True)
    period = {"first_day": "2025-12-01", "last_day": "2025-12-28", "days": 28, "weeks": 4}
    report = {"period": period, "students": 40, "decisions": 3, "min_group": 10, "rules": []}
    (reports / f"{REPORT}.json").write_text(json.dumps(report), encoding="utf-8")
    naming = report | {"rules": [{"rule_id": "r", "weekly": {SUBJECTS["unrelated"]: 1}}]}
    (reports / f"{NAMING}.json").write_text(json.dumps(naming), encoding="utf-8")


@pytest.fixture(scope="module")
def served(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    state_dir = tmp_path_factory.mktemp("state")
    file_reports(state_dir)
    settings = settings_for(prefix).model_copy(update={"state_dir": state_dir})
    with ApiServer(settings, stack.redis_url, stack.kafka_bootstrap) as server:

        async def work(client: aioredis.Redis) -> None:
            roster = {
                "self": RosterEntry(student_id=SUBJECTS["self"], personal_tutor="T-MX-ELSE"),
                "tutee": RosterEntry(student_id=SUBJECTS["tutee"], personal_tutor="T-MX-TUTOR"),
                "sponsored": RosterEntry(student_id=SUBJECTS["sponsored"], sponsored_visa=True),
                "referred": RosterEntry(student_id=SUBJECTS["referred"], personal_tutor="T-X"),
                "unrelated": RosterEntry(student_id=SUBJECTS["unrelated"], personal_tutor="T-Y"),
            }
            for entry in roster.values():
                await server.put_roster(client, entry)
            log = InterventionLog(client, server.settings.key_prefix)
            referred = server.pseudonym(SUBJECTS["referred"])
            await log.append(queued_record(referred, 1, Route.SUPPORT, "team:support"))
            prefix = server.settings.key_prefix
            queue = ReviewQueue(client, prefix, server.api.teams, log.append)
            corrections = CorrectionStore(client, prefix)
            for subject, where in QUEUES.items():
                pseudonym = server.pseudonym(SUBJECTS[subject])
                nudge = invitation(pseudonym)
                if not where.startswith("tutor:"):
                    route = Route.SUPPORT if where == "team:support" else Route.COMPLIANCE
                    nudge = nudge.model_copy(update={"route": route, "tier": Tier.REFERRAL})
                await queue.enqueue(nudge, where, datetime.now(UTC))
                NUDGES[subject] = nudge.nudge_id
                await corrections.ask(
                    CorrectionRequest(
                        correction_id=new_id(), pseudonym=pseudonym,
                        kind=CorrectionKind.NOT_MINE, day=datetime.now(UTC).date(),
                        asked_at=datetime.now(UTC),
                    )
                )  # fmt: skip

        server.seed(work)
        yield server


def test_every_role_reads_exactly_what_the_table_allows_and_every_read_is_audited(
    served: ApiServer,
) -> None:
    wrong: list[str] = []
    unauthorised_reads = 0
    refusals: dict[str, str] = {}
    for role in Role:
        reader = READERS[role]
        with served.client(reader, role) as http:
            for (cell_role, endpoint, subject), expected in TABLE.items():
                if cell_role is not role:
                    continue
                student = SUBJECTS[subject]
                before = len(served.audit(10_000))
                response = http.get(endpoint.format(id=student))
                cell = f"{role.value} {endpoint} {subject}"
                if response.status_code != expected:
                    wrong.append(f"{cell}: {response.status_code}, expected {expected}")
                if response.status_code == 200 and subject not in ALLOWED[role]:
                    unauthorised_reads += 1
                if response.status_code == 404:
                    refusals[cell] = response.text
                entries = served.audit(10_000)
                added = entries[: len(entries) - before]
                if expected == 403:  # a role-wide refusal reads nobody's data
                    if added:
                        wrong.append(f"{cell}: audited a role-wide refusal")
                    continue
                if len(added) != 1:
                    wrong.append(f"{cell}: {len(added)} audit entries, expected 1")
                    continue
                (entry,) = added
                who = served.pseudonym(reader) if role is Role.STUDENT else reader
                outcome = "read" if expected == 200 else "refused"
                if (entry.who, entry.role, entry.pseudonym, entry.outcome) != (
                    who,
                    role.value,
                    served.pseudonym(student),
                    outcome,
                ):
                    wrong.append(f"{cell}: audit entry {entry!r}")
    assert wrong == []
    assert unauthorised_reads == 0
    # A refusal about someone on record reads exactly as one about nobody (no existence leak).
    assert len(set(refusals.values())) == 1, set(refusals.values())
    assert len(refusals) == sum(1 for status in TABLE.values() if status == 404)


def test_the_table_covers_every_role_endpoint_and_subject() -> None:
    assert {role for role, _, _ in TABLE} == set(Role)
    assert {endpoint for _, endpoint, _ in TABLE} == set(PER_STUDENT) | set(OWN)
    assert {subject for _, endpoint, subject in TABLE if endpoint in PER_STUDENT} == set(SUBJECTS)
    assert sum(1 for status in TABLE.values() if status == 200) == 2 * 4 + len(OWN)


def test_the_staff_queues_and_insights_answer_each_role_and_list_only_whom_it_may_see(
    served: ApiServer,
) -> None:
    wrong: list[str] = []
    student_of = {SUBJECTS[s]: s for s in SUBJECTS}
    for (role, endpoint), expected in ROLE_WIDE.items():
        with served.client(READERS[role], role) as http:
            response = http.get(endpoint)
        cell = f"{role.value} {endpoint}"
        if response.status_code != expected:
            wrong.append(f"{cell}: {response.status_code}, expected {expected}")
            continue
        if expected != 200:
            continue
        body = response.json()
        if endpoint in ("/v1/review", "/v1/corrections"):
            listed = {student_of.get(entry["student_id"], "?") for entry in body}
            if listed != ALLOWED[role]:
                wrong.append(f"{cell}: listed {sorted(listed)}, expected {sorted(ALLOWED[role])}")
        if endpoint == "/v1/me/corrections" and len(body) != 1:
            wrong.append(f"{cell}: {len(body)} corrections, expected the student's own one")
        if endpoint.startswith("/v1/insights") and (
            "S-MX" in response.text or "p_" in response.text
        ):
            wrong.append(f"{cell}: names a student")
        if endpoint == "/v1/insights/backtests":
            withheld = {r["name"]: r["withheld"] for r in body}
            if withheld.keys() != {REPORT, NAMING} or withheld[REPORT] or not withheld[NAMING]:
                wrong.append(f"{cell}: listed {withheld}")
    for (role, subject), expected in REVIEW_ITEM.items():
        with served.client(READERS[role], role) as http:
            status = http.get(f"/v1/review/{NUDGES[subject]}").status_code
        if status != expected:
            wrong.append(f"{role.value} /v1/review/{{id}} {subject}: {status}, expected {expected}")
    assert wrong == []
