"""Corrections: a student asks (``/v1/me/corrections``), staff decide (``/v1/corrections``).

A student says they attended a timetabled session they were not marked present at, or that
some activity is not theirs. Staff who may see the student (``stream/api/access.py``: their
personal tutor, support for students referred to their team, compliance for sponsored
students) see the request and accept or reject it with a reason. An accepted "attended"
correction goes through the pipeline as a corrected attendance mark (present), published on
the raw attendance topic by the feed ``corrections`` under a deterministic event id, so the
worker's correction rule replaces the earlier mark and a replay agrees. Every read of a
student's corrections is audited; a request about someone one may not see answers 404.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from agents.model.reference import Session
from schemas.access import Principal, Role
from schemas.common import Source
from sinks.stores.corrections import (
    CorrectionError,
    CorrectionKind,
    CorrectionRequest,
    CorrectionStatus,
    CorrectionStore,
    mark_event_id,
    new_id,
)
from stream.api.access import audit_role, granted_by
from stream.api.deps import require
from stream.api.problems import responses
from stream.api.routes_common import Api, api_of, held, now, reader
from stream.api.routes_review import student_ids
from stream.api.session import require_csrf
from stream.publisher.checks import Checked, check_event
from stream.publisher.envelopes import MAX_REQUEST_BYTES, RECORD_HEADROOM, Packer

router = APIRouter(tags=["corrections"])
Student = Annotated[Principal, Depends(require(Role.STUDENT))]
Staff = Annotated[Principal, Depends(require(Role.TUTOR, Role.SUPPORT, Role.COMPLIANCE))]
Deps = Annotated[Api, Depends(api_of)]
CorrectionIdPath = Annotated[str, Path(pattern=r"^c_[0-9a-f]{32}$")]
FEED: Final = "corrections"
NOT_YOURS: Final = "no such correction, or not one you may see"
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class CorrectionAsked(BaseModel):
    """What the student says is wrong: ``attended`` a timetabled session (its id and day), or
    activity on a day that is ``not_mine``."""

    model_config = ConfigDict(extra="forbid")

    kind: CorrectionKind
    day: date = Field(description="The day of the session or activity, YYYY-MM-DD.")
    session_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    note: Text | None = None


class CorrectionTaken(BaseModel):
    """The request was taken: staff will answer it."""

    correction_id: str
    status: CorrectionStatus


class MyCorrection(BaseModel):
    """One of the student's requests and, once decided, the answer."""

    correction_id: str
    kind: CorrectionKind
    day: date
    session_id: str | None
    note: str | None
    asked_at: AwareDatetime
    status: CorrectionStatus
    decided_by: str | None
    decided_at: AwareDatetime | None
    reason: str | None


class StaffCorrection(MyCorrection):
    """A request as staff see it: whose it is, and the session as the timetable has it."""

    student_id: str | None = Field(description="None when the id is no longer held.")
    module: str | None
    starts_at: AwareDatetime | None
    ends_at: AwareDatetime | None
    event_id: str | None = Field(description="The attendance mark an accepted one published.")


class Answer(BaseModel):
    """Why the correction is accepted or rejected (the student reads it)."""

    model_config = ConfigDict(extra="forbid")

    reason: Text


async def _posted_student(who: Student, request: Request) -> Principal:
    await require_csrf(request)  # after sign-in: no sign-in is a 401, not a 403
    return who


async def _posted_staff(who: Staff, request: Request) -> Principal:
    await require_csrf(request)
    return who


def store_of(api: Api) -> CorrectionStore:
    """The corrections store on the API's Redis."""
    return CorrectionStore(api.redis, api.settings.key_prefix)


def _mine(c: CorrectionRequest) -> MyCorrection:
    return MyCorrection.model_validate(c.model_dump(include=set(MyCorrection.model_fields)))


async def _session(api: Api, day: date, session_id: str) -> tuple[Session, datetime, datetime]:
    sessions = {s.session_id: s for s in await api.reference.sessions(day.toordinal())}
    found = sessions.get(session_id)
    if found is None:
        msg = f"no session {session_id!r} on {day} in the timetable: check the session and day"
        raise HTTPException(400, msg)
    zone = api.settings.zone
    starts = datetime.combine(day, time(found.start_hour), zone)
    ends = datetime.combine(day, time(0), zone) + timedelta(hours=found.end_hour)
    return found, starts.astimezone(UTC), ends.astimezone(UTC)


@router.post(
    "/v1/me/corrections",
    response_model=CorrectionTaken,
    status_code=202,
    responses=responses(409),
    summary="Ask for a correction",
)
async def ask(
    asked: CorrectionAsked,
    who: Annotated[Principal, Depends(_posted_student)],
    api: Deps,
) -> CorrectionTaken:
    """Say you attended a timetabled session (``session_id`` and ``day``) or that activity on a
    day is not yours; staff answer it, and the answer shows here and in your records."""
    moment = now()
    today = moment.astimezone(api.settings.zone).date()
    oldest = today - timedelta(days=api.settings.dedup_ttl_days)
    if not oldest <= asked.day <= today:
        msg = f"the day must be between {oldest} and today: older marks are no longer held"
        raise HTTPException(400, msg)
    module = starts = ends = None
    if asked.kind is CorrectionKind.ATTENDED:
        if asked.session_id is None:
            raise HTTPException(400, "say which session you attended: session_id")
        found, starts, ends = await _session(api, asked.day, asked.session_id)
        module = found.module
    pseudonym = api.pseudonymise(who.subject)
    await api.audit.record(
        who=reader(api, who), role=Role.STUDENT.value, pseudonym=pseudonym,
        action="POST /v1/me/corrections", now=moment,
    )  # fmt: skip
    request = CorrectionRequest(
        correction_id=new_id(),
        pseudonym=pseudonym,
        kind=asked.kind,
        day=asked.day,
        session_id=asked.session_id,
        module=module,
        starts_at=starts,
        ends_at=ends,
        note=asked.note,
        asked_at=moment,
    )
    try:
        taken = await store_of(api).ask(request)
    except CorrectionError as exc:
        raise HTTPException(409, str(exc)) from None
    return CorrectionTaken(correction_id=taken.correction_id, status=taken.status)


@router.get("/v1/me/corrections", response_model=list[MyCorrection], summary="My corrections")
async def my_corrections(who: Student, api: Deps) -> list[MyCorrection]:
    """Every correction I asked for, newest first, with the answer once there is one."""
    pseudonym = api.pseudonymise(who.subject)
    await api.audit.record(
        who=reader(api, who), role=Role.STUDENT.value, pseudonym=pseudonym,
        action="GET /v1/me/corrections", now=now(),
    )  # fmt: skip
    return [_mine(c) for c in await store_of(api).of_student(pseudonym)]


async def _granted(
    api: Api, who: Principal, pseudonym: str, sid: str | None
) -> tuple[Role | None, Role]:
    """The role under which ``who`` may see the student (None: may not), and the role the
    audit names."""
    if sid is None:
        return None, audit_role(who, None)
    role = granted_by(who, (await held(api, pseudonym)).facts(sid), api.teams)
    return role, audit_role(who, role)


def _staff_view(c: CorrectionRequest, sid: str | None) -> StaffCorrection:
    fields = c.model_dump(include=set(StaffCorrection.model_fields))
    return StaffCorrection.model_validate(fields | {"student_id": sid})


@router.get("/v1/corrections", response_model=list[StaffCorrection], summary="Correction queue")
async def corrections(
    who: Staff,
    api: Deps,
    status: Annotated[
        Literal["open", "accepted", "rejected", "all"], Query(description="Which to list.")
    ] = "open",
) -> list[StaffCorrection]:
    """Corrections of the students the signed-in person may see, oldest first (audited: one
    entry per student listed)."""
    wanted = None if status == "all" else CorrectionStatus(status)
    found = await store_of(api).listing(status=wanted)
    ids = await student_ids(api, sorted({c.pseudonym for c in found}))
    moment, visible = now(), set()
    for pseudonym in sorted({c.pseudonym for c in found}):
        role, named = await _granted(api, who, pseudonym, ids.get(pseudonym))
        if role is not None:  # only what is shown is a read of the student's data
            visible.add(pseudonym)
            await api.audit.record(
                who=who.subject, role=named.value, pseudonym=pseudonym,
                action="GET /v1/corrections", now=moment,
            )  # fmt: skip
    return [_staff_view(c, ids.get(c.pseudonym)) for c in found if c.pseudonym in visible]


async def _decide(
    api: Api, who: Principal, correction_id: str, accept: bool, reason: str
) -> StaffCorrection:
    store = store_of(api)
    found = await store.get(correction_id)
    if found is None:
        raise HTTPException(404, NOT_YOURS)
    sid = (await student_ids(api, [found.pseudonym])).get(found.pseudonym)
    role, named = await _granted(api, who, found.pseudonym, sid)
    verb = "accept" if accept else "reject"
    await api.audit.record(
        who=who.subject, role=named.value, pseudonym=found.pseudonym,
        action=f"POST /v1/corrections/{{id}}/{verb}", now=now(),
        outcome="read" if role is not None else "refused",
    )  # fmt: skip
    if role is None or sid is None:
        raise HTTPException(404, NOT_YOURS)

    async def publish(decided: CorrectionRequest) -> None:
        await _publish_mark(api, decided, sid)

    try:
        decided = await store.decide(
            correction_id, accept=accept, staff_id=who.subject, reason=reason, now=now(),
            publish=publish,
        )  # fmt: skip
    except CorrectionError as exc:
        raise HTTPException(409 if exc.kind == "already_decided" else 404, str(exc)) from None
    return _staff_view(decided, sid)


async def _publish_mark(api: Api, c: CorrectionRequest, student_id: str) -> None:
    """The corrected attendance mark, present, on the raw attendance topic (feed corrections)."""
    if c.decided_at is None or c.starts_at is None or c.ends_at is None:  # never, when accepted
        raise HTTPException(409, "the correction names no timetabled session to mark")
    event = {
        "event_id": mark_event_id(c.correction_id),
        "student_id": student_id,
        "occurred_at": c.decided_at.isoformat(),
        "session_id": c.session_id,
        "module": c.module,
        "expected_start": c.starts_at.isoformat(),
        "expected_end": c.ends_at.isoformat(),
        "status": "present",
        "capture_method": "manual",
    }
    checked = check_event(Source.ATTENDANCE, event)
    if not isinstance(checked, Checked):  # the timetable's values were checked when asked
        raise HTTPException(409, f"the corrected mark cannot be sent: {checked[1]}")
    packer = Packer(Source.ATTENDANCE, 500, MAX_REQUEST_BYTES - RECORD_HEADROOM)
    packer.add(checked)
    _, envelope = packer.finish() or (None, b"")
    topic = api.settings.topics.raw(Source.ATTENDANCE)
    await api.publish(topic, f"{FEED}/{Source.ATTENDANCE}", envelope.decode())


@router.post(
    "/v1/corrections/{correction_id}/accept",
    response_model=StaffCorrection,
    responses=responses(404, 409, description=NOT_YOURS) | responses(503),  # no broker
    summary="Accept a correction",
)
async def accept(
    correction_id: CorrectionIdPath,
    answer: Answer,
    who: Annotated[Principal, Depends(_posted_staff)],
    api: Deps,
) -> StaffCorrection:
    """Accept it: an "attended" one is published as a corrected attendance mark (present)."""
    return await _decide(api, who, correction_id, True, answer.reason)


@router.post(
    "/v1/corrections/{correction_id}/reject",
    response_model=StaffCorrection,
    responses=responses(404, 409, description=NOT_YOURS),
    summary="Reject a correction",
)
async def reject(
    correction_id: CorrectionIdPath,
    answer: Answer,
    who: Annotated[Principal, Depends(_posted_staff)],
    api: Deps,
) -> StaffCorrection:
    """Reject it, saying why (the student reads the reason)."""
    return await _decide(api, who, correction_id, False, answer.reason)
