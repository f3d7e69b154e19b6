"""Sign-in for the API's routes: who is asking (:func:`principal`), role checks (:func:`require`).

A request is signed in by a bearer token in ``Authorization`` (scripts, the CLI, other
services) or by the pages' session cookie. A refusal is a 401 naming the reason; a signed-in
person without any of a route's roles gets 403 (a refusal about one student is the routes'
business, and answers 404). The :class:`~stream.api.auth.Authenticator` is
``request.app.state.authenticator``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request

from schemas.access import Principal, Role
from stream.api.auth import Authenticator, AuthError
from stream.api.session import session_of

_CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_SIGN_IN = {"WWW-Authenticate": "Bearer"}


def _refused(reason: str, headers: dict[str, str] = _CHALLENGE) -> HTTPException:
    return HTTPException(401, detail=reason, headers=headers)


async def principal(request: Request) -> Principal:
    """The signed-in person: from a bearer token, else from the session cookie; else 401."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            msg = "use Authorization: Bearer <token>"
            raise _refused(msg)
        authenticator: Authenticator = request.app.state.authenticator
        try:
            return await authenticator.principal(token.strip())
        except AuthError as exc:
            raise _refused(exc.reason) from None
    session = await session_of(request)
    if session is None:
        msg = "sign-in required"
        raise _refused(msg, _SIGN_IN)
    return session.principal


def require(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency giving the principal when it has one of ``roles``, else 403."""
    allowed = frozenset(roles)

    async def check(who: Principal = Depends(principal)) -> Principal:  # noqa: B008  # FastAPI's idiom
        if not who.roles & allowed:
            names = ", ".join(sorted(role.value for role in allowed))
            raise HTTPException(403, detail=f"this needs one of the roles: {names}")
        return who

    return check
