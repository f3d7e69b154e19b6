"""The backtest reports on ``/insights``, and ``/insights/backtests/{name}``: one report as the
text ``engagement replay`` prints, from ``/v1/insights/backtests`` (counts only; a report that
names a student is listed as withheld and never shown)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from schemas.access import Role
from stream.api.pages.calls import call
from stream.api.pages.common import nav_for, signed_in, to_signin
from stream.api.pages.html import attr, esc, layout, notice, page_response, table
from stream.offline.backtest import REPORT_NAME, render_report

router = APIRouter(include_in_schema=False)


def _row(r: dict[str, Any]) -> list[str]:
    name = str(r.get("name"))
    shown = (
        esc(name)
        if r.get("withheld") or not REPORT_NAME.fullmatch(name)
        else f'<a href="/insights/backtests/{attr(name)}">{esc(name)}</a>'
    )
    return [
        shown,
        esc(f"{r['first_day']} to {r.get('last_day')}" if r.get("first_day") else None),
        esc(r.get("students")),
        esc(r.get("decisions")),
        esc(", ".join(r.get("rules") or []) or "none"),
        esc(f"withheld: {r['withheld']}" if r.get("withheld") else "available"),
    ]


async def section(request: Request) -> str:
    """The list of filed reports, for the Insights page."""
    answer = await call(request, "GET", "/v1/insights/backtests")
    if not answer.ok or not isinstance(answer.body, list):
        body = notice(f"The reports cannot be listed now: {answer.detail}", problem=True)
    elif not answer.body:
        body = (
            "<p>No report is filed yet. <code>engagement replay --publish</code> files one "
            "here.</p>"
        )
    else:
        body = table(
            "Backtest reports, newest first",
            ["Report", "Period", "Students", "Decisions", "Rules", "Status"],
            (_row(r) for r in answer.body if isinstance(r, dict)),
            ident="backtests",
        )
    return (
        '<section aria-labelledby="backtests-h"><h2 id="backtests-h">Backtest reports</h2>'
        "<p>What the rules would have done over a past period (<code>engagement replay</code>)"
        ": counts only, small groups withheld.</p>"
        f"{body}</section>"
    )


def _text(report: Any) -> str:
    """The report as ``engagement replay`` prints it (as JSON if it cannot be put so)."""
    try:
        return render_report(report)
    except (KeyError, TypeError, ValueError, AttributeError):
        return json.dumps(report, indent=1)


@router.get("/insights/backtests/{name}")
async def backtest_page(request: Request, name: str) -> Response:
    here = f"/insights/backtests/{name}"
    session = await signed_in(request)
    if session is None:
        return to_signin(here if REPORT_NAME.fullmatch(name) else "/insights")
    nav, csrf = nav_for(session.principal), session.csrf
    if not session.principal.has(Role.INSIGHTS):
        main = "<p>This page is for insights staff: aggregates only.</p>"
        return page_response(layout("Backtest report", main, nav=nav, csrf=csrf), status=403)
    if not REPORT_NAME.fullmatch(name):
        main = notice("There is no such report.", problem=True)
        return page_response(layout("Backtest report", main, nav=nav, csrf=csrf), status=404)
    answer = await call(request, "GET", f"/v1/insights/backtests/{name}")
    if not answer.ok or not isinstance(answer.body, dict):
        main = notice(f"The report cannot be shown: {answer.detail}", problem=True)
        status = min(answer.status, 503) if not answer.ok else 502
        return page_response(layout("Backtest report", main, nav=nav, csrf=csrf), status=status)
    main = (
        f'<p><a href="/v1/insights/backtests/{attr(name)}" download="{attr(name)}.json">'
        'Download it as JSON</a> · <a href="/insights">Back to Insights</a></p>'
        f'<pre id="backtest-text">{esc(_text(answer.body.get("report")))}</pre>'
    )
    return page_response(layout(f"Backtest report {name}", main, nav=nav, csrf=csrf))
