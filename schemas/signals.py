"""The canonical signal that ingest produces: pseudonymous, minimal, in event time (schema v1).

Signals travel between agents batched per target partition (``SignalBatch``), so one Kafka
message carries many signals while each student's signals stay in order on one partition.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.common import SCHEMA_VERSION, WireModel
from schemas.sources import RegisteredSource

Pseudonym = Annotated[str, StringConstraints(pattern=r"^p_[0-9a-f]{32}$")]


class Signal(WireModel):
    """One engagement observation about one (pseudonymous) student."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str
    pseudonym: Pseudonym
    source: RegisteredSource
    occurred_at_ms: int = Field(description="Event time, milliseconds since the Unix epoch (UTC).")
    day: int = Field(description="Calendar day in the institution's timezone, as a date ordinal.")
    hour: int = Field(default=0, ge=0, le=23, description="Local hour of the day (source health).")
    kind: str = Field(
        description="present/late/absent/excused/withdrawn, the VLE action, or in/out."
    )
    context: str = Field(description="Module, course or building the signal belongs to.")
    session: str = Field(
        default="",
        description="The timetabled session an attendance mark is for: a later mark for the "
        "same student and session replaces it (a correction). Empty for other feeds.",
    )
    published_at_ms: int | None = Field(
        default=None, description="When the publisher sent the raw event, for latency figures."
    )
    raw_partition: int = Field(
        default=0, description="Raw-topic partition it came from (per-feed watermarks)."
    )


class SignalBatch(WireModel):
    """The value of one message on the signals topic."""

    schema_version: Literal[1] = SCHEMA_VERSION
    published_at_ms: int | None = Field(
        default=None, description="Newest raw publish time behind the batch (latency figures)."
    )
    signals: list[Signal]
    watermark_ms: int | None = Field(
        default=None,
        description="Highest event time the ingest had seen when it sent this batch; it moves "
        "the watermark of partitions whose students are silent.",
    )
