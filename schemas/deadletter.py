"""The dead-letter record: why an input was refused, with a redacted excerpt (v1)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.common import SCHEMA_VERSION, Reason, WireModel


class DeadLetter(WireModel):
    """One refused input. The payload excerpt never carries a student id."""

    schema_version: Literal[1] = SCHEMA_VERSION
    reason: Reason
    detail: str = Field(description="A human sentence saying what was wrong and what to fix.")
    topic: str
    partition: int
    offset: int
    index: int | None = Field(default=None, description="Position inside an envelope, if any.")
    event_id: str | None = None
    received_at: AwareDatetime
    payload_excerpt: str
