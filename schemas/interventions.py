"""The intervention record: one per decision about a nudge, appended and never rewritten (v1).

A nudge can see more than one decision, each by a different stage, and each stage decides at
most once: the notifier (delivered, failed, suppressed, deferred, queued for review, shadow),
the delivery of a deferred prompt, the escalation of an untouched review item, and the staff
member who acts on it. ``record_id`` is derived from the nudge id and the stage, so a repeated
write is recognised.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.common import SCHEMA_VERSION, WireModel
from schemas.nudges import Channel, Route, Tier
from schemas.signals import Pseudonym


class Outcome(StrEnum):
    """What happened to a nudge at one stage."""

    DELIVERED = "delivered"
    SUPPRESSED = "suppressed"
    FAILED = "failed"
    DEFERRED = "deferred"
    QUEUED_FOR_REVIEW = "queued_for_review"
    ESCALATED = "escalated"
    STAFF_DECISION = "staff_decision"
    SHADOW = "shadow"


class Stage(StrEnum):
    """Which step took a decision; each decides at most once per nudge."""

    NOTIFIER = "notifier"
    DEFERRED_DELIVERY = "deferred_delivery"
    ESCALATION = "escalation"
    REVIEW = "review"


class StaffAction(StrEnum):
    """What a member of staff did about a review item."""

    CONTACTED = "contacted"
    MEETING_BOOKED = "meeting_booked"
    NO_ACTION = "no_action"
    REFERRED = "referred"


class RenderedMessage(WireModel):
    """The exact text that was (or would have been) sent on one channel."""

    channel: Channel
    subject: str | None = Field(default=None, description="None for channels without one (SMS).")
    body: str


class InterventionRecord(WireModel):
    """The log of record: visible to the student, exportable to the student-records system."""

    schema_version: Literal[1] = SCHEMA_VERSION
    record_id: str
    nudge_id: str
    pseudonym: Pseudonym
    rule_id: str
    rule_version: int
    tier: Tier
    route: Route = Route.STUDENT
    stage: Stage = Stage.NOTIFIER
    outcome: Outcome
    reason: str = Field(description="Machine-readable, e.g. 'opted_out' or 'http_503'.")
    detail: str = Field(description="A sentence a student or member of staff can read.")
    channels: tuple[Channel, ...] = ()
    attempts: int = 0
    decided_at: AwareDatetime
    summary: str = Field(description="The nudge's explanation, as the student would read it.")
    message: RenderedMessage | None = Field(
        default=None, description="What was sent, or would have been sent, to the student."
    )
    waited_s: float = Field(
        default=0.0, description="How long the decision waited for the preference store."
    )
    deferred_until: AwareDatetime | None = Field(
        default=None, description="When a prompt deferred by quiet hours is due."
    )
    queue: str | None = Field(
        default=None, description="Review queue, e.g. 'tutor:ST0001' or 'team:compliance'."
    )
    staff_id: str | None = Field(default=None, description="Who decided, for staff decisions.")
    action: StaffAction | None = None
    referred_to: str | None = Field(default=None, description="The service referred on to.")
