"""The intervention record: one per decision about a nudge, appended and never rewritten (v1)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.common import SCHEMA_VERSION, WireModel
from schemas.nudges import Channel, Tier
from schemas.signals import Pseudonym


class Outcome(StrEnum):
    """What happened to a nudge."""

    DELIVERED = "delivered"
    SUPPRESSED = "suppressed"
    FAILED = "failed"
    QUEUED_FOR_REVIEW = "queued_for_review"
    SHADOW = "shadow"


class InterventionRecord(WireModel):
    """The log of record: visible to the student, exportable to the student-records system."""

    schema_version: Literal[1] = SCHEMA_VERSION
    record_id: str
    nudge_id: str
    pseudonym: Pseudonym
    rule_id: str
    rule_version: int
    tier: Tier
    outcome: Outcome
    reason: str = Field(description="Machine-readable, e.g. 'opted_out' or 'http_503'.")
    detail: str = Field(description="A sentence a student or member of staff can read.")
    channels: tuple[Channel, ...] = ()
    attempts: int = 0
    decided_at: AwareDatetime
    summary: str = Field(description="The nudge's explanation, as the student would read it.")
