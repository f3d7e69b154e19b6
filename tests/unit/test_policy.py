"""The notifier's policy, without Redis: one row per case, from a nudge and the facts read
about it to the decision (its kind, outcome, reason and the fields that matter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas.interventions import Outcome, Stage
from schemas.nudges import Channel, Explanation, Nudge, Route, Tier
from schemas.preferences import Preferences
from schemas.quiet import QuietHours
from schemas.review import DEFAULT_TEAMS, load_teams
from sinks import policy
from sinks.policy import (
    MAX_BEGUN,
    RESUMED_NOTE,
    SHADOW_DETAIL,
    Config,
    Decision,
    Defer,
    Deliver,
    Facts,
    Postpone,
    Queue,
    Record,
    Skip,
    Wait,
)
from sinks.review import ReviewRules

LONDON = ZoneInfo("Europe/London")
QUIET = QuietHours.parse("21:00-08:00", "Europe/London")
NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # London is on UTC in November
NIGHT = datetime(2026, 11, 23, 23, 10, tzinfo=UTC)
MORNING = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # when that night's quiet hours end

EVERY_CHANNEL = Config(frozenset(Channel), None, LONDON)
WITH_QUIET = Config(frozenset(Channel), QUIET, LONDON)
APP_ONLY = Config(frozenset({Channel.APP}), None, LONDON)

NOTIFIER, DEFERRED = Stage.NOTIFIER, Stage.DEFERRED_DELIVERY
ALL_OUT = Preferences(opt_out_all=True)
EMAIL_OUT = Preferences(opted_out_channels=frozenset({Channel.EMAIL}))
APP_OUT = Preferences(opted_out_channels=frozenset({Channel.APP}))


def nudge(
    tier: Tier = Tier.PROMPT,
    route: Route = Route.STUDENT,
    *,
    channels: tuple[Channel, ...] = (Channel.EMAIL, Channel.APP),
    notes: tuple[str, ...] = (),
    **fields: Any,
) -> Nudge:
    """A nudge as the detector sends it: a prompt on email, then app, unless told otherwise."""
    return Nudge(
        nudge_id="n_" + "1" * 32,
        pseudonym="p_" + "a" * 32,
        rule_id="no_vle_activity_7d",
        rule_version=1,
        tier=tier,
        route=route,
        channels=channels if tier is Tier.PROMPT else (),
        created_at=NOON,
        explanation=Explanation(
            summary="You have not used the VLE for 7 days.",
            metrics={"vle_days": 0},
            threshold="no activity",
            window_start=date(2026, 11, 16),
            window_end=date(2026, 11, 23),
            sources=("vle",),
            notes=notes,
        ),
        **fields,
    )


PROMPT = nudge()
INVITATION = nudge(Tier.INVITATION, Route.PERSONAL_TUTOR)
SUPPORT_REFERRAL = nudge(Tier.REFERRAL, Route.SUPPORT)
COMPLIANCE_REFERRAL = nudge(Tier.REFERRAL, Route.COMPLIANCE)


def facts(stage: Stage = NOTIFIER, now: datetime = NOON, **fields: Any) -> Facts:
    return Facts(stage=stage, now=now, **fields)


@dataclass(frozen=True)
class Row:
    """One case: the decision's kind, and (on it or on the record it writes) the fields."""

    case: str
    nudge: Nudge
    facts: Facts
    kind: type[Decision]
    outcome: Outcome | None = None
    reason: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    detail_has: tuple[str, ...] = ()
    config: Config = EVERY_CHANNEL


ROWS = [
    # -- already decided ------------------------------------------------------------------
    Row("already decided: a redelivered nudge", PROMPT, facts(status="done"), Skip,
        fields={"duplicate": True}),
    Row("already decided: a deferred prompt taken again", PROMPT,
        facts(DEFERRED, status="done"), Skip, fields={"duplicate": False}),
    Row("already decided beats shadow", nudge(mode="shadow"), facts(status="done"), Skip),
    # -- shadow and the detector's suppressions ---------------------------------------------
    Row("shadow: recorded with the message it would send, nothing sent", nudge(mode="shadow"),
        facts(preferences=ALL_OUT), Record, Outcome.SHADOW, "shadow_rule",
        {"message_channel": Channel.EMAIL, "detail": SHADOW_DETAIL, "release_cooldown": False}),
    Row("shadow: the message shown is the first configured channel's", nudge(mode="shadow"),
        facts(), Record, Outcome.SHADOW, "shadow_rule", {"message_channel": Channel.APP},
        config=APP_ONLY),
    Row("shadow invitation: no message", nudge(Tier.INVITATION, Route.PERSONAL_TUTOR,
        mode="shadow"), facts(), Record, Outcome.SHADOW, "shadow_rule",
        {"message_channel": None}),
    Row("exemption: suppressed by the detector, with its notes", nudge(suppressed="exemption",
        notes=("An exemption covers 16-23 Nov.",)), facts(), Record, Outcome.SUPPRESSED,
        "exemption", {"detail": "An exemption covers 16-23 Nov.", "channels": ()}),
    Row("data gap: suppressed by the detector", nudge(suppressed="data_gap"), facts(), Record,
        Outcome.SUPPRESSED, "data_gap", {"detail": "Not sent (data_gap)."}),
    Row("a suppressed invitation is not queued", nudge(Tier.INVITATION, Route.PERSONAL_TUTOR,
        suppressed="data_gap"), facts(tutor="T001"), Record, Outcome.SUPPRESSED, "data_gap"),
    # -- tiers ------------------------------------------------------------------------------
    Row("prompt: delivered on the rule's first channel", PROMPT, facts(), Deliver,
        fields={"channel": Channel.EMAIL, "stage": NOTIFIER, "resumed": False}),
    Row("prompt: the first channel that has a transport", PROMPT, facts(), Deliver,
        fields={"channel": Channel.APP}, config=APP_ONLY),
    Row("invitation: the personal tutor's queue", INVITATION, facts(tutor="T001"), Queue,
        Outcome.QUEUED_FOR_REVIEW, "needs_human", {"queue": "tutor:T001"},
        ("Queued for the personal tutor T001 to decide", "nothing is sent to the student")),
    Row("invitation, no tutor on record: the team's queue", INVITATION, facts(), Queue,
        Outcome.QUEUED_FOR_REVIEW, "needs_human", {"queue": "team:personal_tutors"},
        ("Queued for the personal tutor team (team:personal_tutors) to decide",)),
    Row("referral: the support team's queue", SUPPORT_REFERRAL, facts(tutor="T001"), Queue,
        Outcome.QUEUED_FOR_REVIEW, "needs_human", {"queue": "team:support"},
        ("Queued for the support team (team:support)",)),
    Row("referral: the compliance team's queue", COMPLIANCE_REFERRAL, facts(), Queue,
        Outcome.QUEUED_FOR_REVIEW, "needs_human", {"queue": "team:compliance"}),
    Row("an invitation needs no preferences", INVITATION,
        facts(tutor="T001", unreadable=frozenset({"preferences"})), Queue,
        fields={"queue": "tutor:T001"}),
    Row("invitation, roster unreadable: wait", INVITATION,
        facts(unreadable=frozenset({"tutor"})), Wait, fields={"missing": "tutor"}),
    # -- preferences (fail closed) ----------------------------------------------------------
    Row("opted out of everything: suppressed, the cooldown given back", PROMPT,
        facts(preferences=ALL_OUT), Record, Outcome.SUPPRESSED, "opted_out",
        {"stage": NOTIFIER, "release_cooldown": True, "detail":
         "Not sent: the student has opted out of automated prompts on email, app."}),
    Row("opted out of the configured channels only: suppressed, naming those", PROMPT,
        facts(preferences=APP_OUT), Record, Outcome.SUPPRESSED, "opted_out",
        {"detail": "Not sent: the student has opted out of automated prompts on app."},
        config=APP_ONLY),
    Row("opted out of email: the next channel", PROMPT, facts(preferences=EMAIL_OUT), Deliver,
        fields={"channel": Channel.APP}),
    Row("preferences unreadable: wait, nothing sent", PROMPT,
        facts(unreadable=frozenset({"preferences"})), Wait, fields={"missing": "preferences"}),
    Row("preferences unreadable, even during quiet hours: wait", PROMPT,
        facts(now=NIGHT, unreadable=frozenset({"preferences"})), Wait, config=WITH_QUIET),
    Row("decided state unreadable: wait", PROMPT, facts(unreadable=frozenset({"status"})), Wait,
        fields={"missing": "status"}),
    # -- quiet hours ------------------------------------------------------------------------
    Row("quiet hours: deferred to their end, and kept", PROMPT, facts(now=NIGHT), Defer,
        Outcome.DEFERRED, "quiet_hours",
        {"due": MORNING, "channel": Channel.EMAIL, "store": True, "deferred_until": MORNING,
         "channels": (Channel.EMAIL,), "message_channel": Channel.EMAIL},
        ("Decided during quiet hours (21:00-08:00 Europe/London)",
         "sent after 08:00 on 24 Nov, if the student has not opted out by then."),
        config=WITH_QUIET),
    Row("quiet hours: the channel is chosen first", PROMPT,
        facts(now=NIGHT, preferences=EMAIL_OUT), Defer, fields={"channel": Channel.APP},
        config=WITH_QUIET),
    Row("quiet hours, opted out: suppressed, not deferred", PROMPT,
        facts(now=NIGHT, preferences=ALL_OUT), Record, Outcome.SUPPRESSED, "opted_out",
        config=WITH_QUIET),
    Row("deferred before its record was lost: recorded again, not kept twice", PROMPT,
        facts(deferred_until=MORNING), Defer, Outcome.DEFERRED, "quiet_hours",
        {"due": MORNING, "store": False}, config=WITH_QUIET),
    Row("deferral unreadable: wait", PROMPT, facts(unreadable=frozenset({"deferred_until"})),
        Wait, fields={"missing": "deferred_until"}),
    Row("outside quiet hours: delivered", PROMPT, facts(), Deliver, config=WITH_QUIET),
    # -- a delivery begun before a crash ----------------------------------------------------
    Row("resume: the same channel, not the rule's first", PROMPT,
        facts(status="sending", sending_channel=Channel.APP), Deliver,
        fields={"channel": Channel.APP, "resumed": True, "stage": NOTIFIER}),
    Row("resume: even during quiet hours (it was begun before them)", PROMPT,
        facts(now=NIGHT, status="sending", sending_channel=Channel.APP), Deliver,
        fields={"channel": Channel.APP, "resumed": True}, config=WITH_QUIET),
    Row("resume: opted out of that channel since: suppressed", PROMPT,
        facts(status="sending", sending_channel=Channel.APP, preferences=APP_OUT), Record,
        Outcome.SUPPRESSED, "opted_out", {"release_cooldown": True},
        ("on email, app." + RESUMED_NOTE,)),
    Row("resume: the channel is no longer configured", PROMPT,
        facts(status="sending", sending_channel=Channel.EMAIL), Record, Outcome.SUPPRESSED,
        "opted_out", config=APP_ONLY),
    Row("resume: the channel mark cannot be read", PROMPT, facts(status="sending"), Record,
        Outcome.SUPPRESSED, "opted_out", detail_has=(RESUMED_NOTE,)),
    Row("resume: counts the deliveries begun before", PROMPT,
        facts(status="sending", sending_channel=Channel.APP, begun=2), Deliver,
        fields={"channel": Channel.APP, "resumed": True, "begun": 2}),
    Row("a first delivery has none begun before", PROMPT, facts(begun=0), Deliver,
        fields={"resumed": False, "begun": 0}),
    Row("resume: notifiers stopped MAX_BEGUN times: failed, not sent again", PROMPT,
        facts(status="sending", sending_channel=Channel.APP, begun=MAX_BEGUN), Record,
        Outcome.FAILED, "interrupted",
        {"channels": (Channel.APP,), "attempts": MAX_BEGUN, "message_channel": Channel.APP,
         "release_cooldown": False, "stage": NOTIFIER},
        (f"the notifier stopped {MAX_BEGUN} times while delivering it",
         "may have received it")),
    Row("resume: more than MAX_BEGUN (an older notifier's count): failed", PROMPT,
        facts(status="sending", sending_channel=Channel.EMAIL, begun=MAX_BEGUN + 2), Record,
        Outcome.FAILED, "interrupted", {"attempts": MAX_BEGUN + 2}),
    Row("resume: opted out since beats the bound", PROMPT,
        facts(status="sending", sending_channel=Channel.APP, begun=MAX_BEGUN,
              preferences=APP_OUT), Record, Outcome.SUPPRESSED, "opted_out"),
    Row("resume: preferences unreadable beats the bound", PROMPT,
        facts(status="sending", sending_channel=Channel.APP, begun=MAX_BEGUN,
              unreadable=frozenset({"preferences"})), Wait, fields={"missing": "preferences"}),
    # -- recipient --------------------------------------------------------------------------
    Row("unknown recipient: failed", PROMPT, facts(recipient_known=False), Record,
        Outcome.FAILED, "unknown_recipient",
        {"detail": "Not sent: the student's contact identity has expired or was erased.",
         "stage": NOTIFIER, "release_cooldown": False}),
    Row("unknown recipient is checked after quiet hours", PROMPT,
        facts(now=NIGHT, recipient_known=False), Defer, config=WITH_QUIET),
    Row("contact identity unreadable: wait", PROMPT,
        facts(unreadable=frozenset({"recipient"})), Wait, fields={"missing": "recipient"}),
    # -- the deferred delivery, when quiet hours end ----------------------------------------
    Row("due: delivered", PROMPT, facts(DEFERRED, now=MORNING), Deliver,
        fields={"channel": Channel.EMAIL, "stage": DEFERRED, "resumed": False},
        config=WITH_QUIET),
    Row("due, opted out overnight: suppressed at that stage", PROMPT,
        facts(DEFERRED, now=MORNING, preferences=ALL_OUT), Record, Outcome.SUPPRESSED,
        "opted_out", {"stage": DEFERRED, "release_cooldown": True}, config=WITH_QUIET),
    Row("taken while still quiet: kept until the end, no record", PROMPT,
        facts(DEFERRED, now=NIGHT), Postpone, fields={"due": MORNING}, config=WITH_QUIET),
    Row("due, preferences unreadable: wait", PROMPT,
        facts(DEFERRED, now=MORNING, unreadable=frozenset({"preferences"})), Wait,
        config=WITH_QUIET),
    Row("due, resumed on its channel", PROMPT,
        facts(DEFERRED, status="sending", sending_channel=Channel.APP), Deliver,
        fields={"channel": Channel.APP, "stage": DEFERRED, "resumed": True}),
    Row("due, interrupted MAX_BEGUN times: failed at that stage", PROMPT,
        facts(DEFERRED, status="sending", sending_channel=Channel.APP, begun=MAX_BEGUN),
        Record, Outcome.FAILED, "interrupted", {"stage": DEFERRED}),
    Row("due, unknown recipient: failed at that stage", PROMPT,
        facts(DEFERRED, recipient_known=False), Record, Outcome.FAILED, "unknown_recipient",
        {"stage": DEFERRED}),
]  # fmt: skip


def _record_of(decision: Decision) -> Record | None:
    if isinstance(decision, Record):
        return decision
    return getattr(decision, "record", None)


@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
def test_decide(row: Row) -> None:
    decision = policy.decide(row.nudge, row.facts, row.config)
    assert type(decision) is row.kind, decision
    record = _record_of(decision)
    if row.outcome is not None or row.reason is not None:
        assert record is not None
        assert (record.outcome, record.reason) == (row.outcome, row.reason)
    for name, expected in row.fields.items():
        owner = decision if hasattr(decision, name) else record
        assert getattr(owner, name) == expected, name
    for words in row.detail_has:
        assert record is not None
        assert words in record.detail


def test_every_decision_kind_and_every_unreadable_fact_has_a_row() -> None:
    kinds = {row.kind for row in ROWS}
    assert kinds == {Skip, Wait, Record, Queue, Defer, Postpone, Deliver}
    waited = {policy.decide(r.nudge, r.facts, r.config) for r in ROWS if r.kind is Wait}
    assert {w.missing for w in waited if isinstance(w, Wait)} == {
        "status",
        "preferences",
        "deferred_until",
        "tutor",
        "recipient",
    }


def test_nothing_is_ever_sent_without_readable_preferences() -> None:
    """Fail closed: whatever else is true, a prompt whose preferences are unknown is never
    delivered, deferred or recorded."""
    for stage in (NOTIFIER, DEFERRED):
        for now in (NOON, NIGHT):
            for status in (None, "sending"):
                for config in (EVERY_CHANNEL, WITH_QUIET, APP_ONLY):
                    unknown = facts(
                        stage,
                        now,
                        status=status,
                        sending_channel=Channel.APP,
                        unreadable=frozenset({"preferences"}),
                    )
                    assert policy.decide(PROMPT, unknown, config) == Wait("preferences")


# -- the records after the notifier's own writes: the cooldown claim and the delivery ---------

CLAIMED = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)

AFTER_WRITES = [
    (
        "cooldown claim refused",
        policy.cooldown_refused(CLAIMED, 72, NOTIFIER),
        Outcome.SUPPRESSED,
        "cooldown",
        "Not sent: the student was sent another automated message at 09:30 on 23 Nov 2026 "
        "(UTC), and we send at most one every 72 hours.",
    ),
    (
        "cooldown of a part hour, at the deferred stage",
        policy.cooldown_refused(CLAIMED, 1.5, DEFERRED),
        Outcome.SUPPRESSED,
        "cooldown",
        "Not sent: the student was sent another automated message at 09:30 on 23 Nov 2026 "
        "(UTC), and we send at most one every 1.5 hours.",
    ),
    (
        "delivered",
        policy.delivered(Channel.APP, "webhook", 2, NOTIFIER),
        Outcome.DELIVERED,
        "delivered",
        "Sent by app through the notification service (webhook).",
    ),
    (
        "delivery failed",
        policy.delivery_failed(Channel.EMAIL, "http_500", 3, DEFERRED),
        Outcome.FAILED,
        "http_500",
        "Not sent by email: delivery failed after 3 attempts (http_500).",
    ),
    (
        "delivered after a notifier stopped once while delivering it",
        policy.delivered(Channel.EMAIL, "webhook", 1, NOTIFIER, begun=1),
        Outcome.DELIVERED,
        "delivered",
        "Sent by email through the notification service (webhook). The notifier had stopped "
        "once while delivering it, before the answer was recorded; it was sent again as the "
        "same message (the nudge id as its key), so the service may have received it 2 times.",
    ),
    (
        "failed after notifiers stopped twice while delivering it",
        policy.delivery_failed(Channel.APP, "http_400", 1, NOTIFIER, begun=2),
        Outcome.FAILED,
        "http_400",
        "Not sent by app: delivery failed after 1 attempts (http_400). The notifier had "
        "stopped 2 times while delivering it, before the answer was recorded; it was sent "
        "again as the same message (the nudge id as its key), so the service may have "
        "received it 3 times.",
    ),
    (
        "interrupted",
        policy.interrupted(Channel.SMS, 3, DEFERRED),
        Outcome.FAILED,
        "interrupted",
        "Not sent again by sms: the notifier stopped 3 times while delivering it, before the "
        "notification service answered, so it was not tried once more. The service may have "
        "received it, always as the same message (the nudge id as its key).",
    ),
]


@pytest.mark.parametrize(
    ("record", "outcome", "reason", "detail"),
    [row[1:] for row in AFTER_WRITES],
    ids=[row[0] for row in AFTER_WRITES],
)
def test_records_after_a_claim_or_a_delivery(
    record: Record, outcome: Outcome, reason: str, detail: str
) -> None:
    assert (record.outcome, record.reason, record.detail) == (outcome, reason, detail)
    assert not record.release_cooldown  # the notifier gives a failed claim back itself


def test_the_records_after_a_delivery_name_its_channel_and_attempts() -> None:
    sent = policy.delivered(Channel.APP, "webhook", 2, DEFERRED)
    assert (sent.stage, sent.channels, sent.attempts) == (DEFERRED, (Channel.APP,), 2)
    failed = policy.delivery_failed(Channel.EMAIL, "timeout", 3, NOTIFIER)
    assert (failed.stage, failed.channels, failed.attempts) == (NOTIFIER, (Channel.EMAIL,), 3)


@pytest.mark.parametrize("begun", [1, 2])
def test_deliveries_begun_by_stopped_notifiers_count_as_attempts(begun: int) -> None:
    """Each may have reached the service: the record's attempts count every request."""
    assert policy.delivered(Channel.APP, "webhook", 1, NOTIFIER, begun).attempts == begun + 1
    failed = policy.delivery_failed(Channel.APP, "timeout", 4, NOTIFIER, begun)
    assert failed.attempts == begun + 4


def test_a_delivery_is_begun_at_most_max_begun_times_however_often_notifiers_stop() -> None:
    """Each resume is one more delivery begun; the resume after the last one is a record."""
    begun, sent = 0, 0
    while True:
        state = facts(status="sending" if begun else None, sending_channel=Channel.EMAIL,
                      begun=begun)  # fmt: skip
        decision = policy.decide(PROMPT, state, EVERY_CHANNEL)
        if not isinstance(decision, Deliver):
            break
        assert decision.begun == begun
        sent, begun = sent + 1, begun + 1  # the notifier stops before the answer, again
    assert sent == MAX_BEGUN
    assert isinstance(decision, Record) and decision.reason == "interrupted"


@pytest.mark.parametrize(
    ("waited_s", "note"),
    [
        (0.0, ""),
        (0.99, ""),
        (
            12.4,
            " It waited 12 s for the preference store, which could not be read; nothing was "
            "sent meanwhile.",
        ),
    ],
)
def test_a_decision_that_waited_a_second_or_more_says_so(waited_s: float, note: str) -> None:
    assert policy.waited_note(waited_s) == note


@pytest.mark.parametrize("route", [Route.PERSONAL_TUTOR, Route.SUPPORT, Route.COMPLIANCE])
@pytest.mark.parametrize("tutor", [None, "", "  ", "T001", " T002 "])
def test_the_policy_names_review_queues_as_the_review_rules_do(
    route: Route, tutor: str | None
) -> None:
    rules = ReviewRules(load_teams(DEFAULT_TEAMS))
    assert policy.review_queue(route, tutor) == rules.queue_for(route, tutor)
