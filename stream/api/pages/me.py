"""``/me``, "My engagement": everything the product holds and decided about the signed-in
student, their opt-outs and correction requests as forms, the export, and who has looked.

Server-rendered from the student's own ``/v1/me…`` answers (see ``calls.py``); a form posts
here, the change goes to the matching ``/v1`` route with the form's CSRF token, and the page
comes back with what happened (POST, then redirect, then GET).
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from schemas.access import Role
from schemas.nudges import Channel
from schemas.rules import Kind
from stream.api.pages.calls import Answer, call
from stream.api.pages.chart import Line, weekly_svg
from stream.api.pages.common import nav_for, signed_in, to_signin
from stream.api.pages.html import esc, hidden_csrf, layout, notice, page_response, table

router = APIRouter(include_in_schema=False)

CHANNEL_NAMES = {Channel.EMAIL: "e-mail", Channel.SMS: "text message (SMS)", Channel.APP: "app"}
OUTCOMES = {
    "delivered": "sent to you",
    "suppressed": "not sent",
    "failed": "could not be sent",
    "deferred": "held until later",
    "queued_for_review": "passed to a member of staff",
    "escalated": "passed to a senior member of staff",
    "staff_decision": "a member of staff acted",
    "shadow": "recorded only (trial, nothing sent)",
}
DONE = {
    "preferences": "Your choices are saved. They apply from the next message.",
    "correction": "Your correction request was sent to the staff who check them.",
}
CORRECTION_KINDS = {"attended": "I attended this session", "not_mine": "This is not my activity"}


def _engagement(e: dict[str, Any], score_lines: list[Line]) -> str:
    score = e.get("score")
    band = e.get("band") or "not known yet"
    shown = "not known yet" if score is None else f"{score:g} out of 5"
    head = (
        '<section aria-labelledby="now"><h2 id="now">Your engagement now</h2>'
        f'<p class="band" id="band">Band: {esc(band)} (score {esc(shown)})</p>'
        f'<p id="explanation">{esc(e.get("explanation"))}</p>'
        f"<p>As of {esc(e.get('as_of'))}; the score looks back {esc(e.get('score_window_days'))}"
        " days.</p></section>"
    )
    sources = table(
        "Activity by source over the score's window",
        ["Source", "What it counts", "Events", "Days active", "Last active"],
        (
            [
                esc(s["source"]),
                esc(s["activity"]),
                esc(s["events"]),
                esc(s["active_days"]),
                esc(s.get("last_active") or "none held"),
            ]
            for s in e.get("sources", [])
        ),
        ident="sources",
    )
    rules = table(
        "Each rule, its window and threshold, and your numbers",
        ["Rule", "Window", "Threshold", "Your numbers", "Applies to you now"],
        (
            [
                esc(r["description"]),
                esc(f"{r['window_days']} days"),
                esc(r["threshold"]),
                esc(
                    ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in r["value"].items())
                    or "not known yet"
                ),
                "Yes" if r["holds"] else "No",
            ]
            for r in e.get("rules", [])
        ),
        ident="rules",
    )
    weekly = e.get("weekly", [])
    starts = [date.fromisoformat(w["week_start"]) for w in weekly]
    names = sorted({s for w in weekly for s in w["active_days"]})
    svg = weekly_svg(
        starts,
        {s: [int(w["active_days"].get(s, 0)) for w in weekly] for s in names},
        [w.get("score") for w in weekly],
        score_lines,
    )
    weeks = table(
        "Week by week (the chart's numbers)",
        ["Week starting", *[f"Days active: {s}" for s in names], "Score"],
        (
            [
                esc(w["week_start"]),
                *[esc(w["active_days"].get(s, 0)) for s in names],
                esc("not known" if w.get("score") is None else f"{w['score']:g}"),
            ]
            for w in weekly
        ),
        ident="weeks",
    )
    return (
        head
        + '<section aria-labelledby="how"><h2 id="how">How this is worked out</h2>'
        + sources
        + rules
        + "</section>"
        + '<section aria-labelledby="chart"><h2 id="chart">Week by week</h2>'
        + f"<figure>{svg}</figure>{weeks}</section>"
    )


def _records(records: list[dict[str, Any]]) -> str:
    rows = (
        [
            esc(r["decided_at"][:16].replace("T", " ")),
            esc(r["summary"]),
            esc(OUTCOMES.get(r["outcome"], r["outcome"])),
            esc(r["detail"])
            + (
                f" <span>(reason: {esc(r['reason'])})</span>"
                if r["outcome"] == "suppressed"
                else ""
            ),
            esc(", ".join(r.get("channels", [])) or "none"),
        ]
        for r in records
    )
    body = (
        table(
            "Every record, newest first",
            ["When (UTC)", "What we noticed", "What happened", "Why", "Channels"],
            rows,
            ident="records",
        )
        if records
        else "<p>There are no records about you.</p>"
    )
    return (
        '<section aria-labelledby="records-h"><h2 id="records-h">Every message and decision '
        f"about you</h2>{body}</section>"
    )


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


def _score_lines(request: Request) -> list[Line]:
    rules = request.app.state.api.rules
    return [
        Line(rule.id.replace("_", " "), float(rule.threshold))
        for rule in rules.active
        if rule.kind is Kind.LOW_SCORE and rule.threshold is not None
    ]


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
        + _engagement(me.body["engagement"], _score_lines(request))
        + _records(records.body)
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
