"""The nudge schema itself refuses an invitation or referral addressed to the student."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from schemas.nudges import Nudge, Route, Tier
from tests.unit.build import days, only, run, student

END = date(2026, 10, 25).toordinal()


def prompt() -> Nudge:
    who = student(days(END - 20, END - 8, vle=3), END - 20)
    (nudge,) = run(only("no_vle_activity_7d"), who, END - 20, END)
    return nudge


@pytest.mark.parametrize(
    ("tier", "route"),
    [
        (Tier.INVITATION, Route.STUDENT),
        (Tier.REFERRAL, Route.STUDENT),
        (Tier.PROMPT, Route.PERSONAL_TUTOR),
        (Tier.PROMPT, Route.COMPLIANCE),
    ],
)
def test_only_a_prompt_is_ever_addressed_to_the_student(tier: Tier, route: Route) -> None:
    data = prompt().model_dump(mode="json") | {"tier": tier.value, "route": route.value}
    with pytest.raises(ValidationError, match="cannot be routed"):
        Nudge.model_validate(data)


def test_the_detectors_nudges_pass() -> None:
    nudge = prompt()
    assert Nudge.model_validate_json(nudge.model_dump_json()) == nudge
