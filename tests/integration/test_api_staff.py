"""Staff over real HTTP: the review queue, corrections through the pipeline, and insights.

A tutor lists, reads, claims and decides a real queued invitation, and escalates another to
the team lead; a student asks for a correction, their tutor accepts it, and the corrected
attendance mark reaches the worker's state as a correction of the earlier mark; an insights
user sees students per band with small numbers (and whatever would reveal them) hidden.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import pytest
import redis.asyncio as aioredis

from agents.model.corrections import Correction, parse_corrections
from agents.model.eventtime import local_day, to_epoch_ms
from schemas.access import Role
from schemas.common import Source
from schemas.nudges import Explanation, Nudge, Route, Tier
from schemas.reference import RosterEntry, TimetableSession
from sinks.insights import Table
from sinks.stores.review import ReviewQueue
from stream.dev.stack import Endpoints
from tests.integration.harness import Pipeline, wait_for
from tests.integration.test_api import ApiServer, is_problem, settings_for
from tests.unit.test_insights import recoverable

pytestmark = pytest.mark.integration

STUDENT, TUTOR, OTHER = "S-STAFF-1", "T-STAFF-1", "T-STAFF-2"
LEAD = "ST-SENIOR-TUTOR"  # leads the personal tutors' team in the demo teams file


@pytest.fixture
def served(stack: Endpoints, prefix: str) -> Iterator[ApiServer]:
    with ApiServer(settings_for(prefix), stack.redis_url, stack.kafka_bootstrap) as server:
        yield server


def invitation(pseudonym: str) -> Nudge:
    return Nudge(
        nudge_id=f"n_{uuid.uuid4().hex}",
        pseudonym=pseudonym,
        rule_id="no_activity_14d",
        rule_version=1,
        tier=Tier.INVITATION,
        channels=(),
        route=Route.PERSONAL_TUTOR,
        created_at=datetime.now(UTC) - timedelta(days=1),
        explanation=Explanation(
            summary="No activity recorded for 14 days.",
            metrics={"days": 14},
            threshold="no activity for 14 days",
            window_start=date(2026, 11, 1),
            window_end=date(2026, 11, 14),
            sources=("swipe", "vle"),
        ),
    )


def queue_invitations(server: ApiServer, student: str, tutor: str, n: int) -> list[str]:
    """``n`` invitations about ``student`` in ``tutor``'s queue, as the notifier queues them."""
    pseudonym = server.pseudonym(student)
    nudges = [invitation(pseudonym) for _ in range(n)]

    async def work(client: aioredis.Redis) -> None:
        await server.put_roster(client, RosterEntry(student_id=student, personal_tutor=tutor))
        log = server.api.interventions
        queue = ReviewQueue(
            client, server.settings.key_prefix, server.api.teams, log.append,
            recorded_key=log.recorded_key,
        )  # fmt: skip
        for nudge in nudges:
            await queue.enqueue(nudge, queue.queue_for(nudge.route, tutor), datetime.now(UTC))

    server.seed(work)
    return [nudge.nudge_id for nudge in nudges]


def test_a_tutor_lists_reads_claims_and_decides_an_invitation(served: ApiServer) -> None:
    (nudge_id,) = queue_invitations(served, STUDENT, TUTOR, 1)
    with served.client(OTHER, Role.TUTOR) as other:
        assert other.get("/v1/review").json() == []
        is_problem(other.get(f"/v1/review/{nudge_id}"), 404)
        is_problem(other.post(f"/v1/review/{nudge_id}/claim"), 404)
    with served.client(TUTOR, Role.TUTOR) as tutor:
        (entry,) = tutor.get("/v1/review").json()
        assert (entry["nudge_id"], entry["student_id"]) == (nudge_id, STUDENT)
        assert entry["queue"] == f"tutor:{TUTOR}" and entry["claimed_by"] is None
        assert "pseudonym" not in entry
        shown = tutor.get(f"/v1/review/{nudge_id}").json()
        assert shown["explanation"]["summary"] == "No activity recorded for 14 days."
        assert shown["decided"] is False
        claimed = tutor.post(f"/v1/review/{nudge_id}/claim")
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["claimed_by"] == TUTOR
        assert tutor.get("/v1/review").json()[0]["claimed_by"] == TUTOR
        quiet = tutor.post(f"/v1/review/{nudge_id}/decision", json={"action": "no_action"})
        assert "reason" in is_problem(quiet, 400)["detail"]
        is_problem(tutor.post(f"/v1/review/{nudge_id}/decision", json={"action": "wave"}), 400)
        done = tutor.post(
            f"/v1/review/{nudge_id}/decision",
            json={"action": "meeting_booked", "reason": "Thursday at 2"},
        )
        assert done.status_code == 200, done.text
        record = done.json()
        assert (record["outcome"], record["action"]) == ("staff_decision", "meeting_booked")
        assert "booked a meeting with the student. Note: Thursday at 2." in record["detail"]
        again = tutor.post(f"/v1/review/{nudge_id}/decision", json={"action": "contacted"})
        is_problem(again, 409)
        assert tutor.get("/v1/review").json() == []
    with served.client(STUDENT, Role.STUDENT) as student:
        is_problem(student.get("/v1/review"), 403)
        records = student.get("/v1/me/interventions").json()
        assert [r["outcome"] for r in records] == ["staff_decision"]
        assert records[0]["staff_id"] == TUTOR
        seen = {(e["who"], e["action"]) for e in student.get("/v1/me/access-log").json()}
    assert {(TUTOR, "review list"), (TUTOR, "review show"), (OTHER, "review show")} <= seen
    with served.client() as anonymous:
        is_problem(anonymous.get("/v1/review"), 401)
        is_problem(anonymous.post(f"/v1/review/{nudge_id}/claim"), 401)


def test_a_claimed_item_is_held_off_others_and_escalation_goes_to_the_lead(
    served: ApiServer,
) -> None:
    first, second = queue_invitations(served, STUDENT, TUTOR, 2)
    with served.client(TUTOR, Role.TUTOR) as tutor:
        assert tutor.post(f"/v1/review/{first}/claim").status_code == 200
        up = tutor.post(
            f"/v1/review/{second}/decision", json={"action": "escalate", "reason": "needs a lead"}
        )
        assert up.status_code == 200, up.text
        assert (up.json()["outcome"], up.json()["queue"]) == ("escalated", f"lead:{LEAD}")
        assert f"Passed to the team lead {LEAD}" in up.json()["detail"]
        twice = tutor.post(f"/v1/review/{second}/decision", json={"action": "escalate"})
        is_problem(twice, 409)
    with served.client(LEAD, Role.TUTOR) as lead:
        listed = {e["nudge_id"]: e for e in lead.get("/v1/review").json()}
        assert listed[second]["escalated_to"] == LEAD
        # The lead may take over a claimed item; the tutor then may not decide it.
        taken = lead.post(f"/v1/review/{first}/claim")
        assert taken.status_code == 200 and taken.json()["claimed_by"] == LEAD
    with served.client(TUTOR, Role.TUTOR) as tutor:
        held = tutor.post(f"/v1/review/{first}/decision", json={"action": "contacted"})
        assert LEAD in is_problem(held, 409)["detail"]


# -- corrections ---------------------------------------------------------------------------

SESSION = "CS101-L-STAFF"


def test_an_accepted_correction_reaches_the_worker_as_a_corrected_mark(
    pipeline: Pipeline, stack: Endpoints
) -> None:
    zone = pipeline.settings.zone
    today = local_day(datetime.now(UTC), zone)
    yesterday = date.fromordinal(today - 1)
    starts = datetime.combine(yesterday, time(10), zone)
    pipeline.start("worker", "worker")
    with ApiServer(pipeline.settings, stack.redis_url, stack.kafka_bootstrap) as served:

        async def reference(client: aioredis.Redis) -> None:
            await served.put_roster(client, RosterEntry(student_id=STUDENT, personal_tutor=TUTOR))
            session = TimetableSession(
                session_id=SESSION, module="CS101", building="Library", starts_at=starts,
                ends_at=starts + timedelta(hours=1),
            )  # fmt: skip
            from agents.store.reference import ReferenceStore

            store = ReferenceStore(client, pipeline.prefix, served.pseudonym, zone)
            await store.put_session(session)

        served.seed(reference)
        mark = {
            "event_id": "register-1", "student_id": STUDENT, "occurred_at": starts.isoformat(),
            "session_id": SESSION, "module": "CS101", "expected_start": starts.isoformat(),
            "expected_end": (starts + timedelta(hours=1)).isoformat(), "status": "absent",
            "capture_method": "register",
        }  # fmt: skip
        pipeline.publish(Source.ATTENDANCE, [mark], size=1)
        day = yesterday.toordinal()
        wait_for("the absent mark", lambda: pipeline.state(STUDENT).get(f"a:{day}") == "0,0,1,0")
        with served.client(STUDENT, Role.STUDENT) as student:
            wrong = {"kind": "attended", "day": str(yesterday), "session_id": "NO-SUCH"}
            assert (
                "timetable"
                in is_problem(student.post("/v1/me/corrections", json=wrong), 400)["detail"]
            )
            no_session = {"kind": "attended", "day": str(yesterday)}
            is_problem(student.post("/v1/me/corrections", json=no_session), 400)
            asked = student.post(
                "/v1/me/corrections",
                json={"kind": "attended", "day": str(yesterday), "session_id": SESSION,
                      "note": "I was at the back"},
            )  # fmt: skip
            assert asked.status_code == 202, asked.text
            correction_id = asked.json()["correction_id"]
            (mine,) = student.get("/v1/me/corrections").json()
            assert (mine["status"], mine["session_id"]) == ("open", SESSION)
        with served.client(OTHER, Role.TUTOR) as other:
            assert other.get("/v1/corrections").json() == []
            refused = other.post(f"/v1/corrections/{correction_id}/accept", json={"reason": "ok"})
            is_problem(refused, 404)
        with served.client(TUTOR, Role.TUTOR) as tutor:
            (queued,) = tutor.get("/v1/corrections").json()
            assert (queued["student_id"], queued["module"]) == (STUDENT, "CS101")
            accepted = tutor.post(
                f"/v1/corrections/{correction_id}/accept", json={"reason": "seen on the video"}
            )
            assert accepted.status_code == 200, accepted.text
            assert accepted.json()["event_id"] == f"correction-{correction_id}"
            again = tutor.post(f"/v1/corrections/{correction_id}/reject", json={"reason": "no"})
            is_problem(again, 409)
            assert tutor.get("/v1/corrections").json() == []
            (decided,) = tutor.get("/v1/corrections", params={"status": "accepted"}).json()
            assert decided["decided_by"] == TUTOR

        # Made today about yesterday's session: it replaces the absent mark from today on, and
        # yesterday stays as it was decided (the register-correction rule).
        def corrected() -> tuple[Correction, ...]:
            return parse_corrections(pipeline.state(STUDENT).get("ac", ""))

        (change,) = wait_for("the corrected mark", corrected)
        assert change == Correction(day, today, (1, 0, -1, 0))
        assert change.words() == "absent → present"
        assert pipeline.state(STUDENT)[f"a:{day}"] == "0,0,1,0"
        with served.client(STUDENT, Role.STUDENT) as student:
            (mine,) = student.get("/v1/me/corrections").json()
            assert (mine["status"], mine["reason"]) == ("accepted", "seen on the video")


def test_a_not_mine_correction_is_recorded_and_a_rejection_says_why(served: ApiServer) -> None:
    queue_invitations(served, STUDENT, TUTOR, 0)
    yesterday = date.fromordinal(local_day(datetime.now(UTC), served.settings.zone) - 1)
    with served.client(STUDENT, Role.STUDENT) as student:
        old = {"kind": "not_mine", "day": "2020-01-01"}
        is_problem(student.post("/v1/me/corrections", json=old), 400)
        ids = [
            student.post(
                "/v1/me/corrections", json={"kind": "not_mine", "day": str(yesterday)}
            ).json()["correction_id"]
            for _ in range(2)
        ]
    with served.client(TUTOR, Role.TUTOR) as tutor:
        ok = tutor.post(f"/v1/corrections/{ids[0]}/accept", json={"reason": "a shared PC"})
        assert ok.json()["status"] == "accepted" and ok.json()["event_id"] is None
        no = tutor.post(f"/v1/corrections/{ids[1]}/reject", json={"reason": "your own login"})
        assert no.json()["status"] == "rejected"
        is_problem(tutor.post(f"/v1/corrections/{ids[1]}/reject", json={}), 400)
    with served.client(STUDENT, Role.STUDENT) as student:
        mine = {c["correction_id"]: c for c in student.get("/v1/me/corrections").json()}
        assert mine[ids[1]]["reason"] == "your own login"
        assert mine[ids[0]]["status"] == "accepted"


# -- insights ------------------------------------------------------------------------------


def seed_cohorts(server: ApiServer) -> None:
    """CS: 15 active and 4 quiet students; MA: 12 active and 3 quiet."""
    today = local_day(datetime.now(UTC), server.settings.zone)

    async def work(client: aioredis.Redis) -> None:
        for course, active, quiet in (("CS", 15, 4), ("MA", 12, 3)):
            for n in range(active + quiet):
                student = f"S-INS-{course}-{n}"
                await server.put_roster(client, RosterEntry(student_id=student, course=course))
                first = str(to_epoch_ms(datetime.now(UTC) - timedelta(days=20)))
                fields = {"first": first}
                if n < active:
                    for day in range(today - 20, today + 1):
                        fields[f"d:{day}:vle"] = "3"
                        fields[f"d:{day}:swipe"] = "1"
                key = server.keys.state(server.pseudonym(student))
                await client.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant

    server.seed(work)


def test_insights_see_bands_per_course_with_small_numbers_and_their_giveaways_hidden(
    served: ApiServer,
) -> None:
    seed_cohorts(served)
    with served.client("I-STAFF-1", Role.INSIGHTS) as insights:
        response = insights.get("/v1/insights/cohorts", params={"by": "course"})
        assert response.status_code == 200, response.text
        body = response.json()
        school = insights.get("/v1/insights/cohorts", params={"by": "school"})
        assert "no school" in is_problem(school, 400)["detail"]
        weeks = insights.get("/v1/insights/cohorts", params={"by": "week"}).json()
    assert "S-INS" not in response.text and "p_" not in response.text
    assert [row["group"] for row in body["rows"]] == ["CS", "MA"]
    shown = [j for j, total in enumerate(body["band_totals"]) if total is not None]
    (active,) = shown  # one band holds every active student; every other count is hidden
    assert [row["counts"][active] for row in body["rows"]] == [15, 12]
    assert [row["total"] for row in body["rows"]] == [19, 15]
    assert body["band_totals"][active] == 27 and body["total"] == 34
    assert all(
        c is None for row in body["rows"] for j, c in enumerate(row["counts"]) if j != active
    )
    table = Table(
        rows=tuple(r["group"] for r in body["rows"]),
        columns=tuple(body["bands"]),
        cells=tuple(tuple(r["counts"]) for r in body["rows"]),
        row_totals=tuple(r["total"] for r in body["rows"]),
        column_totals=tuple(body["band_totals"]),
        total=body["total"],
        threshold=body["threshold"],
    )
    assert recoverable(table) == []
    assert len(weeks["rows"]) == 8 and weeks["by"] == "week"
    every = [c for row in weeks["rows"] for c in [*row["counts"], row["total"]] if c is not None]
    assert all(count >= 10 for count in every)
    with served.client(TUTOR, Role.TUTOR) as tutor:
        is_problem(tutor.get("/v1/insights/cohorts", params={"by": "course"}), 403)
    assert json.loads(response.text)["threshold"] == 10


# -- the review command, signed in with a token -----------------------------------------------


def test_the_review_command_takes_a_token_and_refuses_a_bare_staff_id_where_sign_in_is_set(
    pipeline: Pipeline,
) -> None:
    with ApiServer(pipeline.settings, pipeline.stack.redis_url, None) as served:
        (nudge_id,) = queue_invitations(served, STUDENT, TUTOR, 1)
    local = {"ENGAGEMENT_OIDC_ISSUER": "local", "ENGAGEMENT_LOCAL_SETUP": "yes"}
    pipeline.env.update(local)
    token = pipeline.cli("token", "--role", "tutor", "--subject", TUTOR).strip()
    listed = pipeline.cli("review", "list", "--token", token)
    assert nudge_id in listed
    pipeline.env["ENGAGEMENT_TOKEN"] = token
    assert nudge_id in pipeline.cli("review", "show", nudge_id)
    del pipeline.env["ENGAGEMENT_TOKEN"]
    # Another person's token sees nothing of it; a bad token is refused.
    other = pipeline.cli("token", "--role", "tutor", "--subject", OTHER).strip()
    assert "nothing waiting for you" in pipeline.cli("review", "list", "--token", other)

    def refused(*args: str, **env: str) -> str:
        done = subprocess.run(  # our own interpreter and module
            [sys.executable, "-m", "stream.cli", "review", *args],
            env={**pipeline.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0, done.stdout
        return done.stderr

    assert "token is refused" in refused("list", "--token", token[:-4] + "AAAA")
    assert "--staff" in refused("list", "--token", token, "--staff", OTHER)
    # With an identity provider configured and no local setup, a typed staff id is not taken.
    remote = {"ENGAGEMENT_OIDC_ISSUER": "https://idp.example.ac.uk", "ENGAGEMENT_LOCAL_SETUP": "no"}
    assert "ENGAGEMENT_LOCAL_SETUP=yes" in refused("list", "--staff", TUTOR, **remote)
    decided = pipeline.cli("review", "decide", nudge_id, "--token", token, "--action", "contacted")
    assert f"Personal tutor {TUTOR} got in touch" in decided
