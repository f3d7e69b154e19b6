"""The review queue on the session's real Redis: routing, access, audit, decisions, escalation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from schemas.interventions import InterventionRecord, Outcome, StaffAction, Stage
from schemas.nudges import Explanation, Nudge, Route, Tier
from schemas.review import DEFAULT_TEAMS, TeamsConfig, load_teams
from sinks.stores.interventions import record_id
from sinks.stores.review import ReviewError, ReviewQueue
from stream.dev.stack import Endpoints

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TUTOR, OTHER_TUTOR = "T001", "T002"
SENIOR, SUPPORT_LEAD, SUPPORT = "ST-SENIOR-TUTOR", "ST-SUPPORT-LEAD", "ST-SUPPORT-1"
COMPLIANCE_LEAD, COMPLIANCE = "ST-COMPLIANCE-LEAD", "ST-COMPLIANCE-1"
# 1.8 seconds: escalation is tested by passing a later `now`, never by sleeping.
FAST_HOURS = 0.0005


class RecordingLog:
    """Appends like the intervention log: once per record id, marked by the `recorded` key."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix
        self.records: list[InterventionRecord] = []

    async def append(self, record: InterventionRecord) -> bool:
        added = await self.redis.set(f"{self.prefix}:recorded:{record.record_id}", "1", nx=True)
        if added:
            self.records.append(record)
        return bool(added)


@pytest_asyncio.fixture
async def client(stack: Endpoints) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()


def teams(tmp_path: Path, hours: float = 72) -> TeamsConfig:
    path = tmp_path / "teams.toml"
    text = DEFAULT_TEAMS.read_text(encoding="utf-8")
    path.write_text(text.replace("escalate_after_hours = 72", f"escalate_after_hours = {hours}"))
    return load_teams(path)


def make_queue(
    client: aioredis.Redis, prefix: str, config: TeamsConfig
) -> tuple[ReviewQueue, RecordingLog]:
    recorded = RecordingLog(client, prefix)
    return ReviewQueue(client, prefix, config, recorded.append), recorded


def nudge(n: int, tier: Tier = Tier.INVITATION, route: Route = Route.PERSONAL_TUTOR) -> Nudge:
    return Nudge(
        nudge_id=f"n_{n:04d}",
        pseudonym="p_" + f"{n:x}".rjust(32, "0"),
        rule_id="no_activity_14d" if tier is Tier.INVITATION else "visa_attendance_28d",
        rule_version=3,
        tier=tier,
        channels=(),
        route=route,
        created_at=T0 - timedelta(days=1),
        explanation=Explanation(
            summary=f"No activity recorded for 14 days (student {n}).",
            metrics={"days": 14},
            threshold="no activity for 14 days",
            window_start=date(2026, 10, 19),
            window_end=date(2026, 11, 1),
            sources=("swipe", "vle"),
        ),
    )


async def queue_invitation(review: ReviewQueue, n: int, tutor: str | None, at: datetime) -> str:
    item = nudge(n)
    await review.enqueue(item, review.queue_for(Route.PERSONAL_TUTOR, tutor), at)
    return item.nudge_id


async def audit(client: aioredis.Redis, review: ReviewQueue) -> list[dict[str, object]]:
    return [json.loads(row) for row in await client.lrange(review.audit_key, 0, -1)]


@pytest.mark.asyncio
async def test_queue_names_follow_the_route_and_the_roster(
    client: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    review, _ = make_queue(client, prefix, teams(tmp_path))
    assert review.queue_for(Route.PERSONAL_TUTOR, TUTOR) == "tutor:T001"
    assert review.queue_for(Route.PERSONAL_TUTOR, None) == "team:personal_tutors"
    assert review.queue_for(Route.SUPPORT, TUTOR) == "team:support"
    assert review.queue_for(Route.COMPLIANCE, None) == "team:compliance"
    with pytest.raises(ReviewError, match="never to a review queue"):
        review.queue_for(Route.STUDENT, None)


@pytest.mark.asyncio
async def test_an_invitation_reaches_only_the_students_own_tutor(
    client: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    review, _ = make_queue(client, prefix, teams(tmp_path))
    nudge_id = await queue_invitation(review, 1, TUTOR, T0)
    (item,) = await review.visible_to(TUTOR)
    assert (item.nudge_id, item.queue, item.queued_at) == (nudge_id, "tutor:T001", T0)
    assert item.summary == "No activity recorded for 14 days (student 1)."
    assert item.escalated_to is None
    assert not item.decided
    for outsider in (OTHER_TUTOR, SUPPORT, SUPPORT_LEAD, COMPLIANCE):
        assert await review.visible_to(outsider) == []
    # Without a tutor on record the invitation waits for the personal tutors' team.
    orphan = await queue_invitation(review, 2, None, T0)
    assert [i.nudge_id for i in await review.visible_to(SENIOR)] == [orphan]
    assert [i.nudge_id for i in await review.visible_to(TUTOR)] == [nudge_id]


@pytest.mark.asyncio
async def test_referrals_are_listed_before_older_invitations(
    client: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    review, _ = make_queue(client, prefix, teams(tmp_path))
    # The compliance lead is also someone's personal tutor here, so sees both queues.
    older = await queue_invitation(review, 1, COMPLIANCE_LEAD, T0)
    oldest = await queue_invitation(review, 2, COMPLIANCE_LEAD, T0 - timedelta(hours=1))
    referral = nudge(3, Tier.REFERRAL, Route.COMPLIANCE)
    queued = await review.enqueue(
        referral, review.queue_for(referral.route, None), T0 + timedelta(hours=1)
    )
    assert queued.queue == "team:compliance"
    listed = await review.visible_to(COMPLIANCE_LEAD)
    assert [i.nudge_id for i in listed] == [referral.nudge_id, oldest, older]
    assert [i.nudge_id for i in await review.visible_to(COMPLIANCE)] == [referral.nudge_id]
    assert await review.visible_to(SUPPORT) == []


@pytest.mark.asyncio
async def test_enqueue_twice_keeps_one_item_and_its_first_time(
    client: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    review, recorded = make_queue(client, prefix, teams(tmp_path))
    first = await review.enqueue(nudge(1), "tutor:T001", T0)
    again = await review.enqueue(nudge(1), "tutor:T001", T0 + timedelta(minutes=5))
    assert again == first
    assert again.queued_at == T0
    assert len(await review.visible_to(TUTOR)) == 1
    assert recorded.records == []  # the notifier writes the queued_for_review record
    assert await review.get("n_9999") is None
    with pytest.raises(ReviewError, match="prompts are never queued"):
        await review.enqueue(nudge(5, Tier.PROMPT, Route.STUDENT), "tutor:T001", T0)


@pytest.mark.asyncio
async def test_show_is_audited_and_refused_to_an_outsider(
    client: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    review, _ = make_queue(client, prefix, teams(tmp_path))
    nudge_id = await queue_invitation(review, 1, TUTOR, T0)
    shown = await review.show(nudge_id, TUTOR, T0 + timedelta(minutes=1))
    assert shown.explanation.metrics == {"days": 14}
    with pytest.raises(ReviewError, match="T002 may not see") as caught:
        await review.show(nudge_id, OTHER_TUTOR, T0 + timedelta(minutes=2))
    assert caught.value.kind == "forbidden"
    with pytest.raises(ReviewError, match="no review item") as missing:
        await review.show("n_9999", TUTOR, T0)
    assert missing.value.kind == "not_found"
    await review.visible_to(TUTOR, now=T0 + timedelta(minutes=3))
    entries = await audit(client, review)
    assert entries[0] == {
        "staff_id": TUTOR,
        "action": "show",
        "nudge_id": nudge_id,
        "at": (T0 + timedelta(minutes=1)).isoformat(),
    }
    assert entries[1]["action"] == "show_refused"
    assert entries[1]["staff_id"] == OTHER_TUTOR
    assert entries[2]["action"] == "show_refused"
    assert entries[3] == {
        "staff_id": TUTOR,
        "action": "list",
        "nudge_ids": [nudge_id],
        "at": (T0 + timedelta(minutes=3)).isoformat(),
    }


@pytest.mark.asyncio
async def test_the_three_decisions_record_who_did_what(
    client: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    review, recorded = make_queue(client, prefix, teams(tmp_path))
    contacted, quiet, referred = [await queue_invitation(review, n, TUTOR, T0) for n in (1, 2, 3)]
    later = T0 + timedelta(hours=2)

    record = await review.decide(
        contacted, TUTOR, StaffAction.CONTACTED, reason=None, referred_to=None, now=later
    )
    assert record.record_id == record_id(contacted, Stage.REVIEW)
    assert (record.stage, record.outcome, record.reason) == (
        Stage.REVIEW,
        Outcome.STAFF_DECISION,
        "contacted",
    )
    assert (record.staff_id, record.action, record.queue) == (
        TUTOR,
        StaffAction.CONTACTED,
        "tutor:T001",
    )
    assert record.detail == "Personal tutor T001 got in touch with the student."
    assert record.decided_at == later
    assert (record.tier, record.route, record.rule_id, record.rule_version) == (
        Tier.INVITATION,
        Route.PERSONAL_TUTOR,
        "no_activity_14d",
        3,
    )
    assert record.pseudonym == nudge(1).pseudonym
    assert record.summary == nudge(1).explanation.summary

    with pytest.raises(ReviewError, match="no_action needs a reason") as no_reason:
        await review.decide(
            quiet, TUTOR, StaffAction.NO_ACTION, reason="  ", referred_to=None, now=later
        )
    assert no_reason.value.kind == "invalid"
    record = await review.decide(
        quiet,
        TUTOR,
        StaffAction.NO_ACTION,
        reason="already spoke to them in the seminar",
        referred_to=None,
        now=later,
    )
    assert record.detail == (
        "Reviewed by personal tutor T001; no action needed: already spoke to them in the seminar."
    )
    assert (record.reason, record.referred_to) == ("no_action", None)

    with pytest.raises(ReviewError, match="needs the service"):
        await review.decide(
            referred, TUTOR, StaffAction.REFERRED, reason=None, referred_to=None, now=later
        )
    record = await review.decide(
        referred,
        TUTOR,
        StaffAction.REFERRED,
        reason=None,
        referred_to="Student Wellbeing",
        now=later,
    )
    assert record.detail == "Referred on to Student Wellbeing by personal tutor T001."
    assert (record.action, record.referred_to) == (StaffAction.REFERRED, "Student Wellbeing")

    assert [r.nudge_id for r in recorded.records] == [contacted, quiet, referred]
    assert await review.visible_to(TUTOR) == []
    item = await review.get(contacted)
    assert item is not None
    assert item.decided


@pytest.mark.asyncio
async def test_a_second_decision_and_an_outsiders_decision_are_refused(
    client: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    review, recorded = make_queue(client, prefix, teams(tmp_path))
    nudge_id = await queue_invitation(review, 1, TUTOR, T0)
    with pytest.raises(ReviewError, match="may not see") as outsider:
        await review.decide(
            nudge_id, OTHER_TUTOR, StaffAction.CONTACTED, reason=None, referred_to=None, now=T0
        )
    assert outsider.value.kind == "forbidden"
    await review.decide(
        nudge_id, TUTOR, StaffAction.CONTACTED, reason="phoned", referred_to=None, now=T0
    )
    # The senior tutor leads the personal tutors' team and may decide, but not twice.
    with pytest.raises(ReviewError, match="already decided") as again:
        await review.decide(
            nudge_id, SENIOR, StaffAction.NO_ACTION, reason="fine", referred_to=None, now=T0
        )
    assert again.value.kind == "already_decided"
    assert len(recorded.records) == 1
    assert recorded.records[0].detail == (
        "Personal tutor T001 got in touch with the student. Note: phoned."
    )


@pytest.mark.asyncio
async def test_two_people_deciding_at_once_record_one_decision(
    client: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    review, recorded = make_queue(client, prefix, teams(tmp_path))
    referral = nudge(1, Tier.REFERRAL, Route.SUPPORT)
    await review.enqueue(referral, "team:support", T0)
    results = await asyncio.gather(
        *(
            review.decide(
                referral.nudge_id,
                who,
                StaffAction.REFERRED,
                reason=None,
                referred_to="Counselling",
                now=T0,
            )
            for who in (SUPPORT, "ST-SUPPORT-2")
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, InterventionRecord) for r in results) == 1
    assert sum(isinstance(r, ReviewError) for r in results) == 1
    assert len(recorded.records) == 1
    detail = recorded.records[0].detail
    assert detail.startswith("Referred on to Counselling by support team member ST-SUPPORT-")


@pytest.mark.asyncio
async def test_a_decision_recorded_before_a_crash_still_hides_the_item(
    client: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    review, _ = make_queue(client, prefix, teams(tmp_path))
    nudge_id = await queue_invitation(review, 1, TUTOR, T0)
    # The log appended the decision; the process died before the item was marked.
    await client.set(f"{prefix}:recorded:{record_id(nudge_id, Stage.REVIEW)}", "1")
    assert await review.visible_to(TUTOR) == []
    assert await review.escalate_due(T0 + timedelta(days=30)) == []
    assert await client.zcard(f"{prefix}:review:queue:tutor:T001") == 0


@pytest.mark.asyncio
async def test_an_untouched_item_escalates_once_to_the_lead_who_can_decide_it(
    client: aioredis.Redis, prefix: str, tmp_path: Path
) -> None:
    config = teams(tmp_path, hours=FAST_HOURS)
    review, recorded = make_queue(client, prefix, config)
    other, _ = make_queue(client, prefix, config)  # a second worker process
    nudge_id = await queue_invitation(review, 1, TUTOR, T0)
    support = nudge(2, Tier.REFERRAL, Route.SUPPORT)
    await review.enqueue(support, "team:support", T0 + timedelta(seconds=1))

    assert await review.escalate_due(T0 + timedelta(seconds=1.7)) == []
    due = T0 + timedelta(seconds=2)
    first, second = await asyncio.gather(review.escalate_due(due), other.escalate_due(due))
    (record,) = first + second
    assert record.record_id == record_id(nudge_id, Stage.ESCALATION)
    assert (record.stage, record.outcome, record.queue) == (
        Stage.ESCALATION,
        Outcome.ESCALATED,
        "lead:ST-SENIOR-TUTOR",
    )
    assert record.detail == (
        "Not acted on within 1.8 seconds; passed to the team lead ST-SENIOR-TUTOR."
    )
    assert record.decided_at == due
    assert len(recorded.records) == 1
    # Running again, later, changes nothing for it; the support referral is now due too.
    (support_record,) = await review.escalate_due(T0 + timedelta(seconds=10))
    assert support_record.queue == "lead:ST-SUPPORT-LEAD"
    assert await review.escalate_due(T0 + timedelta(seconds=20)) == []

    (escalated,) = await review.visible_to(SENIOR)
    assert (escalated.nudge_id, escalated.escalated_to, escalated.escalated_at) == (
        nudge_id,
        SENIOR,
        due,
    )
    assert [i.nudge_id for i in await review.visible_to(TUTOR)] == [nudge_id]
    assert await review.visible_to(OTHER_TUTOR) == []
    decision = await review.decide(
        nudge_id,
        SENIOR,
        StaffAction.CONTACTED,
        reason=None,
        referred_to=None,
        now=T0 + timedelta(seconds=30),
    )
    assert decision.detail == "Team lead ST-SENIOR-TUTOR got in touch with the student."
    assert decision.staff_id == SENIOR
    assert await review.visible_to(SENIOR) == []
    assert await review.visible_to(TUTOR) == []
    assert [r.stage for r in recorded.records] == [
        Stage.ESCALATION,
        Stage.ESCALATION,
        Stage.REVIEW,
    ]
