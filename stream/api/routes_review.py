"""``/v1/review…``: the review queue of the signed-in tutor, support or compliance member.

What ``engagement review`` does, over HTTP, for the person the token or session names: their
own tutees' queue, their teams' queues and what was escalated to them as a team lead (the
teams file says who works which). Every listing and view is audited by the review store, as
the command's are. Claiming an item says who is dealing with it; a decision becomes an
intervention record the student can read (docs/review.md). An item that is not theirs answers
404, exactly as one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from schemas.access import Principal, Role
from schemas.interventions import InterventionRecord, Outcome, StaffAction
from schemas.nudges import Explanation, Route, Tier
from schemas.review import ReviewItem
from sinks.review.rules import MAX_NOTE, ReviewError
from sinks.stores.review import ClaimedError, ReviewQueue
from sinks.stores.review_claim import Claim, claim, claims, escalate_now
from stream.api.deps import require
from stream.api.problems import responses
from stream.api.routes_common import Api, api_of, now
from stream.api.session import require_csrf

router = APIRouter(prefix="/v1/review", tags=["review"])
Staff = Annotated[Principal, Depends(require(Role.TUTOR, Role.SUPPORT, Role.COMPLIANCE))]
Deps = Annotated[Api, Depends(api_of)]
NudgeIdPath = Annotated[
    str, Path(pattern=r"^n_[0-9a-f]{32}$", description="The item's nudge id, from the list.")
]
NOT_YOURS: Final = "no such review item, or not one you may see"


class ReviewEntry(BaseModel):
    """One invitation or referral in the signed-in person's queues."""

    nudge_id: str
    student_id: str | None = Field(description="None when the id is no longer held.")
    rule_id: str
    rule_version: int
    tier: Tier
    route: Route
    queue: str = Field(description="e.g. 'tutor:T001', 'team:support', 'lead:T900'.")
    queued_at: AwareDatetime
    created_at: AwareDatetime = Field(description="Event time at which the rule fired.")
    summary: str
    escalated_to: str | None = None
    escalated_at: AwareDatetime | None = None
    claimed_by: str | None = None
    claimed_at: AwareDatetime | None = None


class ReviewDetail(ReviewEntry):
    """One item in full: the nudge's explanation, and whether it is decided."""

    explanation: Explanation
    decided: bool


class Action(StrEnum):
    """What was done about an item."""

    CONTACTED = "contacted"
    MEETING_BOOKED = "meeting_booked"
    NO_ACTION = "no_action"
    REFERRED = "referred"
    ESCALATE = "escalate"


class Decision(BaseModel):
    """What the signed-in person did: ``no_action`` needs a reason (the student reads it);
    ``referred`` needs ``referred_to``; ``escalate`` passes the item to the team lead now."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    reason: Annotated[str, StringConstraints(max_length=MAX_NOTE)] | None = None
    referred_to: Annotated[str, StringConstraints(max_length=200)] | None = None


class Recorded(BaseModel):
    """The intervention record a decision (or an escalation) added."""

    record_id: str
    nudge_id: str
    outcome: Outcome
    action: StaffAction | None = Field(
        description="contacted, meeting_booked, no_action or referred; none for an escalation."
    )
    detail: str = Field(description="The decision in words, as the student reads it.")
    decided_at: AwareDatetime
    queue: str | None = None


class Claimed(BaseModel):
    """Who holds the item now."""

    nudge_id: str
    claimed_by: str
    claimed_at: AwareDatetime


def queue_of(api: Api) -> ReviewQueue:
    """The review store on the API's Redis; decisions go to the log of record's outbox, which
    the notifier publishes on the interventions topic."""
    log = api.interventions
    return ReviewQueue(
        api.redis,
        api.settings.key_prefix,
        api.teams,
        log.append,
        recorded_key=log.recorded_key,
        audit_retention_days=api.settings.audit_retention_days,
    )


async def student_ids(api: Api, pseudonyms: list[str]) -> dict[str, str]:
    """Student ids behind pseudonyms: the roster's, else the ingest's identity map."""
    if not pseudonyms:
        return {}
    keys = [api.keys.roster_identity(p) for p in pseudonyms]
    keys += [api.keys.identity(p) for p in pseudonyms]
    values = await api.redis.mget(keys)
    n = len(pseudonyms)
    out = {}
    for i, pseudonym in enumerate(pseudonyms):
        value = values[i] if values[i] is not None else values[n + i]
        if value is not None:
            out[pseudonym] = value.decode() if isinstance(value, bytes) else str(value)
    return out


def _entry(item: ReviewItem, student_id: str | None, held: Claim | None) -> dict[str, object]:
    fields = item.model_dump(exclude={"pseudonym", "schema_version", "explanation", "decided"})
    return fields | {
        "student_id": student_id,
        "claimed_by": held.staff_id if held else None,
        "claimed_at": held.at if held else None,
    }


def _refusal(exc: ReviewError) -> HTTPException:
    if exc.kind in ("not_found", "forbidden"):
        return HTTPException(404, NOT_YOURS)
    if isinstance(exc, ClaimedError) or exc.kind == "already_decided":
        return HTTPException(409, str(exc))
    return HTTPException(400, str(exc))


async def _posted(staff: Staff, request: Request) -> Principal:
    """The signed-in person, once a change from the pages carries its CSRF token (a bearer
    request needs none); checked after sign-in, so no sign-in is a 401, not a 403."""
    await require_csrf(request)
    return staff


Poster = Annotated[Principal, Depends(_posted)]


@router.get("", response_model=list[ReviewEntry], summary="My review queue")
async def review_list(staff: Staff, api: Deps) -> list[ReviewEntry]:
    """Undecided items the signed-in person may act on, referrals first, then oldest first
    (audited: one entry per student listed)."""
    queue = queue_of(api)
    items = await queue.visible_to(staff.subject, now=now())
    held = await claims(queue, [item.nudge_id for item in items])
    ids = await student_ids(api, sorted({item.pseudonym for item in items}))
    return [
        ReviewEntry.model_validate(_entry(item, ids.get(item.pseudonym), held.get(item.nudge_id)))
        for item in items
    ]


@router.get(
    "/{nudge_id}",
    response_model=ReviewDetail,
    responses=responses(404, description=NOT_YOURS),
    summary="One review item",
)
async def review_show(nudge_id: NudgeIdPath, staff: Staff, api: Deps) -> ReviewDetail:
    """One item in full, for someone who may act on it (audited, a refused look too)."""
    queue = queue_of(api)
    try:
        item = await queue.show(nudge_id, staff.subject, now())
    except ReviewError as exc:
        raise _refusal(exc) from None
    held = (await claims(queue, [nudge_id])).get(nudge_id)
    sid = (await student_ids(api, [item.pseudonym])).get(item.pseudonym)
    fields = _entry(item, sid, held) | {"explanation": item.explanation, "decided": item.decided}
    return ReviewDetail.model_validate(fields)


@router.post(
    "/{nudge_id}/claim",
    response_model=Claimed,
    responses=responses(404, 409, description=NOT_YOURS),
    summary="Take a review item",
)
async def review_claim(nudge_id: NudgeIdPath, staff: Poster, api: Deps) -> Claimed:
    """The signed-in person takes the item: nobody else may claim or decide it now, except the
    team lead, who may take it over. Claiming again is harmless."""
    try:
        taken = await claim(queue_of(api), nudge_id, staff.subject, now())
    except ReviewError as exc:
        raise _refusal(exc) from None
    return Claimed(nudge_id=nudge_id, claimed_by=taken.staff_id, claimed_at=taken.at)


def _recorded(record: InterventionRecord) -> Recorded:
    return Recorded.model_validate(record.model_dump(include=set(Recorded.model_fields)))


@router.post(
    "/{nudge_id}/decision",
    response_model=Recorded,
    responses=responses(404, 409, description=NOT_YOURS),
    summary="Record what was done",
)
async def review_decide(
    nudge_id: NudgeIdPath, decision: Decision, staff: Poster, api: Deps
) -> Recorded:
    """Record what the signed-in person did (contacted, meeting_booked, no_action with a
    reason, referred to a service, or escalate to the team lead); once per item."""
    queue = queue_of(api)
    moment: datetime = now()
    try:
        if decision.action is Action.ESCALATE:
            record = await escalate_now(queue, nudge_id, staff.subject, decision.reason, moment)
        else:
            record = await queue.decide(
                nudge_id,
                staff.subject,
                StaffAction(decision.action.value),
                reason=decision.reason,
                referred_to=decision.referred_to,
                now=moment,
            )
    except ReviewError as exc:
        raise _refusal(exc) from None
    return _recorded(record)
