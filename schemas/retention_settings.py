"""Settings of the retention job and of erasure: a period per retention class, the grace.

Part of the one settings object: ``schemas.settings.Settings`` derives from
:class:`RetentionSettings` and lists these variables in its ``ENV``. The audit class keeps its
own ``ENGAGEMENT_AUDIT_RETENTION_DAYS`` (schemas/api_settings.py) and the UKVI class its own
``ENGAGEMENT_UKVI_RETENTION_DAYS`` (schemas/report_settings.py). What each class holds, and
why the defaults are what they are, is in docs/retention.md.
"""

from __future__ import annotations

from typing import Final

from pydantic import AliasChoices, BaseModel, Field, field_validator

RETENTION_ENV = {
    "retain_interventions_days": "ENGAGEMENT_RETAIN_INTERVENTIONS_DAYS",
    "retain_review_days": "ENGAGEMENT_RETAIN_REVIEW_DAYS",
    "retain_preferences_days": "ENGAGEMENT_RETAIN_PREFERENCES_DAYS",
    "erasure_grace_days": "ENGAGEMENT_ERASURE_GRACE_DAYS",
    "retention_interval_s": "ENGAGEMENT_RETENTION_INTERVAL_S",
}

# A year after the decision: long enough for the next year's progression review and for a
# complaint about an intervention to be answered from the record, and shorter than the UKVI
# record (400 days), so nothing about a student outlives the compliance record. The student
# records system keeps its exported copy on its own schedule.
RETAIN_INTERVENTIONS_DAYS: Final = 365
# A decided review item repeats what its intervention records say; half a year after it was
# queued is enough for staff to look back over a term.
RETAIN_REVIEW_DAYS: Final = 180
# Past changes of a student's opt-outs; the current opt-outs themselves are kept while the
# student is enrolled (dropping them would start messages again) and go with erasure.
RETAIN_PREFERENCES_DAYS: Final = 365
# A withdrawal is often reversed within weeks (appeals, late reinstatement, a status entered
# in error); thirty days after the withdrawal takes effect, the student's data is erased.
ERASURE_GRACE_DAYS: Final = 30
RETENTION_INTERVAL_S: Final = 86_400.0


def _env(field: str) -> AliasChoices:
    return AliasChoices(RETENTION_ENV[field])


class RetentionSettings(BaseModel):
    """The retention job's fields of the settings object."""

    retain_interventions_days: int | None = Field(
        default=RETAIN_INTERVENTIONS_DAYS,
        ge=1,
        le=36_500,
        validation_alias=_env("retain_interventions_days"),
        description="Intervention records older than this (by decision time) are removed from "
        "each student's list; off keeps them.",
    )
    retain_review_days: int | None = Field(
        default=RETAIN_REVIEW_DAYS,
        ge=1,
        le=36_500,
        validation_alias=_env("retain_review_days"),
        description="Decided review items queued longer ago than this are removed, with their "
        "ids in the review queues; undecided items are always kept.",
    )
    retain_preferences_days: int | None = Field(
        default=RETAIN_PREFERENCES_DAYS,
        ge=1,
        le=36_500,
        validation_alias=_env("retain_preferences_days"),
        description="Entries of a student's preference history older than this are removed.",
    )
    erasure_grace_days: int = Field(
        default=ERASURE_GRACE_DAYS,
        ge=0,
        le=3_650,
        validation_alias=_env("erasure_grace_days"),
        description="A student withdrawn (an open-ended withdrawn exemption) for longer than "
        "this is erased by the retention job.",
    )
    retention_interval_s: float = Field(
        default=RETENTION_INTERVAL_S,
        ge=1,
        le=7 * 86_400,
        validation_alias=_env("retention_interval_s"),
        description="How often the notifier runs the retention job (once a day by default).",
    )

    @field_validator(
        "retain_interventions_days", "retain_review_days", "retain_preferences_days", mode="before"
    )
    @classmethod
    def _unset(cls, value: object) -> object:
        # An empty value, "off" or "none" leaves the class alone: the job never touches it.
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        return value
