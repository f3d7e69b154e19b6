"""The weekly chart of the "My engagement" page, as inline SVG (no script, no external file).

Two panels over the same weeks: days with activity per source (0 to 7 a week) as bars, and
the weekly score (0 to 5) as a line against each score rule's threshold, dashed. The SVG is
an image with a title and a description; the table printed after it is its text alternative.
Pure: it formats what the page was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from stream.api.pages.html import attr, esc

WIDTH, PANEL, GAP, LEFT, TOP = 720, 150, 50, 44, 24
# Bar colours with at least 3:1 contrast against white (WCAG 1.4.11).
COLOURS = ("#0b4f9c", "#b35900", "#1a7f37", "#8250df", "#b42318", "#4a4a4a")


@dataclass(frozen=True)
class Line:
    """A threshold drawn across the score panel."""

    label: str
    value: float


def _x(n: int, weeks: int) -> float:
    return LEFT + (WIDTH - LEFT - 10) * (n + 0.5) / max(weeks, 1)


def weekly_svg(
    weeks: Sequence[date],
    active_days: dict[str, Sequence[int]],
    scores: Sequence[float | None],
    thresholds: Sequence[Line],
    *,
    title: str = "Your activity each week, and your weekly score",
) -> str:
    """The chart: ``active_days`` per source (one value per week), ``scores`` per week;
    ``title`` names it for a screen reader."""
    n = len(weeks)
    height = TOP + PANEL + GAP + PANEL + 30
    band_w = (WIDTH - LEFT - 10) / max(n, 1)
    sources = list(active_days)
    bar_w = max(2.0, (band_w * 0.8) / max(len(sources), 1))
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        'role="img" aria-labelledby="chart-title chart-desc" id="weekly-chart" '
        f'data-weeks="{n}">',
        f'<title id="chart-title">{esc(title)}</title>',
        '<desc id="chart-desc">Top: days with activity each week, per source. Bottom: the '
        "score at the end of each week, 0 to 5, with the score rules' thresholds as dashed "
        "lines. The table after the chart gives the same numbers.</desc>",
    ]
    base = TOP + PANEL
    for tick in (0, 7):
        y = base - PANEL * tick / 7
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 10}" y1="{y}" y2="{y}" stroke="#8c959f"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" font-size="12">{tick}</text>'
        )
    parts.append(f'<text x="{LEFT}" y="{TOP - 8}" font-size="13">Days active per week</text>')
    for s, source in enumerate(sources):
        colour = COLOURS[s % len(COLOURS)]
        for w, days in enumerate(active_days[source]):
            h = PANEL * min(max(days, 0), 7) / 7
            x = LEFT + band_w * w + band_w * 0.1 + bar_w * s
            parts.append(
                f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{esc(source)}, week of {weeks[w]:%d %b}: {days} days'
                "</title></rect>"
            )
        lx = LEFT + 110 * s + 170
        parts.append(f'<rect x="{lx}" y="{TOP - 19}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="{TOP - 8}" font-size="12">{esc(source)}</text>')
    top2 = base + GAP
    base2 = top2 + PANEL
    parts.append(
        f'<text x="{LEFT}" y="{top2 - 8}" font-size="13">Score at the end of each week '
        "(0 to 5)</text>"
    )
    for tick in (0, 5):
        y = base2 - PANEL * tick / 5
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 10}" y1="{y}" y2="{y}" stroke="#8c959f"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" font-size="12">{tick}</text>'
        )
    for line in thresholds:
        y = base2 - PANEL * min(max(line.value, 0.0), 5.0) / 5
        parts.append(
            f'<line class="threshold" x1="{LEFT}" x2="{WIDTH - 10}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#b42318" stroke-width="2" stroke-dasharray="6 4"/>'
            f'<text x="{LEFT + 4}" y="{y - 4:.1f}" font-size="12" '
            f'fill="#b42318">{esc(line.label)} ({line.value:g})</text>'
        )
    points = [
        (_x(w, n), base2 - PANEL * min(max(score, 0.0), 5.0) / 5)
        for w, score in enumerate(scores)
        if score is not None
    ]
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(
            f'<polyline points="{attr(path)}" fill="none" stroke="#0b3d6e" stroke-width="3"/>'
        )
    for x, y in points:
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#0b3d6e"/>')
    for w, week in enumerate(weeks):
        parts.append(
            f'<text x="{_x(w, n):.1f}" y="{height - 8}" text-anchor="middle" '
            f'font-size="12">{week:%d %b}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
