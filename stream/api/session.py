"""The pages' sign-in: authorization code with PKCE at the provider, then a session cookie.

``/auth/login`` sends the browser to the provider (PKCE S256, state and nonce kept in a short,
signed, HTTP-only cookie); ``/auth/callback`` trades the code for tokens, validates them with
the :class:`~stream.api.auth.Authenticator` and opens a session; ``POST /auth/logout`` ends it.
A session is a random id in an HTTP-only, SameSite=Lax cookie (Secure when the public address
is https), signed with ENGAGEMENT_SESSION_SECRET; Redis holds what it grants under the SHA-256
of the id (so a copy of Redis opens nobody's session), for ENGAGEMENT_SESSION_HOURS, and
logout deletes it. Every state-changing form of the pages echoes the session's CSRF token
(:func:`require_csrf`); a request with a bearer token carries no cookie and needs none.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import redis.asyncio as aioredis
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from schemas.access import Principal, Role
from schemas.api_settings import MIN_SECRET_CHARS
from schemas.errors import ConfigError
from schemas.keys import Keys
from stream.api.auth import Authenticator, AuthError
from stream.api.issuer import LocalIssuer, issuer_router, s256
from stream.api.problems import responses

log = logging.getLogger(__name__)

SESSION_COOKIE = "engagement_session"
LOGIN_COOKIE = "engagement_signin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_SECONDS = 600
SECRET_FILE = "session.secret"  # noqa: S105  # a file name, not a secret


def session_secret(settings: Any) -> bytes:
    """ENGAGEMENT_SESSION_SECRET or its file; on a local setup without either, a random one
    kept in ENGAGEMENT_STATE_DIR (as the development pseudonym key is). Otherwise stop."""
    if settings.session_secret is not None:
        return str(settings.session_secret.get_secret_value()).encode()
    path: Path | None = settings.session_secret_file
    if path is None and settings.local_setup:
        path = Path(settings.state_dir) / SECRET_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(secrets.token_urlsafe(48))
    if path is None:
        msg = (
            "set ENGAGEMENT_SESSION_SECRET or ENGAGEMENT_SESSION_SECRET_FILE (at least "
            f"{MIN_SECRET_CHARS} random characters): it signs the pages' session cookie"
        )
        raise ConfigError(msg)
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        msg = f"ENGAGEMENT_SESSION_SECRET_FILE {path} cannot be read ({exc.strerror})"
        raise ConfigError(msg) from None
    if len(secret) < MIN_SECRET_CHARS:
        msg = f"the session secret in {path} must be at least {MIN_SECRET_CHARS} characters"
        raise ConfigError(msg)
    return secret.encode()


@dataclass(frozen=True)
class Session:
    """One signed-in browser: whom it signs in, and the token its forms must echo."""

    principal: Principal
    csrf: str
    id_hash: str


class Sessions:
    """Sessions in Redis by the SHA-256 of their id, each expiring after the session hours."""

    def __init__(self, client: aioredis.Redis, keys: Keys, hours: float) -> None:
        self.client = client
        self.keys = keys
        self.seconds = max(1, int(hours * 3600))

    @staticmethod
    def _hash(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    async def open(self, principal: Principal) -> str:
        """A new session for ``principal``; returns its id (for the cookie only)."""
        session_id = secrets.token_urlsafe(32)
        record = {
            "subject": principal.subject,
            "roles": sorted(role.value for role in principal.roles),
            "csrf": secrets.token_urlsafe(32),
            "opened": int(time.time()),
        }
        key = self.keys.session(self._hash(session_id))
        await self.client.set(key, json.dumps(record), ex=self.seconds)
        return session_id

    async def get(self, session_id: str) -> Session | None:
        """The session behind an id, or None when it is unknown, expired or ended."""
        id_hash = self._hash(session_id)
        raw = await self.client.get(self.keys.session(id_hash))
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            roles = frozenset(Role(r) for r in record["roles"])
            return Session(Principal(str(record["subject"]), roles), str(record["csrf"]), id_hash)
        except (ValueError, KeyError, TypeError):
            return None

    async def end(self, session: Session) -> None:
        """Delete a session: its cookie opens nothing from now on."""
        await self.client.delete(self.keys.session(session.id_hash))


@dataclass(frozen=True)
class SignIn:
    """What the sign-in routes need, kept on ``app.state.signin``."""

    authenticator: Authenticator
    sessions: Sessions
    secret: bytes
    public_url: str
    client_id: str
    client_secret: str | None = None

    @property
    def secure(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def cookie(self) -> str:
        # The __Host- prefix pins the cookie to this host and path /; browsers allow it on https.
        return f"__Host-{SESSION_COOKIE}" if self.secure else SESSION_COOKIE

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/auth/callback"

    def sign(self, value: str) -> str:
        mac = hmac.new(self.secret, value.encode(), hashlib.sha256).digest()
        return f"{value}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    def unsign(self, signed: str | None) -> str | None:
        value, _, _ = (signed or "").rpartition(".")
        return value if value and same(self.sign(value), signed or "") else None


def same(given: str, expected: str) -> bool:
    """Constant-time comparison of what a client sent (any characters) with what we hold."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _signin(request: Request) -> SignIn:
    signin: SignIn = request.app.state.signin
    return signin


async def session_of(request: Request) -> Session | None:
    """The session the request's cookie opens, if any (cached on the request)."""
    if hasattr(request.state, "session"):
        found: Session | None = request.state.session
        return found
    signin: SignIn | None = getattr(request.app.state, "signin", None)
    if signin is None:  # an app without the pages' sign-in: bearer tokens only
        return None
    session_id = signin.unsign(request.cookies.get(signin.cookie))
    session = await signin.sessions.get(session_id) if session_id else None
    request.state.session = session
    return session


def _has_bearer(request: Request) -> bool:
    return request.headers.get("authorization", "").lower().startswith("bearer ")


async def csrf_token(request: Request) -> str | None:
    """The token the pages put in a hidden ``csrf_token`` field of every form."""
    session = await session_of(request)
    return session.csrf if session else None


async def csrf_ok(request: Request) -> bool:
    """A bearer request, or a session request echoing its CSRF token (field or header)."""
    if _has_bearer(request):
        return True
    session = await session_of(request)
    if session is None:
        return False
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent is not None and same(sent, session.csrf)


async def require_csrf(request: Request) -> None:
    """A dependency for state-changing routes the pages post to: 403 without the token."""
    if not await csrf_ok(request):
        raise HTTPException(403, detail="the form's CSRF token is missing or wrong")


def _local_path(value: str | None) -> str:
    """Where to go after sign-in: a path on this site only (never another site)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


def session_router() -> APIRouter:
    """``/auth/login``, ``/auth/callback`` and ``/auth/logout``."""
    router = APIRouter(prefix="/auth", tags=["sign-in"])

    @router.get("/login", status_code=303, response_class=RedirectResponse, summary="Sign in")
    async def login(
        request: Request, login_hint: str | None = None, next: str | None = None
    ) -> Response:
        """Send the browser to the provider to sign in (authorization code with PKCE)."""
        signin = _signin(request)
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        query = {
            "response_type": "code",
            "client_id": signin.client_id,
            "redirect_uri": signin.redirect_uri,
            "scope": "openid",
            "state": state,
            "nonce": nonce,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
            **({"login_hint": login_hint[:200]} if login_hint else {}),
        }
        provider = signin.authenticator.provider.authorization_endpoint
        response = RedirectResponse(f"{provider}?{urlencode(query)}", status_code=303)
        pending = {"state": state, "nonce": nonce, "verifier": verifier, "next": _local_path(next)}
        pending["until"] = str(int(time.time()) + LOGIN_SECONDS)
        cookie = base64.urlsafe_b64encode(json.dumps(pending).encode()).decode()
        response.set_cookie(
            LOGIN_COOKIE, signin.sign(cookie), max_age=LOGIN_SECONDS, path="/auth",
            secure=signin.secure, httponly=True, samesite="lax",
        )  # fmt: skip
        return response

    @router.get(
        "/callback",
        summary="Back from the provider",
        status_code=303,
        response_class=RedirectResponse,
        responses=responses(400, 401, 502),
    )
    async def callback(
        request: Request,
        code: str | None = None,
        state: str | None = None,
        error: str | None = None,
    ) -> Response:
        """Back from the provider: check the state, trade the code, open a session."""
        signin = _signin(request)
        pending = _pending(signin, request.cookies.get(LOGIN_COOKIE))
        if pending is None:
            raise HTTPException(400, detail="no sign-in is under way here: start again")
        if error is not None:
            raise HTTPException(401, detail="the provider did not sign you in")
        if not code or not state or not same(state, pending["state"]):
            raise HTTPException(400, detail="the sign-in answer does not match: start again")
        tokens = await _exchange(signin, code, pending["verifier"])
        try:
            await signin.authenticator.id_claims(str(tokens["id_token"]), pending["nonce"])
            principal = await signin.authenticator.principal(str(tokens["access_token"]))
        except AuthError as exc:
            raise HTTPException(401, detail=exc.reason) from None
        session_id = await signin.sessions.open(principal)
        response = RedirectResponse(pending["next"], status_code=303)
        response.delete_cookie(LOGIN_COOKIE, path="/auth", secure=signin.secure, httponly=True)
        response.set_cookie(
            signin.cookie, signin.sign(session_id), max_age=signin.sessions.seconds, path="/",
            secure=signin.secure, httponly=True, samesite="lax",
        )  # fmt: skip
        return response

    @router.post(
        "/logout",
        summary="Sign out",
        status_code=303,
        response_class=RedirectResponse,
        responses=responses(403),
    )
    async def logout(request: Request) -> Response:
        """End this browser's session (the form echoes its CSRF token)."""
        await require_csrf(request)
        signin = _signin(request)
        session = await session_of(request)
        if session is not None:
            await signin.sessions.end(session)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(signin.cookie, path="/", secure=signin.secure, httponly=True)
        return response

    return router


def _pending(signin: SignIn, cookie: str | None) -> dict[str, str] | None:
    """The signed sign-in-under-way cookie, if it is ours and not too old."""
    value = signin.unsign(cookie)
    if value is None:
        return None
    try:
        pending = json.loads(base64.urlsafe_b64decode(value))
        fresh = int(pending["until"]) >= time.time()
        return (
            {k: str(pending[k]) for k in ("state", "nonce", "verifier", "next")} if fresh else None
        )
    except (ValueError, KeyError, TypeError):
        return None


async def _exchange(signin: SignIn, code: str, verifier: str) -> dict[str, Any]:
    """Trade the code at the provider's token endpoint (with the PKCE verifier)."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": signin.redirect_uri,
        "client_id": signin.client_id,
        "code_verifier": verifier,
    }
    auth = httpx.BasicAuth(signin.client_id, signin.client_secret) if signin.client_secret else None
    endpoint = signin.authenticator.provider.token_endpoint
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            answer = await client.post(endpoint, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)
    except httpx.HTTPError as exc:
        log.warning("the sign-in provider's token endpoint did not answer: %s", exc)
        raise HTTPException(502, detail="the sign-in provider did not answer") from None
    try:
        tokens = answer.json()
    except ValueError:
        tokens = None
    if answer.status_code != 200 or not isinstance(tokens, dict):
        raise HTTPException(401, detail="the provider refused the sign-in code")
    if not isinstance(tokens.get("access_token"), str) or not isinstance(
        tokens.get("id_token"), str
    ):
        raise HTTPException(401, detail="the provider returned no access and ID token")
    return tokens


def install_signin(
    app: FastAPI, settings: Any, *, client: aioredis.Redis, authenticator: Authenticator
) -> SignIn:
    """Put sign-in on the API: the authenticator and sessions on ``app.state``, the ``/auth``
    routes, and (only with ENGAGEMENT_OIDC_ISSUER=local) the local issuer's routes."""
    client_secret = None
    if settings.oidc_client_secret_file is not None:
        try:
            client_secret = Path(settings.oidc_client_secret_file).read_text("utf-8").strip()
        except OSError as exc:
            msg = f"ENGAGEMENT_OIDC_CLIENT_SECRET_FILE cannot be read ({exc.strerror})"
            raise ConfigError(msg) from None
    signin = SignIn(
        authenticator,
        Sessions(client, Keys(settings.key_prefix), settings.session_hours),
        session_secret(settings),
        settings.public_url(),
        settings.oidc_client_id,
        client_secret,
    )
    app.state.authenticator = authenticator
    app.state.signin = signin
    app.include_router(session_router())
    if settings.uses_local_issuer():
        app.include_router(issuer_router(LocalIssuer.from_settings(settings)))
    return signin
