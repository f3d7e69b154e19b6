"""The HTTP ingest service, over real HTTP against the embedded broker and Redis.

Each native format goes in as its sender would post it; what the adapters accept is counted by
a real worker, what they refuse is on the dead-letter topic with a reason and nothing of the
input, and real xAPI clients nobody here wrote (tincan, Ralph) succeed against the endpoint.
"""

from __future__ import annotations

import base64
import csv
import json
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.probes import http_get
from tests.integration.harness import INGEST_TOKEN, TERM, Pipeline, vle, wait_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WHEN = TERM + timedelta(hours=1)


def post(
    pipeline: Pipeline,
    path: str,
    body: Any,
    *,
    token: str | None = INGEST_TOKEN,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request to the ingest service: (status, headers, parsed JSON body or text)."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{pipeline.ports['ingest']}{path}", data=data, method=method
    )
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # loopback
            status, got, text = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, got, text = error.code, dict(error.headers), error.read()
    try:
        parsed: Any = json.loads(text) if text else None
    except ValueError:
        parsed = text.decode(errors="replace")
    return status, got, parsed


def statement(n: int, account: str, *, verb: str = "viewed", **extra: Any) -> dict[str, Any]:
    """An xAPI statement as a Moodle or Blackboard plugin sends one."""
    return {
        "id": str(uuid.UUID(int=n + 1)),
        "actor": {
            "objectType": "Agent",
            "name": "A Student",
            "account": {"homePage": "https://vle.example.ac.uk", "name": account},
        },
        "verb": {"id": f"http://id.tincanapi.com/verb/{verb}", "display": {"en": verb}},
        "object": {
            "id": f"https://vle.example.ac.uk/mod/page/view.php?id={n}",
            "definition": {"type": "http://activitystrea.ms/schema/1.0/page"},
        },
        "context": {
            "platform": "Moodle",
            "contextActivities": {
                "grouping": [
                    {
                        "id": "https://vle.example.ac.uk/course/view.php?id=7",
                        "definition": {"type": "http://purl.imsglobal.org/vocab/lis/v2/course"},
                    }
                ]
            },
        },
        "timestamp": (WHEN + timedelta(minutes=n)).isoformat(),
        **extra,
    }


@pytest.fixture
def ingest(pipeline: Pipeline) -> Pipeline:
    """A worker and an ingest service (identity policy as-is, unless a test says otherwise)."""
    pipeline.env["ENGAGEMENT_IDENTITY_POLICY"] = "as-is"
    pipeline.start("worker", "worker")
    pipeline.start("ingest", "ingest")
    return pipeline


def dead_letters(pipeline: Pipeline, expected: int) -> list[dict[str, Any]]:
    return pipeline.topic(pipeline.settings.topics.deadletter, expected, timeout=30)


def readyz(pipeline: Pipeline) -> tuple[int, Any]:
    status, body = http_get(f"http://127.0.0.1:{pipeline.ports['ingest']}/readyz")
    return status, json.loads(body)


def test_nothing_is_read_without_a_token_and_basic_auth_carries_one(ingest: Pipeline) -> None:
    assert readyz(ingest) == (
        200, {"ready": True, "role": "ingest", "checks": {"broker": True, "redis": True}}
    )  # fmt: skip  # ready before any request: the broker is asked, not the idle producer
    body = [vle(0, "S-AUTH", WHEN)]
    for token in (None, "not-the-token-at-all", INGEST_TOKEN[:-1]):
        status, headers, reply = post(ingest, "/events/vle", body, token=token)
        assert status == 401 and reply["reason"] == "unauthorised"
        assert headers["Content-Type"].startswith("application/problem+json")
    basic = base64.b64encode(f"lms:{INGEST_TOKEN}".encode()).decode()
    status, _, reply = post(ingest, "/events/vle", body, token=None, headers={
        "Authorization": f"Basic {basic}"
    })  # fmt: skip
    assert status == 200 and reply == {"accepted": 1, "ignored": 0, "refused": 0}
    wrong_user = base64.b64encode(f"scanners:{INGEST_TOKEN}".encode()).decode()
    status, _, _ = post(ingest, "/events/vle", body, token=None, headers={
        "Authorization": f"Basic {wrong_user}"
    })  # fmt: skip
    assert status == 401  # the token is the lms's, not the scanners'
    wait_for("the event to be counted", lambda: ingest.counts("S-AUTH") == {"vle": 1} or None)


def test_the_products_own_events_one_bad_event_costs_that_event(ingest: Pipeline) -> None:
    good = [vle(n, "S-OWN", WHEN + timedelta(minutes=n)) for n in range(3)]
    bad = {**vle(9, "S-OWN-BAD", WHEN), "occurred_at": "yesterday"}
    status, _, reply = post(ingest, "/events/vle?report=units", [good[0], bad, *good[1:]])
    assert status == 200
    assert [(u["outcome"], u.get("reason")) for u in reply["units"]] == [
        ("accepted", None),
        ("refused", "invalid_value"),
        ("accepted", None),
        ("accepted", None),
    ]
    wait_for("the good events to be counted", lambda: ingest.counts("S-OWN") == {"vle": 3} or None)
    (letter,) = dead_letters(ingest, 1)
    assert letter["reason"] == "invalid_value" and letter["index"] == 1
    assert letter["topic"] == "http /events/vle" and "S-OWN-BAD" not in json.dumps(letter)


def test_requests_that_cannot_be_taken_get_a_reason_and_never_a_5xx(ingest: Pipeline) -> None:
    cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
        ("/events/vle", b"{not json", {}, 400, "malformed_json"),
        ("/events/vle", b"[" * 5000 + b"]" * 5000, {}, 400, "malformed_json"),
        ("/events/vle", b'{"a": NaN}', {}, 400, "malformed_json"),
        ("/events/vle", b"\xff\xfe", {}, 400, "malformed_json"),
        ("/events/vle", json.dumps([{}] * 1001).encode(), {}, 413, "too_many_units"),
        ("/events/vle", b"x" * 5_000_001, {}, 413, "oversized"),
        ("/events/vle", b"{}", {"Content-Type": "text/csv"}, 415, "unsupported_media_type"),
        ("/events/nothing", b"{}", {}, 404, "not_found"),
        ("/xapi/statements", b"{}", {}, 400, "missing_version"),
    ]
    for path, raw, headers, status, reason in cases:
        got, _, reply = post(ingest, path, None, raw=raw, headers=headers)
        assert (got, reply["reason"]) == (status, reason), (path, raw[:20])
    got, _, reply = post(ingest, "/events/vle", None, raw=b"[1, null, []]")
    assert got == 400 and reply["reason"] == "refused"  # every unit refused, each said why
    samples = ingest.metrics("ingest")
    assert not any('status="5' in k or "status=5" in k for k in samples)


def test_an_xapi_array_with_one_malformed_statement(ingest: Pipeline) -> None:
    version = {"X-Experience-API-Version": "1.0.3"}
    statements = [statement(n, "S-XAPI") for n in range(4)]
    statements[2] = {**statements[2], "timestamp": 12}  # malformed
    no_id = statement(7, "S-XAPI")
    del no_id["id"]
    status, headers, ids = post(ingest, "/xapi/statements", [*statements, no_id], headers=version)
    assert status == 200 and headers["X-Experience-API-Version"] == "1.0.3"
    assert ids[:3] == [statements[0]["id"], statements[1]["id"], statements[3]["id"]]
    assert len(ids) == 4 and uuid.UUID(ids[3])  # the id an LRS gives a statement without one
    wait_for("four statements counted", lambda: ingest.counts("S-XAPI") == {"vle": 4} or None)
    # The same statements again (a client's retry): not counted again.
    status, _, _ = post(ingest, "/xapi/statements", [*statements, no_id], headers=version)
    assert status == 200
    ingest.barrier("xapi-again", WHEN)
    assert ingest.counts("S-XAPI") == {"vle": 4}
    letters = dead_letters(ingest, 2)
    assert {letter["index"] for letter in letters} == {2}
    assert all("S-XAPI" not in json.dumps(letter) for letter in letters)


def test_xapi_put_and_about(ingest: Pipeline) -> None:
    version = {"X-Experience-API-Version": "1.0.3"}
    one = statement(20, "S-PUT")
    status, _, _ = post(
        ingest, f"/xapi/statements?statementId={one['id']}", one, headers=version, method="PUT"
    )
    assert status == 204
    other = str(uuid.uuid4())
    status, _, reply = post(
        ingest, f"/xapi/statements?statementId={other}", one, headers=version, method="PUT"
    )
    assert status == 400 and reply["reason"] == "invalid_value"
    request = urllib.request.Request(f"http://127.0.0.1:{ingest.ports['ingest']}/xapi/about")
    request.add_header("Authorization", f"Bearer {INGEST_TOKEN}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # loopback
        about = json.loads(response.read())
    assert "1.0.3" in about["version"]
    wait_for("the PUT statement counted", lambda: ingest.counts("S-PUT") == {"vle": 1} or None)


def test_the_identity_map_turns_lms_accounts_into_student_ids(pipeline: Pipeline) -> None:
    pipeline.start("worker", "worker")
    pipeline.start("ingest", "ingest")  # the default policy: map
    links = pipeline.workdir / "identity.jsonl"
    links.write_text(
        json.dumps({"actor": "https://vle.example.ac.uk|jbloggs", "student_id": "S7000001"}),
        encoding="utf-8",
    )
    pipeline.cli("reference", "identity", str(links))
    wait_for(
        "the identity map to be loaded",
        lambda: pipeline.redis.hget(
            f"{pipeline.prefix}:actors", "https://vle.example.ac.uk|jbloggs"
        ),
    )
    version = {"X-Experience-API-Version": "1.0.3"}
    body = [statement(30, "jbloggs"), statement(31, "someone-else")]
    status, _, reply = post(pipeline, "/xapi/statements?report=units", body, headers=version)
    assert status == 200
    assert [(u["outcome"], u.get("reason")) for u in reply["units"]] == [
        ("accepted", None),
        ("ignored", "unknown_actor"),
    ]
    wait_for(
        "the mapped student counted", lambda: pipeline.counts("S7000001") == {"vle": 1} or None
    )
    assert pipeline.counts("someone-else") == {}
    samples = pipeline.metrics("ingest")
    ignored = [v for k, v in samples.items() if "unknown_actor" in k and "units_total" in k]
    assert ignored == [1.0]


def test_caliper_canvas_and_moodle_as_their_systems_send_them(ingest: Pipeline) -> None:
    """A Caliper envelope of events and entities, a Canvas grade change beside an asset access,
    and a Moodle log row: the student's own actions counted; the grade refused, and nothing of
    it anywhere."""
    envelope = json.loads((FIXTURES / "caliper" / "caliperEnvelopeMixedBatch.json").read_text())
    status, _, reply = post(ingest, "/caliper?report=units", envelope)
    assert status == 200
    assert [u["outcome"] for u in reply["units"]] == ["ignored"] * 4 + ["accepted"] * 2 + [
        "refused"
    ]
    assert [u.get("reason") for u in reply["units"][:4]] == ["entity"] * 4
    assert reply["units"][6]["reason"] == "assessment_data"
    caliper_student = "https://example.edu/users/554433"

    def canvas(name: str, body: dict[str, Any], minute: int) -> dict[str, Any]:
        return {
            "metadata": {
                "user_id": "10000000000417",
                "user_sis_id": "S-CANVAS",
                "user_login": "s-canvas@student.example.ac.uk",
                "context_type": "Course",
                "context_id": "10000000000077",
                "context_role": "StudentEnrollment",
                "event_name": name,
                "event_time": (WHEN + timedelta(minutes=minute)).isoformat(),
                "client_ip": "192.0.2.44",
                "producer": "canvas",
            },
            "body": body,
        }

    grade = canvas("grade_change", {"score": 87.5, "grade": "A-", "old_score": 60}, 1)
    grade["metadata"]["context_role"] = "TeacherEnrollment"
    seen = canvas("asset_accessed", {"asset_type": "wiki_page", "asset_id": "5"}, 2)
    status, _, reply = post(ingest, "/canvas/live-events?report=units", [grade, seen])
    assert status == 200
    assert [(u["outcome"], u.get("reason")) for u in reply["units"]] == [
        ("refused", "assessment_data"),
        ("accepted", None),
    ]
    row = json.loads((FIXTURES / "moodle" / "single_row.json").read_text())
    row["timecreated"] = int((WHEN + timedelta(minutes=3)).timestamp())
    status, _, reply = post(ingest, "/moodle/log", row)
    assert status == 200 and reply == {"accepted": 1, "ignored": 0, "refused": 0}
    wait_for("the Caliper events counted", lambda: ingest.counts(caliper_student) or None)
    assert ingest.counts(caliper_student) == {"vle": 2}
    wait_for("the Canvas access counted", lambda: ingest.counts("S-CANVAS") == {"vle": 1} or None)
    wait_for("the Moodle row counted", lambda: ingest.counts("5") == {"vle": 1} or None)
    letters = dead_letters(ingest, 2)
    assert sorted(letter["reason"] for letter in letters) == ["assessment_data"] * 2
    text = json.dumps(letters)
    for kept_nowhere in ("87.5", "A-", "S-CANVAS", "192.0.2.44", "554433", "@"):
        assert kept_nowhere not in text
    samples = ingest.metrics("ingest")
    refused = {k: v for k, v in samples.items() if "units_total" in k and "refused" in k}
    assert sum(refused.values()) == 2
    assert all("sender=lms" in k for k in refused)


def test_real_xapi_clients_store_statements(ingest: Pipeline) -> None:
    """TinCanPython and Ralph's LRS backend, configured as any LRS client would be."""
    from ralph.backends.data.lrs import LRSDataBackend, LRSDataBackendSettings
    from tincan import Activity, Agent, AgentAccount, RemoteLRS, Statement, Verb

    base = f"http://127.0.0.1:{ingest.ports['ingest']}"
    lrs = RemoteLRS(
        version="1.0.3", endpoint=f"{base}/xapi/", username="lms", password=INGEST_TOKEN
    )
    assert lrs.about().success
    for n in range(2):
        made = Statement(
            actor=Agent(
                account=AgentAccount(home_page="https://vle.example.ac.uk", name="S-TINCAN")
            ),
            verb=Verb(id="http://id.tincanapi.com/verb/viewed"),
            object=Activity(id=f"https://vle.example.ac.uk/mod/page/view.php?id={n}"),
            timestamp=(WHEN + timedelta(minutes=n)).isoformat(),
        )
        saved = lrs.save_statement(made)
        assert saved.success, (saved.response.status, saved.data)
    with_id = {**statement(40, "S-TINCAN"), "id": str(uuid.uuid4())}
    assert lrs.save_statement(Statement(with_id)).success  # PUT with statementId
    backend = LRSDataBackend(
        LRSDataBackendSettings(
            BASE_URL=base,
            USERNAME="lms",
            PASSWORD=INGEST_TOKEN,
            STATEMENTS_ENDPOINT="/xapi/statements",
        )
    )
    written = backend.write([statement(50 + n, "S-RALPH") for n in range(5)], chunk_size=2)
    assert written == 5
    backend.close()
    wait_for("tincan's statements", lambda: ingest.counts("S-TINCAN") == {"vle": 3} or None)
    wait_for("Ralph's statements", lambda: ingest.counts("S-RALPH") == {"vle": 5} or None)


def test_a_moodle_log_export_is_published_from_the_command_line(pipeline: Pipeline) -> None:
    """`engagement publish FILE --format moodle-log`: every row reported with its line, the
    accepted ones counted by the worker, exactly as the adapter's expected outcomes say."""
    pipeline.start("worker", "worker")
    export = FIXTURES / "moodle" / "logstore_standard_log.csv"
    report_path = pipeline.workdir / "units.json"
    summary = pipeline.cli(
        "publish", str(export), "--format", "moodle-log", "--identity", "as-is",
        "--report-json", str(report_path),
    )  # fmt: skip
    expected = json.loads((FIXTURES / "moodle" / "expected.json").read_text())[export.name]
    units = json.loads(report_path.read_text())["units"]
    assert [(u["outcome"], u.get("as"), u.get("reason")) for u in units] == [
        (e["outcome"], e["as"], e["reason"]) for e in expected
    ]
    lines = [u["line"] for u in units]
    assert lines == sorted(lines) and lines[0] == 2  # the header is line 1
    accepted = sum(u["outcome"] == "accepted" for u in units)
    assert f"accepted {accepted}," in summary
    rows = list(csv.DictReader(export.read_text(encoding="utf-8").splitlines()))
    students = {
        row["userid"] for row, u in zip(rows, units, strict=False) if u["outcome"] == "accepted"
    }
    assert students

    def counted() -> int:
        return sum(pipeline.counts(s).get("vle", 0) for s in students)

    wait_for(f"{accepted} rows counted", lambda: counted() == accepted or None)


def test_when_the_identity_map_cannot_be_read_the_answer_is_503_and_retry(
    pipeline: Pipeline,
) -> None:
    """Redis away under the map policy: nothing is taken, and the client is told to retry."""
    from stream.dev.processes import free_port

    pipeline.env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    pipeline.start("ingest", "ingest")
    version = {"X-Experience-API-Version": "1.0.3"}
    body = [statement(60, "S-AWAY")]
    status, headers, reply = post(pipeline, "/xapi/statements", body, headers=version)
    assert status == 503 and headers["Retry-After"] == "5"
    assert readyz(pipeline)[0] == 503 and readyz(pipeline)[1]["checks"]["redis"] is False
    assert reply["reason"] == "unavailable"
    samples = pipeline.metrics("ingest")
    assert not any("units_total" in k for k in samples)  # nothing counted as taken
