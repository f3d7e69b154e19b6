"""The nudge: what a rule decided about a student, and why, in words a student can read (v1)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

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


class Explanation(WireModel):
    """Everything needed to say why the nudge exists."""

    summary: str = Field(description="One or two sentences addressed to the student.")
    metrics: dict[str, float | int]
    threshold: str = Field(description="The rule's condition in words, e.g. 'below 50%'.")
    window_start: date
    window_end: date
    sources: tuple[str, ...]


class Nudge(WireModel):
    """One decision by one rule about one student over one window; its id is deterministic."""

    schema_version: Literal[1] = SCHEMA_VERSION
    nudge_id: str
    pseudonym: Pseudonym
    rule_id: str
    rule_version: int
    tier: Tier
    channels: tuple[Channel, ...]
    created_at: AwareDatetime = Field(description="Event time at which the rule fired.")
    explanation: Explanation
    emitted_at_ms: int | None = Field(
        default=None, description="Wall-clock time the detector emitted it (latency figures)."
    )
    published_at_ms: int | None = Field(
        default=None, description="Publish time of the newest event behind it, when known."
    )
