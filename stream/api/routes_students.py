"""``/v1/students/{student_id}…``: one student's data for a member of staff allowed to see it.

Access by role (``stream/api/access.py``): a personal tutor sees their tutees, support the
students with a review item routed to their team, compliance sponsored-visa students, a
student themselves. Every read is audited, a refused one too (outcome ``refused``), and a
refusal answers 404 exactly as a student who does not exist does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from schemas.access import Principal, Role
from sinks.retention import ErasureError, ErasureTombstone, erase
from stream.api.deps import principal, require
from stream.api.problems import responses
from stream.api.routes_common import NOT_FOUND, Api, api_of, now, staff_read
from stream.api.routes_me import Intervention, interventions_of
from stream.api.routes_view import Engagement, engagement
from stream.api.session import require_csrf

router = APIRouter(prefix="/v1/students", tags=["students"])
Reader = Annotated[Principal, Depends(principal)]
Deps = Annotated[Api, Depends(api_of)]
StudentIdPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^\S+$", description="Institutional id.")
]


class StudentView(BaseModel):
    """One student as an authorised member of staff sees them."""

    student_id: str
    seen_as: str = Field(description="The role under which this read was allowed.")
    personal_tutor: str | None
    sponsored_visa: bool
    engagement: Engagement


@router.get(
    "/{student_id}",
    response_model=StudentView,
    responses=responses(404, description=NOT_FOUND),
    summary="One student",
)
async def student(student_id: StudentIdPath, who: Reader, api: Deps) -> StudentView:
    """The student's engagement, for someone whose role allows it (audited)."""
    found, role = await staff_read(api, who, student_id, "GET /v1/students/{student_id}")
    enrolment = found.enrolment
    return StudentView(
        student_id=student_id,
        seen_as=role.value,
        personal_tutor=enrolment.personal_tutor if enrolment else None,
        sponsored_visa=bool(enrolment and enrolment.sponsored_visa),
        engagement=await engagement(api, found, now()),
    )


@router.get(
    "/{student_id}/interventions",
    response_model=list[Intervention],
    responses=responses(404, description=NOT_FOUND),
    summary="One student's records",
)
async def student_interventions(
    student_id: StudentIdPath, who: Reader, api: Deps
) -> list[Intervention]:
    """Every intervention record about the student, newest first (audited)."""
    found, _ = await staff_read(api, who, student_id, "GET /v1/students/{student_id}/interventions")
    return interventions_of(found.records)


class ErasureRequest(BaseModel):
    """A compliance request to erase one student's data."""

    reason: str = Field(
        min_length=3,
        max_length=200,
        description="Why (e.g. 'subject request 2026-114'); never the student's id or name.",
    )


class ErasureDone(BaseModel):
    """What the erasure did: counts and kept families only."""

    erased_at: datetime
    reason: str
    keys_deleted: int
    entries_removed: int
    kept: list[str] = Field(description="Families kept by law (UKVI records), by name.")


@router.post(
    "/{student_id}/erasure",
    response_model=ErasureDone,
    responses=responses(400, 503),
    summary="Erase one student's data (compliance)",
)
async def erase_student(
    student_id: StudentIdPath,
    body: ErasureRequest,
    who: Annotated[Principal, Depends(require(Role.COMPLIANCE))],
    _csrf: Annotated[None, Depends(require_csrf)],  # after sign-in: no credentials is a 401
    api: Deps,
) -> ErasureDone:
    """Remove every key and entry about the student (UKVI records are kept for their own
    period), leave an identity-free tombstone in the log of record, and a receipt the
    student's export reads. Audited without naming the student (docs/retention.md)."""
    moment = now()
    settings = api.settings

    async def send(tombstone: ErasureTombstone) -> None:
        await api.publish(
            settings.topics.interventions, tombstone.tombstone_id, tombstone.model_dump_json()
        )

    try:
        done = await erase(
            api.redis,
            settings.key_prefix,
            settings.pseudonym_key,
            api.pseudonymise(student_id),
            reason=body.reason,
            now=moment,
            student_id=student_id,
            publish=send,
        )
    except ErasureError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    await api.audit.record(
        who=who.subject,
        role=Role.COMPLIANCE.value,
        pseudonym=None,
        action=f"POST /v1/students/{{student_id}}/erasure ({done.receipt.tombstone_id})",
        now=moment,
        outcome="erased",
    )
    return ErasureDone(
        erased_at=done.receipt.erased_at,
        reason=done.receipt.reason,
        keys_deleted=done.keys_deleted,
        entries_removed=done.entries_removed,
        kept=done.kept,
    )
