"""Student preferences for automated prompts (v1). Opting out never hides a student's own data.

Changes arrive on the ``preferences`` topic (from the student app, or ``engagement prefs``)
keyed by student id; the notifier applies them in Redis and keeps every change with its time
and source.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from schemas.common import SCHEMA_VERSION, WireModel
from schemas.fields import ShortText, StudentId
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


class PreferenceChange(WireModel):
    """One change a student made: opt out of (or back in to) all prompts or some channels."""

    schema_version: Literal[1] = SCHEMA_VERSION
    change_id: ShortText = Field(description="Unique per change; a repeat is applied once.")
    student_id: StudentId
    opt_out_all: bool | None = Field(
        default=None, description="True: no automated prompts at all; False: undo that."
    )
    opt_out: frozenset[Channel] = frozenset()
    opt_in: frozenset[Channel] = frozenset()
    changed_at: AwareDatetime
    source: ShortText = Field(description="Where the change was made, e.g. 'student-app'.")

    @model_validator(mode="after")
    def _something(self) -> PreferenceChange:
        if self.opt_out_all is None and not self.opt_out and not self.opt_in:
            msg = "a change must set opt_out_all or list channels in opt_out or opt_in"
            raise ValueError(msg)
        if self.opt_out & self.opt_in:
            msg = "a channel cannot be in both opt_out and opt_in"
            raise ValueError(msg)
        return self

    def applied_to(self, current: Preferences) -> Preferences:
        """The preferences after this change."""
        opt_out_all = current.opt_out_all if self.opt_out_all is None else self.opt_out_all
        channels = (current.opted_out_channels | self.opt_out) - self.opt_in
        return Preferences(
            opt_out_all=opt_out_all,
            opted_out_channels=channels,
            updated_at=self.changed_at,
            source=self.source,
        )


class PreferenceHistoryEntry(WireModel):
    """A change as kept in the history: when, where from, what, and the result."""

    change_id: str
    changed_at: AwareDatetime
    applied_at: AwareDatetime
    source: str
    opt_out_all: bool | None
    opt_out: frozenset[Channel]
    opt_in: frozenset[Channel]
    result: Preferences
