"""The nudge: what a rule decided about a student, and why, in words a student can read (v1)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from schemas.common import SCHEMA_VERSION, WireModel
from schemas.signals import Pseudonym


class Tier(StrEnum):
    """How a nudge may reach the student: only a prompt is ever sent automatically."""

    PROMPT = "prompt"
    INVITATION = "invitation"
    REFERRAL = "referral"


class Channel(StrEnum):
    """Channels an automated prompt can use; the student can opt out of each."""

    EMAIL = "email"
    SMS = "sms"
    APP = "app"


class Route(StrEnum):
    """Who a nudge goes to: only a prompt goes to the student, and only automatically."""

    STUDENT = "student"
    PERSONAL_TUTOR = "personal_tutor"
    SUPPORT = "support"
    COMPLIANCE = "compliance"


class Explanation(WireModel):
    """Everything needed to say why the nudge exists."""

    summary: str = Field(description="One or two sentences addressed to the student.")
    metrics: dict[str, float | int]
    threshold: str = Field(description="The rule's condition in words, e.g. 'below 50%'.")
    window_start: date
    window_end: date
    sources: tuple[str, ...]
    score: float | None = Field(default=None, description="Engagement score 0-5 on the day.")
    band: str | None = Field(default=None, description="The score's band in words.")
    score_inputs: dict[str, float | int] = Field(
        default_factory=dict, description="What the score was made of (trailing window)."
    )
    notes: tuple[str, ...] = Field(
        default=(), description="Exemptions or data gaps that affected this decision."
    )


class Nudge(WireModel):
    """One decision by one rule about one student over one window; its id is deterministic."""

    schema_version: Literal[1] = SCHEMA_VERSION
    nudge_id: str
    pseudonym: Pseudonym
    rule_id: str
    rule_version: int
    tier: Tier
    channels: tuple[Channel, ...]
    route: Route = Route.STUDENT
    mode: Literal["live", "shadow"] = Field(
        default="live", description="A shadow decision is logged and never sent."
    )
    suppressed: Literal["exemption", "data_gap", "data_corrected"] | None = Field(
        default=None,
        description="Why the decision must not reach anyone, if it must not; data_corrected: a "
        "record that an earlier decision was based on register data later corrected.",
    )
    created_at: AwareDatetime = Field(description="Event time at which the rule fired.")
    explanation: Explanation
    emitted_at_ms: int | None = Field(
        default=None, description="Wall-clock time the detector emitted it (latency figures)."
    )
    published_at_ms: int | None = Field(
        default=None, description="Publish time of the newest event behind it, when known."
    )

    @model_validator(mode="after")
    def _only_prompts_reach_the_student(self) -> Nudge:
        # The rules file refuses this too; a nudge from anywhere else is checked here, so an
        # invitation or referral can never be taken for a message to the student.
        if (self.tier is Tier.PROMPT) != (self.route is Route.STUDENT):
            msg = f"a {self.tier.value} cannot be routed to {self.route.value}"
            raise ValueError(msg)
        return self
