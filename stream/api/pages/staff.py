"""``/staff/review`` (a tutor's, support's or compliance's queue: claim an item, record what
was done) and ``/insights`` (cohort aggregates, suppressed cells shown as such).

Server-rendered from ``/v1/review`` and ``/v1/insights/cohorts`` as the signed-in person would
read them; a form posts here and the change goes to the matching ``/v1`` route with the
form's CSRF token (POST, then redirect, then GET).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from schemas.access import Role
from stream.api.pages.backtests import section as backtests_section
from stream.api.pages.calls import call
from stream.api.pages.common import STAFF_ROLES, nav_for, signed_in, to_signin
from stream.api.pages.html import attr, esc, hidden_csrf, layout, notice, page_response, table
from stream.api.pages.students import open_form, student_path

router = APIRouter(include_in_schema=False)

NUDGE_ID = re.compile(r"n_[0-9a-f]{32}")
ACTIONS = {
    "contacted": "I contacted the student",
    "meeting_booked": "A meeting is booked",
    "no_action": "No action (give the reason)",
    "referred": "Referred to a service (say which)",
    "escalate": "Escalate to the team lead",
}
DONE = {"claimed": "You have taken the item.", "decided": "Your decision is recorded."}
GROUPINGS = ("course", "week")  # the roster holds no school (GET /v1/insights/cohorts)
TIERS = {"invitation": "Invitation to talk", "referral": "Referral"}


def _item(entry: dict[str, Any], me: str, csrf: str | None) -> str:
    nid = str(entry.get("nudge_id", ""))
    if not NUDGE_ID.fullmatch(nid):
        return ""
    holder = entry.get("claimed_by")
    held = (
        "Nobody has taken it yet."
        if holder is None
        else ("You have taken it." if holder == me else f"Taken by {holder}.")
    )
    claim = (
        ""
        if holder == me
        else (
            f'<form method="post" action="/staff/review/{nid}/claim" class="claim">'
            f'{hidden_csrf(csrf)}<button type="submit" id="claim-{nid}">Take this item</button>'
            "</form>"
        )
    )
    options = "".join(f'<option value="{k}">{esc(v)}</option>' for k, v in ACTIONS.items())
    decide = (
        f'<form method="post" action="/staff/review/{nid}/decision" class="decide">'
        f"{hidden_csrf(csrf)}"
        f'<div class="field"><label for="action-{nid}">What was done</label>'
        f'<select id="action-{nid}" name="action">{options}</select></div>'
        f'<div class="field"><label for="reason-{nid}">Note or reason (the student reads it)'
        f'</label><input type="text" id="reason-{nid}" name="reason" maxlength="500"></div>'
        f'<div class="field"><label for="referred-{nid}">Referred to (for a referral)</label>'
        f'<input type="text" id="referred-{nid}" name="referred_to" maxlength="200"></div>'
        f'<button type="submit" id="decide-{nid}">Record and close</button></form>'
    )
    tier = TIERS.get(str(entry.get("tier")), entry.get("tier"))
    since = str(entry.get("queued_at"))[:16].replace("T", " ")
    sid = entry.get("student_id")  # an item in one's queue is about a student one may open
    who = f'<a href="{attr(student_path(str(sid)))}">{esc(sid)}</a>' if sid else "id no longer held"
    return (
        f'<article class="item" id="item-{nid}" aria-labelledby="title-{nid}">'
        f'<h3 id="title-{nid}">{esc(tier)}: {who}'
        f"</h3><p>{esc(entry.get('summary'))}</p>"
        f"<p>Queue {esc(entry.get('queue'))}, since {esc(since)} UTC. "
        f'<span class="holder">{esc(held)}</span></p>{claim}{decide}</article>'
    )


async def _review_page(request: Request, message: str = "", status: int = 200) -> Response:
    session = await signed_in(request)
    if session is None:
        return to_signin("/staff/review")
    nav, csrf = nav_for(session.principal), session.csrf
    if not session.principal.roles & STAFF_ROLES:
        main = "<p>This page is for tutors, support and compliance staff.</p>"
        page = layout("Review queue", main, nav=nav, csrf=csrf, here="/staff/review")
        return page_response(page, status=403)
    listed = await call(request, "GET", "/v1/review")
    if not listed.ok or not isinstance(listed.body, list):
        main = notice(f"The queue cannot be shown now: {listed.detail}", problem=True)
        page = layout("Review queue", main, nav=nav, csrf=csrf, here="/staff/review")
        return page_response(page, status=min(listed.status, 503) if not listed.ok else 502)
    done = DONE.get(request.query_params.get("done", ""), "")
    top = notice(message, problem=True) if message else (notice(done) if done else "")
    items = "".join(_item(e, session.principal.subject, csrf) for e in listed.body)
    main = top + (
        f"<h2>Waiting for you ({len(listed.body)})</h2>{items}"
        if items
        else "<h2>Waiting for you</h2><p>Nothing is waiting for you.</p>"
    )
    main += (
        '<section aria-labelledby="open-h"><h2 id="open-h">Open a student</h2>'
        "<p>One you may see: a tutee, a student referred to your team, or (compliance) a "
        f"sponsored student. Opening one is recorded.</p>{open_form()}</section>"
    )
    page = layout("Review queue", main, nav=nav, csrf=csrf, here="/staff/review")
    return page_response(page, status=status)


@router.get("/staff/review")
async def review_page(request: Request) -> Response:
    return await _review_page(request)


async def _post(request: Request, nudge_id: str, what: str) -> Response:
    if not NUDGE_ID.fullmatch(nudge_id):
        return await _review_page(request, "There is no such item.", status=404)
    form = await request.form()
    token = form.get("csrf_token")
    csrf = token if isinstance(token, str) else ""
    body: dict[str, Any] | None = None
    if what == "decision":
        fields = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
        body = {"action": fields.get("action", "")}
        body |= {k: fields[k] for k in ("reason", "referred_to") if fields.get(k)}
    answer = await call(request, "POST", f"/v1/review/{nudge_id}/{what}", json=body, csrf=csrf)
    if answer.ok:
        done = "claimed" if what == "claim" else "decided"
        return RedirectResponse(f"/staff/review?done={done}", status_code=303)
    return await _review_page(
        request, f"Not recorded: {answer.detail}", status=min(answer.status, 503)
    )


@router.post("/staff/review/{nudge_id}/claim")
async def claim_item(request: Request, nudge_id: str) -> Response:
    return await _post(request, nudge_id, "claim")


@router.post("/staff/review/{nudge_id}/decision")
async def decide_item(request: Request, nudge_id: str) -> Response:
    return await _post(request, nudge_id, "decision")


def _cell(value: Any) -> str:
    """A count, or "suppressed" in words (never a blank or a zero)."""
    return '<span class="suppressed">suppressed</span>' if value is None else esc(value)


def _cohorts(body: Any) -> str:
    """The cohort table: one row per group, one column per band, totals last; a suppressed
    count says so in words (never a blank or a zero)."""
    if not isinstance(body, dict) or not body.get("rows"):
        return "<p>No cohort has data yet.</p>"
    bands = [str(b) for b in body.get("bands", [])]
    rows = [
        [
            esc(r.get("group")),
            *[_cell(c) for c in r.get("counts", [])],
            _cell(r.get("total")),
        ]
        for r in body["rows"]
    ]
    rows.append(
        [
            "All",
            *[_cell(c) for c in body.get("band_totals", [])],
            _cell(body.get("total")),
        ]
    )
    by = str(body.get("by", "group"))
    return (
        table(
            f"Students per band, by {by}, as of {body.get('as_of')}",
            [by.capitalize(), *bands, "Total"],
            rows,
            ident="cohorts",
        )
        + f'<p id="cohorts-note">{esc(body.get("note"))} '
        f"Hidden counts: {esc(body.get('suppressed'))}.</p>"
    )


@router.get("/insights")
async def insights_page(request: Request) -> Response:
    session = await signed_in(request)
    if session is None:
        return to_signin("/insights")
    nav, csrf = nav_for(session.principal), session.csrf
    if not session.principal.has(Role.INSIGHTS):
        main = "<p>This page is for insights staff: aggregates only.</p>"
        return page_response(
            layout("Insights", main, nav=nav, csrf=csrf, here="/insights"), status=403
        )
    by = request.query_params.get("by", "course")
    by = by if by in GROUPINGS else "course"
    answer = await call(request, "GET", "/v1/insights/cohorts", params={"by": by})
    if answer.ok:
        shown = _cohorts(answer.body)
    else:
        shown = notice(f"The cohorts cannot be shown now: {answer.detail}", problem=True)
    choices = "".join(
        f'<option value="{v}"{" selected" if v == by else ""}>{esc(v)}</option>' for v in GROUPINGS
    )
    main = (
        '<form method="get" action="/insights" class="by">'
        f'<label for="by">Group by</label> <select id="by" name="by">{choices}</select> '
        '<button type="submit">Show</button></form>'
        f'<section aria-labelledby="cohorts-h"><h2 id="cohorts-h">Cohorts by {esc(by)}</h2>'
        f"{shown}</section>"
    ) + await backtests_section(request)
    page = layout("Insights", main, nav=nav, csrf=csrf, here="/insights")
    return page_response(page, status=200 if answer.ok else min(answer.status, 503))
