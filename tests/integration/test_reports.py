"""The UKVI records written as days close, and the reports read from them, on the real worker,
broker and Redis."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import secrets
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from agents.store.reference import ReferenceStore
from agents.store.state import EngagementStore
from agents.store.ukvi import UkviRecorder
from schemas.access import Role
from schemas.common import Source
from schemas.report_settings import UKVI_RETENTION_DAYS
from schemas.settings import Settings
from sinks.reports import ReportReader, slc_rows, ukvi_rows
from sinks.stores.audit import AuditLog
from stream.dev.stack import Endpoints
from tests.integration.harness import TERM, Pipeline, mark, wait_for
from tests.integration.test_api import ApiServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAYS = 5  # Monday to Friday of the first week of term, one CS101 session a day
CENSUS = (date(2026, 10, 5), date(2026, 10, 8))  # SLC census points: Monday, Thursday


def _jsonl(path: Any, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _session_time(n: int) -> datetime:
    return TERM + timedelta(days=n, hours=1)


def _deploy(pipeline: Pipeline) -> None:
    """Roster, timetable, a week of marks, then the watermark past the week's grace."""
    term = TERM.date().isoformat()
    roster = [
        {"student_id": "S-UK-IN", "modules": ["CS101"], "sponsored_visa": True},
        {"student_id": "S-UK-OUT", "modules": ["CS101"], "sponsored_visa": True},
        {"student_id": "S-HOME", "modules": ["CS101"], "sponsored_visa": False},
        {"student_id": "S-GONE", "modules": ["CS101"], "term_starts_on": term},
    ]
    sessions = [
        {
            "session_id": f"CS101-{n}",
            "module": "CS101",
            "building": "Main",
            "starts_at": _session_time(n).isoformat(),
            "ends_at": (_session_time(n) + timedelta(hours=1)).isoformat(),
        }
        for n in range(DAYS)
    ]
    pipeline.cli("reference", "roster", _jsonl(pipeline.workdir / "roster.jsonl", roster))
    pipeline.cli("reference", "timetable", _jsonl(pipeline.workdir / "tt.jsonl", sessions))
    pipeline.start("worker", "worker")
    wait_for(
        "the reference data",
        lambda: pipeline.metric("engagement_reference_records_total") >= 9 or None,
    )
    marks = []
    for n in range(DAYS):
        when = _session_time(n) + timedelta(minutes=5)
        marks.append(mark(n, "S-UK-IN", when, "present"))
        marks.append(mark(n, "S-HOME", when, "present"))
        # attends on Monday, then is marked absent for the rest of the week
        marks.append(mark(n, "S-UK-OUT", when, "present" if n == 0 else "absent"))
    pipeline.publish_all({Source.ATTENDANCE: marks})
    # Every partition past Friday by more than the 48-hour grace: the week closes.
    pipeline.barrier("close", TERM + timedelta(days=DAYS + 3))
    friday = TERM.date().toordinal() + DAYS - 1
    wait_for("the week decided", lambda: pipeline.decided_through() >= friday or None, 120)
    assert json.loads(_ukvi(pipeline, "S-UK-OUT")[str(friday)])["a"] == 1
    # On the next Monday the register is corrected: S-UK-OUT attended Friday's session after
    # all. When that Monday closes, Friday's record is written again.
    monday = TERM + timedelta(days=7, hours=0, minutes=30)
    fix = mark(DAYS - 1, "S-UK-OUT", _session_time(DAYS - 1), "present")
    pipeline.publish(
        Source.ATTENDANCE, [fix | {"event_id": "fix-1", "occurred_at": monday.isoformat()}]
    )
    pipeline.barrier("again", TERM + timedelta(days=10))
    wait_for("Monday decided", lambda: pipeline.decided_through() >= friday + 3 or None, 120)


@pytest.fixture(scope="module")
def deployed(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """One deployment whose first week of term has closed."""
    pipeline = Pipeline(stack, f"rep{secrets.token_hex(3)}", tmp_path_factory.mktemp("reports"))
    try:
        _deploy(pipeline)
        yield pipeline
    finally:
        pipeline.stop()


def _ukvi(pipeline: Pipeline, student: str) -> dict[str, str]:
    raw = pipeline.redis.hgetall(f"{pipeline.prefix}:ukvi:{pipeline.pseudonym(student)}")
    return {k.decode(): v.decode() for k, v in raw.items()}


async def _reports(pipeline: Pipeline) -> tuple[list[Any], list[Any], list[Any]]:
    client = aioredis.from_url(pipeline.stack.redis_url)
    try:
        reader = ReportReader(client, pipeline.prefix, pipeline.settings.zone)
        october = ukvi_rows(await reader.ukvi_students(), date(2026, 10, 1), date(2026, 10, 31))
        points = CENSUS
        first = await reader.slc_students(date(2026, 8, 1), points[0])
        second = await reader.slc_students(date(2026, 10, 6) - timedelta(days=60), points[1])
        today = date(2026, 10, 12)
        census_1 = slc_rows(first, points[0], points, today=today, hold_days=60)
        census_2 = slc_rows(second, points[1], points, today=today, hold_days=60)
        return october, census_1, census_2
    finally:
        await client.aclose()


async def _close_again(pipeline: Pipeline) -> int:
    """Decide the week's records once more, as a second worker or a replay would."""
    client = aioredis.from_url(pipeline.stack.redis_url)
    try:
        settings = pipeline.settings
        store = EngagementStore(
            client,
            prefix=pipeline.prefix,
            group=f"{pipeline.prefix}.engagement-worker",
            dedup_ttl_s=86_400,
            state_ttl_s=86_400,
        )
        reference = ReferenceStore(client, pipeline.prefix, pipeline.pseudonym, settings.zone)
        first = TERM.date().toordinal()
        recorder = UkviRecorder(client, pipeline.prefix)
        return await recorder.record(store, reference, first, first + DAYS - 1)
    finally:
        await client.aclose()


def test_sponsored_students_records_are_kept_and_reported(deployed: Pipeline) -> None:
    pipeline = deployed
    monday = TERM.date().toordinal()

    def closed_week() -> dict[str, str] | None:
        record = _ukvi(pipeline, "S-UK-IN")
        return record if str(monday + DAYS - 1) in record else None

    attending = wait_for("the week's UKVI records", closed_week)
    missing = _ukvi(pipeline, "S-UK-OUT")
    assert attending["id"] == "S-UK-IN"
    assert missing["id"] == "S-UK-OUT"
    days = {str(monday + n) for n in range(DAYS)}
    assert set(attending) - {"id"} == days
    assert json.loads(attending[str(monday)])["s"] == 1
    assert json.loads(attending[str(monday)])["p"] == 1
    assert json.loads(missing[str(monday + 1)])["a"] == 1
    friday = json.loads(missing[str(monday + DAYS - 1)])
    assert (friday["p"], friday["a"]) == (1, 0)  # the correction made the next Monday
    # Only sponsored students have a record; it is kept under its own, longer retention.
    assert _ukvi(pipeline, "S-HOME") == {}
    ttl = pipeline.redis.ttl(f"{pipeline.prefix}:ukvi:{pipeline.pseudonym('S-UK-IN')}")
    assert (UKVI_RETENTION_DAYS - 1) * 86_400 < int(ttl) <= UKVI_RETENTION_DAYS * 86_400

    # Closing the week again (another worker, a replay) writes the same records.
    assert asyncio.run(_close_again(pipeline)) == 2 * DAYS
    assert _ukvi(pipeline, "S-UK-IN") == attending
    assert _ukvi(pipeline, "S-UK-OUT") == missing

    october, census_1, census_2 = asyncio.run(_reports(pipeline))
    by_id = {row.student_id: row for row in october}
    assert set(by_id) == {"S-UK-IN", "S-UK-OUT"}
    present = by_id["S-UK-IN"]
    assert (present.expected, present.attended, present.missed) == (DAYS, DAYS, 0)
    assert present.attendance_percent == 100.0
    absent = by_id["S-UK-OUT"]
    assert (absent.expected, absent.attended, absent.missed) == (DAYS, 2, 3)
    assert absent.consecutive_missed_at_end == 0  # Friday's attendance ended the run
    assert absent.longest_consecutive_missed == 3

    # SLC: by the first census point (Monday) everyone but S-GONE attended once; in the
    # second period (Tuesday to Thursday) S-UK-OUT was only ever marked absent. S-GONE sent
    # nothing at all, and is still named: the roster's identity key holds the id.
    assert [(r.student_id, r.complete) for r in census_1] == [("S-GONE", True)]
    assert census_1[0].pseudonym == pipeline.pseudonym("S-GONE")
    assert census_1[0].period_start == TERM.date()
    listed = {r.student_id: r for r in census_2}
    assert set(listed) == {"S-GONE", "S-UK-OUT"}
    assert listed["S-UK-OUT"].last_engaged == TERM.date()
    assert listed["S-UK-OUT"].complete


@pytest.fixture(scope="module")
def api(deployed: Pipeline) -> Iterator[ApiServer]:
    """The API on the deployment's Redis, with two census points."""
    settings = Settings(
        pseudonym_key=deployed.key,
        topic_prefix=f"{deployed.prefix}.",
        key_prefix=deployed.prefix,
        slc_census_dates=CENSUS,
    )
    server = ApiServer(settings, deployed.stack.redis_url, deployed.stack.kafka_bootstrap)
    with server:
        yield server


def _audited(server: ApiServer, action: str) -> list[str]:
    async def read() -> list[str]:
        client = aioredis.from_url(server.redis_url)
        try:
            log = AuditLog(client, server.settings.key_prefix, retention_days=30)
            return [e.pseudonym for e in await log.latest(1000) if e.action == action]
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_the_reports_over_http_for_compliance_only(deployed: Pipeline, api: ApiServer) -> None:
    october = {"from": "2026-10-01", "to": "2026-10-31"}
    with api.client("C-1", Role.COMPLIANCE) as officer:
        reply = officer.get("/v1/reports/ukvi", params=october)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert (body["from"], body["to"], body["period"]) == ("2026-10-01", "2026-10-31", "month")
        assert {r["student_id"]: r["missed"] for r in body["rows"]} == {
            "S-UK-IN": 0,
            "S-UK-OUT": 3,
        }
        as_csv = officer.get("/v1/reports/ukvi", params=october, headers={"Accept": "text/csv"})
        assert as_csv.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert {r["student_id"]: r["attended"] for r in table} == {"S-UK-IN": "5", "S-UK-OUT": "2"}
        weekly = officer.get(
            "/v1/reports/ukvi", params=october | {"period": "week", "format": "csv"}
        )
        assert len(list(csv.DictReader(io.StringIO(weekly.text)))) == 2 * 5  # five weeks each

        slc = officer.get("/v1/reports/slc", params={"census": "2026-10-08"})
        assert slc.status_code == 200, slc.text
        listed = {r["student_id"] for r in slc.json()["rows"]}
        assert "S-UK-OUT" in listed
        assert not listed & {"S-UK-IN", "S-HOME"}

        # Bad input is refused with a reason, never a 5xx.
        assert officer.get("/v1/reports/slc", params={"census": "2026-10-07"}).status_code == 404
        assert officer.get("/v1/reports/slc", params={"census": "soon"}).status_code == 400
        backwards = {"from": "2026-10-31", "to": "2026-10-01"}
        assert officer.get("/v1/reports/ukvi", params=backwards).status_code == 400
        too_long = {"from": "2020-01-01", "to": "2026-10-01"}
        assert officer.get("/v1/reports/ukvi", params=too_long).status_code == 400
    with api.client("T-1", Role.TUTOR) as tutor:
        assert tutor.get("/v1/reports/ukvi", params=october).status_code == 403
    with httpx.Client(base_url=api.url) as anonymous:
        assert anonymous.get("/v1/reports/slc", params={"census": "2026-10-08"}).status_code == 401

    # Every student a report listed has an audit entry naming the report.
    pseudonyms = {deployed.pseudonym(s) for s in ("S-UK-IN", "S-UK-OUT")}
    assert pseudonyms <= set(_audited(api, "report ukvi 2026-10-01..2026-10-31"))
    assert deployed.pseudonym("S-UK-OUT") in _audited(api, "report slc 2026-10-08")


def test_the_cli_fetches_a_report_with_a_compliance_token(
    deployed: Pipeline, api: ApiServer, tmp_path: Any
) -> None:
    out = tmp_path / "ukvi.csv"
    deployed.env["ENGAGEMENT_API_URL"] = api.url
    deployed.env["ENGAGEMENT_TOKEN"] = api.mint.token("C-2", Role.COMPLIANCE)
    deployed.cli("reports", "ukvi", "--from", "2026-10-05", "--to", "2026-10-09", "--csv", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {r["student_id"]: r["longest_consecutive_missed"] for r in rows} == {
        "S-UK-IN": "0",
        "S-UK-OUT": "3",
    }
