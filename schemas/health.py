"""Source-health events: a feed, door controller or register gone quiet (schema v1)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from schemas.common import SCHEMA_VERSION, WireModel
from schemas.sources import RegisteredSource


class SourceGap(WireModel):
    """Hours of one local day in which a source was silent where activity was expected.

    Absence-based rules do not fire for the students and days a gap covers: students enrolled
    on ``modules`` (everyone, when ``modules`` is empty or the student has no roster entry).
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    gap_id: str
    source: RegisteredSource
    location: str = Field(description="Building, module register, or 'all' for a whole feed.")
    day: date
    start_hour: int = Field(ge=0, le=23)
    end_hour: int = Field(ge=1, le=24, description="Exclusive.")
    reason: Literal[
        "silent_against_pattern", "door_silent_during_session", "register_without_marks"
    ]
    modules: tuple[str, ...] = ()
    affects: tuple[str, ...] = Field(description="Sources whose data the gap makes unreliable.")
    detail: str
