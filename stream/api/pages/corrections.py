"""``/staff/corrections``: the correction requests the signed-in tutor, support or compliance
member may answer, each with an accept and a reject form.

Server-rendered from ``/v1/corrections`` (only the students this person may see, audited by
the route); a form posts here and the answer goes to ``/v1/corrections/{id}/accept`` or
``…/reject`` with the form's CSRF token (POST, then redirect, then GET).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from stream.api.pages.calls import call
from stream.api.pages.common import STAFF_ROLES, nav_for, signed_in, to_signin
from stream.api.pages.html import attr, esc, hidden_csrf, layout, notice, page_response
from stream.api.pages.students import student_path

router = APIRouter(include_in_schema=False)

HERE = "/staff/corrections"
CORRECTION_ID = re.compile(r"c_[0-9a-f]{32}")
KINDS = {"attended": "Says they attended a session", "not_mine": "Says activity is not theirs"}
DONE = {"accepted": "The correction is accepted.", "rejected": "The correction is rejected."}
ACCEPTED = "Accepted: your records are corrected."  # the reason when the note is left empty


def _item(c: dict[str, Any], csrf: str | None) -> str:
    cid = str(c.get("correction_id", ""))
    if not CORRECTION_ID.fullmatch(cid):
        return ""
    sid = c.get("student_id")
    who = f'<a href="{attr(student_path(str(sid)))}">{esc(sid)}</a>' if sid else "id no longer held"
    session = (
        f" Session {esc(c.get('session_id'))} ({esc(c.get('module'))}), "
        f"{esc(str(c.get('starts_at'))[11:16])} to {esc(str(c.get('ends_at'))[11:16])} UTC."
        if c.get("session_id")
        else ""
    )
    asked = str(c.get("asked_at"))[:16].replace("T", " ")
    kind = KINDS.get(str(c.get("kind")), c.get("kind"))
    return (
        f'<article class="item" id="item-{cid}" aria-labelledby="title-{cid}">'
        f'<h3 id="title-{cid}">{esc(kind)}: {who}</h3>'
        f"<p>Day {esc(c.get('day'))}.{session} Asked {esc(asked)} UTC.</p>"
        f"<p>The student's note: {esc(c.get('note') or 'none')}</p>"
        f'<form method="post" action="{HERE}/{cid}/accept" class="accept">{hidden_csrf(csrf)}'
        f'<div class="field"><label for="accept-note-{cid}">Note for the student (optional)'
        f'</label><input type="text" id="accept-note-{cid}" name="reason" maxlength="1000">'
        f'</div><button type="submit" id="accept-{cid}">Accept</button></form>'
        f'<form method="post" action="{HERE}/{cid}/reject" class="reject">{hidden_csrf(csrf)}'
        f'<div class="field"><label for="reject-reason-{cid}">Why it is rejected (the student '
        f'reads it)</label><input type="text" id="reject-reason-{cid}" name="reason" required '
        f'maxlength="1000"></div><button type="submit" id="reject-{cid}">Reject</button></form>'
        "</article>"
    )


async def _page(request: Request, message: str = "", status: int = 200) -> Response:
    session = await signed_in(request)
    if session is None:
        return to_signin(HERE)
    nav, csrf = nav_for(session.principal), session.csrf
    if not session.principal.roles & STAFF_ROLES:
        main = "<p>This page is for tutors, support and compliance staff.</p>"
        page = layout("Correction requests", main, nav=nav, csrf=csrf, here=HERE)
        return page_response(page, status=403)
    listed = await call(request, "GET", "/v1/corrections", params={"status": "open"})
    if not listed.ok or not isinstance(listed.body, list):
        main = notice(f"The requests cannot be shown now: {listed.detail}", problem=True)
        page = layout("Correction requests", main, nav=nav, csrf=csrf, here=HERE)
        return page_response(page, status=min(listed.status, 503) if not listed.ok else 502)
    done = DONE.get(request.query_params.get("done", ""), "")
    top = notice(message, problem=True) if message else (notice(done) if done else "")
    items = "".join(_item(c, csrf) for c in listed.body)
    main = top + (
        f"<h2>Waiting for an answer ({len(listed.body)})</h2>{items}"
        if items
        else "<h2>Waiting for an answer</h2><p>No correction request is waiting.</p>"
    )
    page = layout("Correction requests", main, nav=nav, csrf=csrf, here=HERE)
    return page_response(page, status=status)


@router.get(HERE)
async def corrections_page(request: Request) -> Response:
    return await _page(request)


async def _answer(request: Request, correction_id: str, verb: str) -> Response:
    if not CORRECTION_ID.fullmatch(correction_id):
        return await _page(request, "There is no such request.", status=404)
    form = await request.form()
    token, given = form.get("csrf_token"), form.get("reason")
    csrf = token if isinstance(token, str) else ""
    reason = given.strip() if isinstance(given, str) else ""
    if verb == "accept":
        reason = reason or ACCEPTED
    elif not reason:
        return await _page(request, "Not recorded: say why the request is rejected.", 400)
    path = f"/v1/corrections/{correction_id}/{verb}"
    answer = await call(request, "POST", path, json={"reason": reason}, csrf=csrf)
    if answer.ok:
        return RedirectResponse(f"{HERE}?done={verb}ed", status_code=303)
    return await _page(request, f"Not recorded: {answer.detail}", min(answer.status, 503))


@router.post(HERE + "/{correction_id}/accept")
async def accept(request: Request, correction_id: str) -> Response:
    return await _answer(request, correction_id, "accept")


@router.post(HERE + "/{correction_id}/reject")
async def reject(request: Request, correction_id: str) -> Response:
    return await _answer(request, correction_id, "reject")
