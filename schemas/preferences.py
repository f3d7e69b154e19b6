"""Student preferences for automated prompts (v1). Opting out never hides a student's own data."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime

from schemas.common import SCHEMA_VERSION, WireModel
from schemas.nudges import Channel


class Preferences(WireModel):
    """Opt-out of all automated prompts, or of chosen channels."""

    schema_version: Literal[1] = SCHEMA_VERSION
    opt_out_all: bool = False
    opted_out_channels: frozenset[Channel] = frozenset()
    updated_at: AwareDatetime | None = None
    source: str = "unknown"

    def allows(self, channel: Channel) -> bool:
        """Whether an automated prompt may be sent on ``channel``."""
        return not self.opt_out_all and channel not in self.opted_out_channels
