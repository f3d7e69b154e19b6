"""``/me``, "My engagement": everything the product holds and decided about the signed-in
student, their opt-outs and correction requests as forms, the export, and who has looked.

Server-rendered from the student's own ``/v1/me…`` answers (see ``calls.py``); a form posts
here, the change goes to the matching ``/v1`` route with the form's CSRF token, and the page
comes back with what happened (POST, then redirect, then GET).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from schemas.access import Role
from schemas.nudges import Channel
from stream.api.pages.calls import Answer, call
from stream.api.pages.common import nav_for, signed_in, to_signin
from stream.api.pages.html import esc, hidden_csrf, layout, notice, page_response, table
from stream.api.pages.view import engagement, score_lines
from stream.api.pages.view import records as records_of

router = APIRouter(include_in_schema=False)

CHANNEL_NAMES = {Channel.EMAIL: "e-mail", Channel.SMS: "text message (SMS)", Channel.APP: "app"}
DONE = {
    "preferences": "Your choices are saved. They apply from the next message.",
    "correction": "Your correction request was sent to the staff who check them.",
}
CORRECTION_KINDS = {"attended": "I attended this session", "not_mine": "This is not my activity"}


def _preferences(prefs: dict[str, Any], csrf: str | None) -> str:
    off = set(prefs.get("opted_out_channels", []))
    boxes = "".join(
        f'<div class="field-check"><input type="checkbox" id="optout-{esc(c)}" '
        f'name="opt_out" value="{esc(c)}"{" checked" if c in off else ""}>'
        f' <label for="optout-{esc(c)}">Stop automated messages by '
        f"{esc(CHANNEL_NAMES.get(c, c))}</label></div>"
        for c in prefs.get("channels", [])
    )
    everything = " checked" if prefs.get("opt_out_all") else ""
    return (
        '<section aria-labelledby="opt-out"><h2 id="opt-out">Stop automated messages</h2>'
        "<p>You can still talk to your tutor at any time; this only stops automated "
        "messages.</p>"
        f'<form method="post" action="/me/preferences" id="preferences-form">{hidden_csrf(csrf)}'
        f"<fieldset><legend>Channels</legend>{boxes}"
        f'<div class="field-check"><input type="checkbox" id="optout-all" name="opt_out_all" '
        f'value="yes"{everything}> <label for="optout-all">Stop all automated messages'
        "</label></div></fieldset>"
        '<button type="submit">Save my choices</button></form></section>'
    )


def _corrections(mine: Answer, csrf: str | None) -> str:
    kinds = "".join(f'<option value="{k}">{esc(v)}</option>' for k, v in CORRECTION_KINDS.items())
    form = (
        f'<form method="post" action="/me/corrections" id="correction-form">{hidden_csrf(csrf)}'
        '<div class="field"><label for="correction-kind">What is wrong</label>'
        f'<select id="correction-kind" name="kind" required>{kinds}</select></div>'
        '<div class="field"><label for="correction-day">Day</label>'
        '<input type="date" id="correction-day" name="day" required></div>'
        '<div class="field"><label for="correction-session">Session (optional, as on your '
        'timetable)</label><input type="text" id="correction-session" name="session_id" '
        'maxlength="128"></div>'
        '<div class="field"><label for="correction-note">Anything staff should know '
        '(optional)</label><textarea id="correction-note" name="note" rows="3" maxlength="1000">'
        "</textarea></div>"
        '<button type="submit">Ask for a correction</button></form>'
    )
    listed = ""
    if mine.ok and isinstance(mine.body, list) and mine.body:
        listed = table(
            "Your correction requests",
            ["Asked", "What", "Day", "Status", "Answer"],
            (
                [
                    esc(str(c.get("asked_at", ""))[:10]),
                    esc(CORRECTION_KINDS.get(str(c.get("kind")), c.get("kind"))),
                    esc(c.get("day")),
                    esc(c.get("status")),
                    esc(c.get("reason") or "not answered yet"),
                ]
                for c in mine.body
            ),
            ident="corrections",
        )
    return (
        '<section aria-labelledby="correction"><h2 id="correction">Ask for a correction</h2>'
        "<p>If a record is wrong, tell us: a member of staff checks it and, if it is accepted, "
        f"your records are corrected.</p>{form}{listed}</section>"
    )


def _access(entries: list[dict[str, Any]]) -> str:
    body = (
        table(
            "Reads of your data, newest first",
            ["Who", "Role", "What", "When (UTC)", "Outcome"],
            (
                [
                    esc(a["who"]),
                    esc(a["role"]),
                    esc(a["action"]),
                    esc(a["at"][:19].replace("T", " ")),
                    esc(a["outcome"]),
                ]
                for a in entries
            ),
            ident="access-log",
        )
        if entries
        else "<p>Nobody has looked at your data yet.</p>"
    )
    return (
        '<section aria-labelledby="access"><h2 id="access">Who has looked at my data</h2>'
        f"{body}</section>"
    )


async def render_me(request: Request, message: str = "", *, status: int = 200) -> Response:
    """The page, with ``message`` (a refusal) at the top when a change was not taken."""
    session = await signed_in(request)
    if session is None:
        return to_signin("/me")
    nav = nav_for(session.principal)
    if not session.principal.has(Role.STUDENT):
        main = "<p>This page is for students, about their own data.</p>"
        return page_response(layout("My engagement", main, nav=nav, csrf=session.csrf), status=403)
    me, records, prefs, access, mine = await asyncio.gather(
        call(request, "GET", "/v1/me"),
        call(request, "GET", "/v1/me/interventions"),
        call(request, "GET", "/v1/me/preferences"),
        call(request, "GET", "/v1/me/access-log"),
        call(request, "GET", "/v1/me/corrections"),
    )
    for answer in (me, records, prefs, access):
        if not answer.ok:
            main = notice(f"Your data cannot be shown now: {answer.detail}", problem=True)
            page = layout("My engagement", main, nav=nav, csrf=session.csrf, here="/me")
            return page_response(page, status=min(answer.status, 503))
    done = DONE.get(request.query_params.get("done", ""), "")
    top = notice(message, problem=True) if message else (notice(done) if done else "")
    main = (
        top
        + engagement(me.body["engagement"], score_lines(request))
        + records_of(records.body)
        + _preferences(prefs.body, session.csrf)
        + _corrections(mine, session.csrf)
        + '<section aria-labelledby="export"><h2 id="export">Everything we hold about you</h2>'
        '<p><a id="export-link" href="/v1/me/export" download>Download my data</a> (one zip '
        "file with the same data as JSON and as CSV).</p></section>" + _access(access.body)
    )
    page = layout("My engagement", main, nav=nav, csrf=session.csrf, here="/me")
    return page_response(page, status=status)


@router.get("/me")
async def me_page(request: Request) -> Response:
    return await render_me(request)


@router.get("/me/preferences")
@router.get("/my-engagement/preferences")
async def preferences_page() -> Response:
    """The address messages give for "stop these messages": the page's opt-out form."""
    return RedirectResponse("/me#opt-out", status_code=303)


@router.get("/my-engagement")
async def my_engagement() -> Response:
    """The path of the shipped messages file's example ``data_url``: this page."""
    return RedirectResponse("/me", status_code=303)


@router.post("/me/preferences")
async def change_preferences(request: Request) -> Response:
    form = await request.form()
    wanted = {
        "opt_out_all": form.get("opt_out_all") == "yes",
        "opted_out_channels": [
            c for c in form.getlist("opt_out") if isinstance(c, str) and c in set(Channel)
        ],
    }
    token = form.get("csrf_token")
    csrf = token if isinstance(token, str) else ""
    answer = await call(request, "PUT", "/v1/me/preferences", json=wanted, csrf=csrf)
    if answer.ok:
        return RedirectResponse("/me?done=preferences#opt-out", status_code=303)
    return await render_me(
        request, f"Your choices were not saved: {answer.detail}", status=min(answer.status, 503)
    )


@router.post("/me/corrections")
async def ask_correction(request: Request) -> Response:
    form = await request.form()
    fields = {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    asked: dict[str, Any] = {k: fields[k] for k in ("kind", "day") if fields.get(k)}
    asked |= {k: fields[k] for k in ("session_id", "note") if fields.get(k)}
    token = form.get("csrf_token")
    csrf = token if isinstance(token, str) else ""
    answer = await call(request, "POST", "/v1/me/corrections", json=asked, csrf=csrf)
    if answer.ok:
        return RedirectResponse("/me?done=correction#correction", status_code=303)
    return await render_me(
        request,
        f"Your correction request was not sent: {answer.detail}",
        status=min(answer.status, 503),
    )
