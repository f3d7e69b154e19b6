"""``/v1/me…``: the signed-in student's own data, every read of it audited (role student).

Their engagement (metrics per source, each rule's window and threshold, the band and its
explanation, a weekly series), every intervention record about them (suppressed ones with
their reason), their opt-outs (a change goes through the preferences topic, as every other
change does, and applies at the next send), who has looked at their data, and the
subject-access export.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, ValidationError

from schemas.access import Principal, Role
from schemas.interventions import InterventionRecord, Outcome, RenderedMessage, StaffAction, Stage
from schemas.nudges import Channel, Route, Tier
from schemas.preferences import PreferenceChange, Preferences
from stream.api.deps import require
from stream.api.problems import responses
from stream.api.routes_common import Api, Held, api_of, held, now, reader
from stream.api.routes_export import ZIP_TYPE, export_zip
from stream.api.routes_view import Engagement, engagement
from stream.api.session import require_csrf

router = APIRouter(prefix="/v1/me", tags=["me"])
Student = Annotated[Principal, Depends(require(Role.STUDENT))]
Deps = Annotated[Api, Depends(api_of)]
APPLY_WAIT_S = 3.0


class Me(BaseModel):
    """The signed-in student's engagement."""

    engagement: Engagement


class Intervention(BaseModel):
    """One intervention record: what was decided about a nudge, by which stage, and why."""

    record_id: str
    nudge_id: str
    rule_id: str
    rule_version: int
    tier: Tier
    route: Route
    stage: Stage
    outcome: Outcome
    reason: str = Field(description="Machine-readable, e.g. 'opted_out'.")
    detail: str = Field(description="The decision in words.")
    summary: str = Field(description="The nudge's explanation.")
    channels: list[Channel]
    decided_at: AwareDatetime
    deferred_until: AwareDatetime | None = None
    queue: str | None = None
    staff_id: str | None = None
    action: StaffAction | None = None
    referred_to: str | None = None
    message: RenderedMessage | None = None


def interventions_of(records: list[InterventionRecord]) -> list[Intervention]:
    """Records as the API shows them (newest first, without the pseudonym)."""
    shown = [Intervention.model_validate(r.model_dump(exclude={"pseudonym"})) for r in records]
    return sorted(shown, key=lambda r: r.decided_at, reverse=True)


class PreferencesView(BaseModel):
    """Opt-outs of automated prompts: all of them, or some channels."""

    opt_out_all: bool
    opted_out_channels: list[Channel]
    channels: list[Channel] = Field(description="Every channel one may opt out of.")
    updated_at: AwareDatetime | None = None


class PreferencesWanted(BaseModel):
    """The opt-outs the student wants from now on (the whole set, not a change)."""

    model_config = ConfigDict(extra="forbid")

    opt_out_all: StrictBool = False  # true or false, as documented: never 0, 1 or "yes"
    opted_out_channels: list[Channel] = Field(default_factory=list, max_length=len(Channel))


class PreferencesChanged(BaseModel):
    """A change taken: applied already, or applied by the notifier before its next send."""

    change_id: str
    applied: bool
    preferences: PreferencesView


class AccessEntry(BaseModel):
    """One read of the student's data: who (``you`` for themselves), in what role, what."""

    who: str
    role: str
    action: str
    at: AwareDatetime
    outcome: str


def _view(prefs: Preferences) -> PreferencesView:
    return PreferencesView(
        opt_out_all=prefs.opt_out_all,
        opted_out_channels=sorted(prefs.opted_out_channels),
        channels=list(Channel),
        updated_at=prefs.updated_at,
    )


async def _mine(api: Api, principal: Principal, action: str) -> Held:
    """What is held about the signed-in student; the read is audited."""
    pseudonym = api.pseudonymise(principal.subject)
    await api.audit.record(
        who=reader(api, principal),
        role=Role.STUDENT.value,
        pseudonym=pseudonym,
        action=action,
        now=now(),
    )
    return await held(api, pseudonym)


@router.get("", response_model=Me, summary="My engagement")
async def me(principal: Student, api: Deps) -> Me:
    """Metrics per source, each rule's window and threshold, the score, its band and a
    weekly series of activity."""
    found = await _mine(api, principal, "GET /v1/me")
    return Me(engagement=await engagement(api, found, now()))


@router.get("/interventions", response_model=list[Intervention], summary="My records")
async def my_interventions(principal: Student, api: Deps) -> list[Intervention]:
    """Every intervention record about me, newest first, suppressed ones with their reason."""
    found = await _mine(api, principal, "GET /v1/me/interventions")
    return interventions_of(found.records)


@router.get("/preferences", response_model=PreferencesView, summary="My opt-outs")
async def my_preferences(principal: Student, api: Deps) -> PreferencesView:
    """My opt-outs of automated prompts."""
    found = await _mine(api, principal, "GET /v1/me/preferences")
    return _view(await api.preferences.get(found.pseudonym))


async def _posted(principal: Student, request: Request) -> Principal:
    """The signed-in student, once a change from the pages carries its CSRF token (a bearer
    request needs none); checked after sign-in, so no sign-in is a 401, not a 403."""
    await require_csrf(request)
    return principal


@router.put(
    "/preferences",
    response_model=PreferencesChanged,
    status_code=202,
    responses=responses(503),  # the change goes to the broker: none answers
    summary="Change my opt-outs",
)
async def set_preferences(
    wanted: PreferencesWanted, principal: Annotated[Principal, Depends(_posted)], api: Deps
) -> PreferencesChanged:
    """Opt out of (or back in to) automated prompts on each channel; it applies at the next
    send. The change goes on the preferences topic, as every other change does."""
    pseudonym = (await _mine(api, principal, "PUT /v1/me/preferences")).pseudonym
    current = await api.preferences.get(pseudonym)
    if not _differs(current, wanted):
        return PreferencesChanged(change_id="", applied=True, preferences=_view(current))
    want = frozenset(wanted.opted_out_channels)
    try:
        change = PreferenceChange(
            change_id=f"api-{uuid.uuid4().hex}",
            student_id=principal.subject,
            opt_out_all=wanted.opt_out_all if wanted.opt_out_all != current.opt_out_all else None,
            opt_out=want - current.opted_out_channels,
            opt_in=current.opted_out_channels - want,
            changed_at=now(),
            source="student-api",
        )
    except ValidationError:  # a subject the provider sent that is no student id we take
        raise HTTPException(400, "your sign-in id is not one a change can be made for") from None
    topic = api.settings.topics.preferences
    await api.publish(topic, principal.subject, change.model_dump_json())
    applied = await _applied(api, change.change_id)
    after = await api.preferences.get(pseudonym) if applied else change.applied_to(current)
    return PreferencesChanged(change_id=change.change_id, applied=applied, preferences=_view(after))


def _differs(current: Preferences, wanted: PreferencesWanted) -> bool:
    return current.opt_out_all != wanted.opt_out_all or current.opted_out_channels != frozenset(
        wanted.opted_out_channels
    )


async def _applied(api: Api, change_id: str) -> bool:
    """Whether the notifier applied the change within a short wait."""
    key = api.keys.preference_applied(change_id)
    deadline = time.monotonic() + APPLY_WAIT_S
    while time.monotonic() < deadline:
        if await api.redis.exists(key):
            return True
        await asyncio.sleep(0.1)
    return False


@router.get("/access-log", response_model=list[AccessEntry], summary="Who has looked at my data")
async def my_access_log(
    principal: Student,
    api: Deps,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AccessEntry]:
    """The audit entries about me, newest first."""
    found = await _mine(api, principal, "GET /v1/me/access-log")
    me_as = reader(api, principal)
    return [
        AccessEntry(
            who="you" if entry.who == me_as else entry.who,
            role=entry.role,
            action=entry.action,
            at=entry.at,
            outcome=entry.outcome,
        )
        for entry in await api.audit.about(found.pseudonym, limit)
    ]


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {ZIP_TYPE: {}}, "description": "A zip of JSON and CSV files."}},
    summary="Everything held about me",
)
async def my_export(principal: Student, api: Deps) -> Response:
    """The subject-access export: everything held about me, as JSON and as CSV, in one zip."""
    found = await _mine(api, principal, "GET /v1/me/export")
    moment: datetime = now()
    body = await export_zip(api, found, moment, you=reader(api, principal))
    name = f"my-engagement-data-{moment:%Y%m%d}.zip"
    return Response(
        body, media_type=ZIP_TYPE, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
