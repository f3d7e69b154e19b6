"""What every page shares: who is signed in, the pages they may open, sign-in redirects.

The API hands the pages its sign-in (:class:`Hooks`: how a request's session is found, and
the header a change's CSRF token travels in) when it includes their router, so the pages
import nothing from the API's modules and read sessions exactly as ``/v1`` does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from schemas.access import Principal, Role

STAFF_ROLES = frozenset({Role.TUTOR, Role.SUPPORT, Role.COMPLIANCE})


class Session(Protocol):
    """What a page needs of a signed-in browser's session."""

    @property
    def principal(self) -> Principal: ...

    @property
    def csrf(self) -> str: ...


@dataclass(frozen=True)
class Hooks:
    """The API's sign-in, as the pages use it."""

    session_of: Callable[[Request], Awaitable[Any]]
    csrf_header: str


def hooks(request: Request) -> Hooks:
    """The hooks the pages' router put on this request."""
    found: Hooks = request.state.pages_hooks
    return found


def local_path(value: str | None) -> str:
    """Where to go after sign-in: a path on this site only (``/auth/login`` checks it again)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


def nav_for(principal: Principal | None) -> list[tuple[str, str]]:
    """The pages a person may open, in the header of every page."""
    links = [("/", "Start")]
    if principal is None:
        return links
    if principal.has(Role.STUDENT):
        links.append(("/me", "My engagement"))
    if principal.roles & STAFF_ROLES:
        links.append(("/staff/review", "Review queue"))
        links.append(("/staff/corrections", "Correction requests"))
    if principal.has(Role.INSIGHTS):
        links.append(("/insights", "Insights"))
    return links


async def signed_in(request: Request) -> Session | None:
    """The browser's session (pages sign in by cookie only)."""
    found: Session | None = await hooks(request).session_of(request)
    return found


def to_signin(path: str) -> Response:
    """Back to the start page to sign in, then on to ``path``."""
    return RedirectResponse(f"/?next={quote(path, safe='/')}", status_code=303)


def provider_origin(request: Request) -> list[str]:
    """The sign-in provider's origin, which the start page's form may be sent to."""
    signin = getattr(request.app.state, "signin", None)
    if signin is None:
        return []
    parts = urlsplit(signin.authenticator.provider.authorization_endpoint)
    return [f"{parts.scheme}://{parts.netloc}"] if parts.scheme and parts.netloc else []
