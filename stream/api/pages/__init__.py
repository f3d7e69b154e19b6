"""The people-facing pages: ``/`` (sign in), ``/me`` ("My engagement"), ``/staff/review``,
``/staff/students/{id}``, ``/staff/corrections`` and ``/insights`` — server-rendered HTML with
no script, reading and changing data through the API's own ``/v1`` routes (docs/pages.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from stream.api.pages import backtests, corrections, me, staff, students
from stream.api.pages.common import Hooks, local_path, nav_for, provider_origin, signed_in
from stream.api.pages.html import (
    ICON,
    ICON_PATH,
    STYLE,
    STYLE_PATH,
    attr,
    esc,
    layout,
    page_response,
)

router = APIRouter(include_in_schema=False)


@router.get(STYLE_PATH)
async def style() -> Response:
    """The pages' one style sheet (served here, so the pages load nothing from elsewhere)."""
    return Response(
        STYLE,
        media_type="text/css; charset=utf-8",
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get(ICON_PATH)
async def icon() -> Response:
    """The pages' icon (a browser asks for one; without it, its console logs a 404)."""
    return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


@router.get("/")
async def start(request: Request) -> Response:
    """The start page: sign in, or the pages this person may open."""
    session = await signed_in(request)
    wanted = local_path(request.query_params.get("next"))
    if session is not None:
        links = "".join(
            f'<li><a href="{attr(href)}">{esc(label)}</a></li>'
            for href, label in nav_for(session.principal)[1:]
        )
        main = (
            f"<p>You are signed in as {esc(session.principal.subject)}.</p>"
            f"<ul>{links or '<li>Your roles open no page here.</li>'}</ul>"
        )
        return page_response(
            layout("Engagement", main, nav=nav_for(session.principal), csrf=session.csrf, here="/")
        )
    settings = request.app.state.settings
    local = bool(getattr(request.app.state, "signin", None)) and settings.uses_local_issuer()
    hint = (
        '<div class="field"><label for="login-hint">Sign in as (local setup only: '
        "role:id, e.g. student:S1234567)</label>"
        '<input type="text" id="login-hint" name="login_hint" required '
        'autocomplete="username" spellcheck="false"></div>'
        if local
        else ""
    )
    main = (
        "<p>See your own engagement data and why you received any message, or, for staff, "
        "your review queue and cohort figures. Sign in with your university account.</p>"
        f'<form method="get" action="/auth/login" id="signin-form">{hint}'
        f'<input type="hidden" name="next" value="{attr(wanted)}">'
        '<button type="submit">Sign in</button></form>'
    )
    return page_response(
        layout("Engagement", main, nav=nav_for(None), here="/"),
        form_targets=provider_origin(request),
    )


def pages_router(session_of: Callable[[Request], Awaitable[Any]], csrf_header: str) -> APIRouter:
    """Every page, given the API's sign-in: ``session_of`` finds a request's session (or
    None), ``csrf_header`` is the header ``/v1`` reads a change's CSRF token from."""
    given = Hooks(session_of, csrf_header)

    async def install(request: Request) -> None:
        request.state.pages_hooks = given

    pages = APIRouter(include_in_schema=False, dependencies=[Depends(install)])
    pages.include_router(router)
    pages.include_router(me.router)
    pages.include_router(staff.router)
    pages.include_router(students.router)
    pages.include_router(corrections.router)
    pages.include_router(backtests.router)
    return pages
