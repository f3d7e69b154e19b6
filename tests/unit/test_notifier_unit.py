"""The notifier without Redis or HTTP: the message text and the decision flow, with fakes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from ops.metrics import create_metrics
from schemas.interventions import InterventionRecord, Outcome
from schemas.nudges import Channel, Nudge, Route, Tier
from schemas.preferences import Preferences
from schemas.rules import load_rules
from sinks.notifier import Notifier, render_message
from sinks.webhook import DeliveryResult
from stream.app import Context
from stream.settings import load_settings
from tests.unit.build import PSEUDONYM, days, only, run, student

STUDENT = "S7654321"
END = date(2026, 10, 25).toordinal()


def vle_nudge() -> Nudge:
    """A prompt on email and app: no VLE activity for 7 days."""
    who = student(days(END - 20, END - 8, vle=3), END - 20)
    (nudge,) = run(only("no_vle_activity_7d"), who, END - 20, END)
    return nudge


def attendance_prompt() -> Nudge:
    """A prompt on email only: 1 of 4 sessions attended."""
    facts = days(END - 13, END - 13, present=1) | days(END - 3, END - 1, absent=1)
    (nudge,) = run(only("attendance_below_50pct_14d"), student(facts, END - 13), END - 13, END)
    return nudge


# -- render_message -----------------------------------------------------------------------

BANNED = ("fail", "penalty", "penalt", "disciplin", "warning", "sanction", "misconduct")


@pytest.mark.parametrize("make", [vle_nudge, attendance_prompt])
def test_the_message_explains_and_tells_the_student_their_options(make: Any) -> None:
    nudge = make()
    message = render_message(nudge)
    assert set(message) == {"subject", "body"}
    body = message["body"]
    assert nudge.explanation.summary in body
    # How to see (and correct) the data behind it.
    assert "see all the data" in body
    assert "student account" in body
    # How to opt out.
    assert "rather not receive automated messages" in body
    assert "turn them off" in body
    # Not part of assessment, and a human remains available.
    assert "not part of any assessment" in body
    assert "personal tutor" in body
    text = (message["subject"] + " " + body).lower()
    for word in BANNED:
        assert word not in text
    assert STUDENT not in body
    assert PSEUDONYM not in body


# -- Notifier.decide ----------------------------------------------------------------------


class FakeInterventions:
    def __init__(self, status: str | None = None) -> None:
        self.statuses: dict[str, str] = {}
        self.records: list[InterventionRecord] = []
        self.sending: list[str] = []
        self.initial = status

    async def status(self, nudge_id: str) -> str | None:
        return self.statuses.get(nudge_id, self.initial)

    async def mark_sending(self, nudge_id: str) -> None:
        self.sending.append(nudge_id)
        self.statuses.setdefault(nudge_id, "sending")

    async def append(self, record: InterventionRecord) -> bool:
        if self.statuses.get(record.nudge_id) == "done":
            return False
        self.records.append(record)
        self.statuses[record.nudge_id] = "done"
        return True


class FakePreferences:
    def __init__(self, preferences: Preferences | None = None, *, broken: bool = False) -> None:
        self.preferences = preferences or Preferences()
        self.broken = broken
        self.asked: list[str] = []

    async def get(self, pseudonym: str) -> Preferences:
        self.asked.append(pseudonym)
        if self.broken:
            raise RedisConnectionError("Redis is down")
        return self.preferences


class FakeIdentities:
    def __init__(self, known: dict[str, str]) -> None:
        self.known = known

    async def identity(self, pseudonym: str) -> str | None:
        return self.known.get(pseudonym)


class FakeWebhook:
    def __init__(self, result: DeliveryResult | None = None) -> None:
        self.result = result or DeliveryResult(True, "accepted", 1, 202)
        self.calls: list[tuple[dict[str, Any], str]] = []

    async def deliver(self, payload: dict[str, Any], idempotency_key: str) -> DeliveryResult:
        self.calls.append((payload, idempotency_key))
        return self.result


class Harness:
    def __init__(
        self,
        *,
        preferences: FakePreferences | None = None,
        interventions: FakeInterventions | None = None,
        identities: dict[str, str] | None = None,
        webhook: FakeWebhook | None = None,
    ) -> None:
        self.ctx = Context(
            settings=load_settings(pseudonym_key="k" * 20),
            kafka_bootstrap="x",
            redis_url="redis://x",
            rules=load_rules(),
            metrics=create_metrics(),
        )
        self.preferences = preferences or FakePreferences()
        self.interventions = interventions or FakeInterventions()
        self.identities = FakeIdentities({PSEUDONYM: STUDENT} if identities is None else identities)
        self.webhook = webhook or FakeWebhook()
        self.notifier = Notifier(
            self.ctx,
            preferences=self.preferences,  # type: ignore[arg-type]
            interventions=self.interventions,  # type: ignore[arg-type]
            identities=self.identities,  # type: ignore[arg-type]
            webhook=self.webhook,  # type: ignore[arg-type]
            dead_topic=None,
        )

    def counter(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.ctx.metrics.registry.get_sample_value(name, labels or {})
        return value or 0.0


@pytest.mark.asyncio
async def test_a_prompt_is_delivered_on_its_channels_with_the_student_id() -> None:
    harness = Harness()
    nudge = vle_nudge()
    before = datetime.now(UTC)
    await harness.notifier.decide(nudge)
    ((payload, key),) = harness.webhook.calls
    assert key == nudge.nudge_id
    assert payload["student_id"] == STUDENT
    assert payload["channels"] == ["email", "app"]
    assert payload["message"] == render_message(nudge)
    assert payload["nudge_id"] == nudge.nudge_id
    (record,) = harness.interventions.records
    assert record.outcome is Outcome.DELIVERED
    assert record.channels == (Channel.EMAIL, Channel.APP)
    assert record.attempts == 1
    assert record.summary == nudge.explanation.summary
    assert record.pseudonym == PSEUDONYM
    assert STUDENT not in record.model_dump_json()
    assert record.decided_at >= before
    assert harness.interventions.sending == [nudge.nudge_id]
    assert harness.counter("engagement_interventions_total", {"outcome": "delivered"}) == 1
    assert harness.counter("engagement_deliveries_total", {"channel": "app", "result": "ok"}) == 1


@pytest.mark.asyncio
async def test_opted_out_of_everything_gives_one_suppressed_record_and_no_call() -> None:
    harness = Harness(preferences=FakePreferences(Preferences(opt_out_all=True)))
    nudge = vle_nudge()
    await harness.notifier.decide(nudge)
    assert harness.webhook.calls == []
    (record,) = harness.interventions.records
    assert record.outcome is Outcome.SUPPRESSED
    assert record.reason == "opted_out"
    assert record.channels == ()
    assert harness.interventions.sending == []
    # Deciding the same nudge again changes nothing.
    await harness.notifier.decide(nudge)
    assert len(harness.interventions.records) == 1
    assert harness.webhook.calls == []


@pytest.mark.asyncio
async def test_opted_out_of_email_only_is_delivered_on_the_app() -> None:
    preferences = Preferences(opted_out_channels=frozenset({Channel.EMAIL}))
    harness = Harness(preferences=FakePreferences(preferences))
    nudge = vle_nudge()
    assert nudge.channels == (Channel.EMAIL, Channel.APP)
    await harness.notifier.decide(nudge)
    ((payload, _),) = harness.webhook.calls
    assert payload["channels"] == ["app"]
    (record,) = harness.interventions.records
    assert record.outcome is Outcome.DELIVERED
    assert record.channels == (Channel.APP,)


@pytest.mark.asyncio
async def test_opted_out_of_the_only_channel_is_suppressed() -> None:
    preferences = Preferences(opted_out_channels=frozenset({Channel.EMAIL}))
    harness = Harness(preferences=FakePreferences(preferences))
    await harness.notifier.decide(attendance_prompt())
    assert harness.webhook.calls == []
    (record,) = harness.interventions.records
    assert record.outcome is Outcome.SUPPRESSED


@pytest.mark.asyncio
async def test_unreadable_preferences_fail_closed() -> None:
    harness = Harness(preferences=FakePreferences(broken=True))
    with pytest.raises(RedisConnectionError):
        await harness.notifier.decide(vle_nudge())
    assert harness.preferences.asked == [PSEUDONYM]
    assert harness.webhook.calls == []
    assert harness.interventions.records == []
    assert harness.interventions.sending == []


@pytest.mark.asyncio
async def test_a_nudge_already_done_does_nothing() -> None:
    harness = Harness(interventions=FakeInterventions(status="done"))
    await harness.notifier.decide(vle_nudge())
    assert harness.webhook.calls == []
    assert harness.interventions.records == []
    assert harness.preferences.asked == []
    assert harness.counter("engagement_duplicates_total") == 1


@pytest.mark.asyncio
async def test_a_nudge_left_sending_is_sent_again_with_the_same_key() -> None:
    harness = Harness(interventions=FakeInterventions(status="sending"))
    nudge = vle_nudge()
    await harness.notifier.decide(nudge)
    ((_, key),) = harness.webhook.calls
    assert key == nudge.nudge_id
    assert [r.outcome for r in harness.interventions.records] == [Outcome.DELIVERED]


@pytest.mark.asyncio
@pytest.mark.parametrize("tier", [Tier.INVITATION, Tier.REFERRAL])
async def test_a_non_prompt_tier_is_queued_for_review_and_not_sent(tier: Tier) -> None:
    harness = Harness()
    nudge = vle_nudge().model_copy(update={"tier": tier})
    await harness.notifier.decide(nudge)
    assert harness.webhook.calls == []
    (record,) = harness.interventions.records
    assert record.outcome is Outcome.QUEUED_FOR_REVIEW
    assert record.tier is tier
    assert harness.preferences.asked == []


@pytest.mark.asyncio
async def test_an_unknown_recipient_fails_without_a_call() -> None:
    harness = Harness(identities={})
    await harness.notifier.decide(vle_nudge())
    assert harness.webhook.calls == []
    (record,) = harness.interventions.records
    assert record.outcome is Outcome.FAILED
    assert record.reason == "unknown_recipient"


@pytest.mark.asyncio
async def test_a_failed_delivery_is_recorded_with_its_reason() -> None:
    harness = Harness(webhook=FakeWebhook(DeliveryResult(False, "http_503", 4, 503)))
    await harness.notifier.decide(attendance_prompt())
    (record,) = harness.interventions.records
    assert record.outcome is Outcome.FAILED
    assert record.reason == "http_503"
    assert record.attempts == 4
    assert "4 attempts" in record.detail
    assert (
        harness.counter("engagement_deliveries_total", {"channel": "email", "result": "failed"})
        == 1
    )


@pytest.mark.asyncio
async def test_a_shadow_decision_is_recorded_as_shadow_and_never_sent() -> None:
    harness = Harness()
    nudge = vle_nudge().model_copy(update={"mode": "shadow"})
    await harness.notifier.decide(nudge)
    (record,) = harness.interventions.records
    assert record.outcome is Outcome.SHADOW
    assert record.reason == "shadow_rule"
    assert harness.webhook.calls == []
    assert harness.preferences.asked == []


@pytest.mark.asyncio
@pytest.mark.parametrize("reason", ["exemption", "data_gap"])
async def test_a_suppressed_decision_is_recorded_with_its_reason_and_never_sent(
    reason: str,
) -> None:
    harness = Harness()
    note = "Exempt: placement from Monday 5 October 2026 onwards."
    explanation = vle_nudge().explanation.model_copy(update={"notes": (note,)})
    nudge = vle_nudge().model_copy(update={"suppressed": reason, "explanation": explanation})
    await harness.notifier.decide(nudge)
    (record,) = harness.interventions.records
    assert (record.outcome, record.reason) == (Outcome.SUPPRESSED, reason)
    assert record.detail == note
    assert harness.webhook.calls == []


@pytest.mark.asyncio
async def test_an_invitation_names_who_it_is_queued_for() -> None:
    harness = Harness()
    nudge = vle_nudge().model_copy(update={"tier": Tier.INVITATION, "route": Route.PERSONAL_TUTOR})
    await harness.notifier.decide(nudge)
    (record,) = harness.interventions.records
    assert record.outcome is Outcome.QUEUED_FOR_REVIEW
    assert "personal tutor" in record.detail
