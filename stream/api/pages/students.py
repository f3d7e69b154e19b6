"""``/staff/students/{student_id}``: one student as a member of staff allowed to see them
sees them — band, explanation, rules, weekly chart and every record — from
``/v1/students/{id}`` and ``…/interventions`` (both audited by the routes).

A student one may not see and a student who does not exist answer the same "not found" page
(404), as the API does: the page gives no hint of whether the student exists.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from stream.api.pages.calls import call
from stream.api.pages.common import STAFF_ROLES, nav_for, signed_in, to_signin
from stream.api.pages.html import attr, esc, layout, notice, page_response
from stream.api.pages.view import STAFF, engagement, records, score_lines

router = APIRouter(include_in_schema=False)

STUDENT_ID = re.compile(r"\S{1,64}")  # as the API's path takes it
NOT_FOUND = "There is no such student, or not one you may open."


def student_path(student_id: str) -> str:
    """The page of one student (the id quoted: it is the institution's, any characters)."""
    return f"/staff/students/{quote(student_id, safe='')}"


def open_form(value: str = "") -> str:
    """The "open a student" form (on the review queue and the not-found page)."""
    return (
        '<form method="get" action="/staff/students" id="open-student">'
        '<label for="open-student-id">Student id</label> '
        f'<input type="text" id="open-student-id" name="student_id" value="{attr(value)}" '
        'required maxlength="64" spellcheck="false" autocomplete="off"> '
        '<button type="submit">Open the student</button></form>'
    )


@router.get("/staff/students")
async def open_student(request: Request) -> Response:
    """The form's answer: on to the student's page (an empty id: back to the queue)."""
    wanted = (request.query_params.get("student_id") or "").strip()
    if not wanted:
        return RedirectResponse("/staff/review", status_code=303)
    return RedirectResponse(student_path(wanted), status_code=303)


@router.get("/staff/students/{student_id:path}")
async def student_page(request: Request, student_id: str) -> Response:
    here = student_path(student_id)
    session = await signed_in(request)
    if session is None:
        return to_signin(here)
    nav, csrf = nav_for(session.principal), session.csrf
    if not session.principal.roles & STAFF_ROLES:
        main = "<p>This page is for tutors, support and compliance staff.</p>"
        return page_response(layout("Student", main, nav=nav, csrf=csrf), status=403)
    if not STUDENT_ID.fullmatch(student_id):
        view, held = None, None
    else:
        path = f"/v1/students/{quote(student_id, safe='')}"
        view, held = await asyncio.gather(
            call(request, "GET", path), call(request, "GET", f"{path}/interventions")
        )
    if view is None or held is None or view.missing or held.missing:
        main = f'<p id="not-found">{esc(NOT_FOUND)}</p>{open_form(student_id)}'
        return page_response(layout("Student not found", main, nav=nav, csrf=csrf), status=404)
    if not (view.ok and held.ok and isinstance(view.body, dict) and isinstance(held.body, list)):
        failed = held if view.ok else view
        main = notice(f"The student cannot be shown now: {failed.detail}", problem=True)
        page = layout("Student", main, nav=nav, csrf=csrf)
        return page_response(page, status=min(failed.status, 503) if not failed.ok else 502)
    body = view.body
    tutor = body.get("personal_tutor") or "none on the roster"
    visa = "yes" if body.get("sponsored_visa") else "no"
    facts = (
        '<dl class="facts" id="student-facts">'
        f"<dt>Personal tutor</dt><dd>{esc(tutor)}</dd>"
        f"<dt>Sponsored visa</dt><dd>{esc(visa)}</dd>"
        f"<dt>You may see this student as</dt><dd>{esc(body.get('seen_as'))}</dd></dl>"
        "<p>Opening this page is recorded in the student's access log, which they can read.</p>"
    )
    main = (
        facts
        + engagement(body["engagement"], score_lines(request), STAFF)
        + records(held.body, STAFF)
    )
    page = layout(f"Student {student_id}", main, nav=nav, csrf=csrf)
    return page_response(page)
