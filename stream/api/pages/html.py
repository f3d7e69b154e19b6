"""The pages' HTML: one layout, escaped values, tables, and the headers every page carries.

Every value that came from a request or from stored data goes through :func:`esc` (or
:func:`attr`) before it reaches the markup; the pages carry no script, and the
Content-Security-Policy lets a page load nothing but this site's own style sheet.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi.responses import HTMLResponse

STYLE_PATH = "/pages/style.css"
ICON_PATH = "/pages/icon.svg"
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#0b3d6e"/>'
    '<path d="M3 11l3-4 3 2 4-5" stroke="#ffffff" stroke-width="2" fill="none"/></svg>'
)


def esc(value: Any) -> str:
    """Text for element content (None shows as an em dash)."""
    return "\u2014" if value is None else html.escape(str(value), quote=False)


def attr(value: Any) -> str:
    """Text for an attribute value (quotes escaped too)."""
    return html.escape("" if value is None else str(value), quote=True)


def csp(form_targets: Sequence[str] = ()) -> str:
    """Nothing from anywhere else: this site's style sheet, inline SVG, forms to this site
    (and, on the start page, to the sign-in provider)."""
    forms = " ".join(["'self'", *form_targets])
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {forms}; base-uri 'none'; frame-ancestors 'none'"
    )


def page_response(
    body: str, *, status: int = 200, form_targets: Sequence[str] = ()
) -> HTMLResponse:
    """An HTML page with the security headers every page carries; never cached (it is
    about one person)."""
    return HTMLResponse(
        body,
        status_code=status,
        headers={
            "Content-Security-Policy": csp(form_targets),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        },
    )


def layout(
    title: str,
    main: str,
    *,
    nav: Sequence[tuple[str, str]] = (),
    csrf: str | None = None,
    here: str = "",
) -> str:
    """A whole page: skip link, header with the pages this person may open, one ``h1``."""
    current = ' aria-current="page"'
    links = "".join(
        f'<li><a href="{attr(href)}"{current if href == here else ""}>{esc(label)}</a></li>'
        for href, label in nav
    )
    signout = (
        '<form method="post" action="/auth/logout" class="signout">'
        f'<input type="hidden" name="csrf_token" value="{attr(csrf)}">'
        '<button type="submit">Sign out</button></form>'
        if csrf
        else ""
    )
    return (
        '<!doctype html>\n<html lang="en-GB"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} \u2013 engagement</title>"
        f'<link rel="icon" href="{ICON_PATH}" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{STYLE_PATH}"></head><body>'
        '<a class="skip" href="#main">Skip to main content</a>'
        '<header><nav aria-label="Pages"><ul>'
        f"{links}</ul></nav>{signout}</header>"
        f'<main id="main" tabindex="-1"><h1>{esc(title)}</h1>{main}</main></body></html>'
    )


def table(
    caption: str, headers: Sequence[str], rows: Iterable[Sequence[str]], *, ident: str = ""
) -> str:
    """A table of already-escaped cells, with a caption and column headers (the first cell
    of each row heads the row)."""
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<th scope="row">{cell}</th>' if n == 0 else f"<td>{cell}</td>"
            for n, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    id_attr = f' id="{attr(ident)}"' if ident else ""
    return (
        f'<div class="scroll"><table{id_attr}><caption>{esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def notice(text: str, *, problem: bool = False) -> str:
    """A status line after a change (``role=status``) or a refusal (``role=alert``)."""
    role, kind = ("alert", "problem") if problem else ("status", "done")
    return f'<p class="notice {kind}" role="{role}">{esc(text)}</p>'


def hidden_csrf(csrf: str | None) -> str:
    """The hidden field every form of the pages echoes."""
    return f'<input type="hidden" name="csrf_token" value="{attr(csrf)}">'


STYLE = """
:root { color: #1b1b1b; background: #ffffff; font: 100%/1.5 system-ui, sans-serif; }
body { margin: 0; }
header { display: flex; flex-wrap: wrap; justify-content: space-between; align-items: center;
  gap: .5rem; padding: .5rem 1rem; background: #0b3d6e; }
header ul { display: flex; flex-wrap: wrap; gap: 1rem; list-style: none; margin: 0;
  padding: 0; }
header a { color: #ffffff; }
header a[aria-current="page"] { font-weight: bold; }
main { max-width: 62rem; margin: 0 auto; padding: 1rem; }
main:focus { outline: none; }
a { color: #0b4f9c; }
.skip { position: absolute; left: -999px; top: 0; background: #ffffff; color: #0b4f9c;
  padding: .5rem 1rem; z-index: 2; }
.skip:focus { left: 0; }
:focus-visible { outline: 3px solid #1b1b1b; outline-offset: 2px;
  box-shadow: 0 0 0 6px #ffd43b; }
header :focus-visible { outline-color: #ffffff; }
h2 { margin-top: 2rem; border-bottom: 2px solid #d0d7de; }
.band { font-size: 1.25rem; font-weight: bold; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .5rem 0 1rem; min-width: 60%; }
caption { text-align: left; font-weight: bold; padding: .25rem 0; }
th, td { border: 1px solid #8c959f; padding: .3rem .5rem; text-align: left;
  vertical-align: top; }
thead th { background: #eef2f6; }
.suppressed { font-style: italic; color: #4a4a4a; }
fieldset { border: 1px solid #8c959f; margin: 0 0 1rem; }
label { display: inline-block; margin: .25rem 0; }
input, select, textarea, button { font: inherit; }
input[type="text"], input[type="date"], select, textarea { border: 2px solid #59636e;
  padding: .25rem; max-width: 100%; }
button { background: #0b4f9c; color: #ffffff; border: 2px solid #0b4f9c; padding: .35rem 1rem;
  cursor: pointer; border-radius: 3px; }
.signout button { background: #ffffff; color: #0b3d6e; border-color: #ffffff; }
.field { margin: .5rem 0; }
.field label { display: block; font-weight: bold; }
.notice { padding: .5rem 1rem; border-left: 6px solid; }
.notice.done { border-color: #1a7f37; background: #eaf6ee; }
.notice.problem { border-color: #b42318; background: #fdecea; }
svg.chart { max-width: 100%; height: auto; }
.item { border: 1px solid #8c959f; padding: .5rem 1rem; margin: 0 0 1rem; }
.item form.accept, .item form.reject { display: inline-block; vertical-align: top;
  margin: 0 1.5rem .5rem 0; }
.facts dt { font-weight: bold; }
.facts dd { margin: 0 0 .5rem; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f8fa; padding: .5rem; }
"""
