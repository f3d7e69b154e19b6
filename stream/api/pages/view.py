"""One student's engagement and records as HTML, shared by "My engagement" (``/me``, the
student's own) and the staff view of a student (``/staff/students/{id}``).

Both render what a ``/v1`` route answered (``/v1/me`` or ``/v1/students/{id}``, and their
``…/interventions``); only the wording differs (:class:`Voice`: "you" or "the student").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import Request

from schemas.rules import Kind
from stream.api.pages.chart import Line, weekly_svg
from stream.api.pages.html import esc, table

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


@dataclass(frozen=True)
class Voice:
    """The words that differ between the student's own page and a member of staff's."""

    now: str
    numbers: str
    applies: str
    records: str
    no_records: str
    chart: str
    sent: str


STUDENT = Voice(
    now="Your engagement now",
    numbers="Your numbers",
    applies="Applies to you now",
    records="Every message and decision about you",
    no_records="There are no records about you.",
    chart="Your activity each week, and your weekly score",
    sent="sent to you",
)
STAFF = Voice(
    now="Engagement now",
    numbers="The student's numbers",
    applies="Applies now",
    records="Every message and decision about the student",
    no_records="There are no records about the student.",
    chart="The student's activity each week, and their weekly score",
    sent="sent to the student",
)


def score_lines(request: Request) -> list[Line]:
    """The score rules' thresholds, drawn across the chart's score panel."""
    rules = request.app.state.api.rules
    return [
        Line(rule.id.replace("_", " "), float(rule.threshold))
        for rule in rules.active
        if rule.kind is Kind.LOW_SCORE and rule.threshold is not None
    ]


def engagement(e: dict[str, Any], lines: list[Line], voice: Voice = STUDENT) -> str:
    """The band and its explanation, each source and rule with its numbers, the weekly chart
    and its table (an ``Engagement`` as ``/v1`` answers it)."""
    score = e.get("score")
    band = e.get("band") or "not known yet"
    shown = "not known yet" if score is None else f"{score:g} out of 5"
    head = (
        f'<section aria-labelledby="now"><h2 id="now">{esc(voice.now)}</h2>'
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
        f"Each rule, its window and threshold, and {voice.numbers[0].lower()}{voice.numbers[1:]}",
        ["Rule", "Window", "Threshold", voice.numbers, voice.applies],
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
        lines,
        title=voice.chart,
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


def records(found: list[dict[str, Any]], voice: Voice = STUDENT) -> str:
    """Every intervention record, newest first, with what happened and why."""
    outcomes = OUTCOMES | {"delivered": voice.sent}
    rows = (
        [
            esc(r["decided_at"][:16].replace("T", " ")),
            esc(r["summary"]),
            esc(outcomes.get(r["outcome"], r["outcome"])),
            esc(r["detail"])
            + (
                f" <span>(reason: {esc(r['reason'])})</span>"
                if r["outcome"] == "suppressed"
                else ""
            ),
            esc(", ".join(r.get("channels", [])) or "none"),
        ]
        for r in found
    )
    body = (
        table(
            "Every record, newest first",
            ["When (UTC)", "What we noticed", "What happened", "Why", "Channels"],
            rows,
            ident="records",
        )
        if found
        else f"<p>{esc(voice.no_records)}</p>"
    )
    return (
        f'<section aria-labelledby="records-h"><h2 id="records-h">{esc(voice.records)}'
        f"</h2>{body}</section>"
    )
