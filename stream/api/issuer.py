"""The built-in LOCAL DEVELOPMENT issuer — for the demo and the tests, NEVER for production.

It signs in whoever ``login_hint`` names (``student:S1234567``, ``tutor:T001``), with no
password: anyone who can reach it can be anyone. The API mounts it under ``/local-issuer`` only
when ``ENGAGEMENT_OIDC_ISSUER=local``, and refuses to start so unless
``ENGAGEMENT_LOCAL_SETUP=yes`` says this is a local setup (:func:`check_startup`).

It speaks enough OpenID Connect for the pages and for ordinary OAuth clients: discovery, JWKS,
``/authorize`` (authorization code with PKCE S256 only) and ``/token``; tokens are RS256. Its
signing keys live in ``ENGAGEMENT_STATE_DIR/local-issuer-keys.json`` (0600), so the API and
``engagement token`` agree; :meth:`LocalKeys.rotate` adds a key and keeps the old one in the
JWKS for a while, as a real provider does. One-time codes live in the API process's memory.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from schemas.access import Role
from schemas.api_settings import ApiSettings
from schemas.errors import ConfigError

KEY_FILE = "local-issuer-keys.json"
MOUNT = "/local-issuer"
ALGORITHM = "RS256"
CODE_SECONDS = 60
KEEP_OLD_KEY_S = 3600.0
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636, section 4.1
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256, unpadded
_ROLE_NAMES = {role.value: role for role in Role}


def local_issuer_url(public_url: str) -> str:
    """The issuer the local tokens carry: the API's public address plus the mount point."""
    return f"{public_url.rstrip('/')}{MOUNT}"


def check_startup(settings: ApiSettings) -> None:
    """Refuse to start without a provider, or with the local issuer outside a local setup."""
    if settings.oidc_issuer is None:
        msg = (
            "ENGAGEMENT_OIDC_ISSUER is not set: set it to your OpenID Connect provider's issuer "
            "URL (or to 'local', with ENGAGEMENT_LOCAL_SETUP=yes, on a developer's machine)"
        )
        raise ConfigError(msg)
    if settings.uses_local_issuer() and not settings.local_setup:
        msg = (
            "ENGAGEMENT_OIDC_ISSUER=local is the built-in development issuer, which signs in "
            "anyone it is asked to: the API refuses it unless ENGAGEMENT_LOCAL_SETUP=yes says "
            "this is a local setup"
        )
        raise ConfigError(msg)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a code verifier (RFC 7636)."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


class LocalKeys:
    """The local issuer's RSA keys in one 0600 file: the newest signs, unretired ones verify."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / KEY_FILE
        self._cache: tuple[int, list[dict[str, Any]]] | None = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)

    def _write(self, entries: list[dict[str, Any]]) -> None:
        temporary = self.path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump({"keys": entries}, out)
        os.replace(temporary, self.path)

    def _entries(self) -> list[dict[str, Any]]:
        """The file's keys, creating the file with a first key when there is none."""
        if not self.path.exists():
            with self._locked():
                if not self.path.exists():
                    self._write([_new_key()])
        stamp = self.path.stat().st_mtime_ns
        if self._cache is None or self._cache[0] != stamp:
            entries = json.loads(self.path.read_text(encoding="utf-8"))["keys"]
            self._cache = (stamp, entries)
        return self._cache[1]

    def _live(self) -> list[dict[str, Any]]:
        now = time.time()
        return [e for e in self._entries() if e.get("retire_at") is None or e["retire_at"] > now]

    def signing_key(self) -> tuple[str, rsa.RSAPrivateKey]:
        """The newest key's id and private key."""
        newest = max(self._live(), key=lambda e: float(e["created"]))
        key = serialization.load_pem_private_key(newest["private_pem"].encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            msg = f"{self.path} holds a key that is not RSA; delete the file to start afresh"
            raise ConfigError(msg)
        return str(newest["kid"]), key

    def jwks(self) -> dict[str, Any]:
        """The public keys that still verify (the newest and those not yet retired)."""
        keys = []
        for entry in self._live():
            public = serialization.load_pem_private_key(
                entry["private_pem"].encode(), password=None
            ).public_key()
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))  # type: ignore[arg-type]  # RSA checked on signing
            keys.append({**jwk, "kid": entry["kid"], "alg": ALGORITHM, "use": "sig"})
        return {"keys": keys}

    def rotate(self, keep_s: float = KEEP_OLD_KEY_S) -> str:
        """Add a new signing key; the older ones stay in the JWKS for ``keep_s`` seconds."""
        with self._locked():
            entries = self._entries()
            until = time.time() + keep_s
            for entry in entries:
                if entry.get("retire_at") is None or entry["retire_at"] > until:
                    entry["retire_at"] = until
            new = _new_key()
            self._write([*entries, new])
        return str(new["kid"])

    def retire(self, kid: str) -> None:
        """Take one key out of the JWKS now: tokens it signed no longer verify."""
        with self._locked():
            entries = self._entries()
            for entry in entries:
                if entry["kid"] == kid:
                    entry["retire_at"] = time.time()
            self._write(entries)

    def metadata(self, issuer: str) -> dict[str, Any]:
        """The discovery document of the issuer at ``issuer``."""
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid"],
        }


def _new_key() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "kid": f"local-{secrets.token_hex(8)}",
        "created": time.time(),
        "retire_at": None,
        "private_pem": pem.decode("ascii"),
    }


def parse_login_hint(hint: str) -> tuple[str, frozenset[Role]]:
    """``role[,role]:subject`` → (subject, roles); ValueError says what is wrong."""
    names, sep, subject = hint.partition(":")
    roles = [_ROLE_NAMES.get(n.strip()) for n in names.split(",")]
    if not sep or not subject.strip() or len(subject) > 128 or any(c.isspace() for c in subject):
        msg = "login_hint must be role:subject, e.g. student:S1234567"
        raise ValueError(msg)
    if None in roles:
        msg = f"login_hint roles must be among {', '.join(_ROLE_NAMES)}"
        raise ValueError(msg)
    return subject, frozenset(r for r in roles if r is not None)


@dataclass
class LocalIssuer:
    """Mints the local issuer's tokens, with the claims the API is configured to read."""

    keys: LocalKeys
    issuer: str
    audience: str
    client_id: str
    subject_claim: str = "sub"
    roles_claim: str = "roles"
    _codes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Any) -> LocalIssuer:
        """From the settings object (its API fields and ``state_dir``)."""
        return cls(
            LocalKeys(settings.state_dir),
            local_issuer_url(settings.public_url()),
            settings.oidc_audience,
            settings.oidc_client_id,
            settings.oidc_subject_claim,
            settings.oidc_roles_claim,
        )

    def mint(
        self,
        subject: str,
        roles: Sequence[Role],
        *,
        seconds: float = 3600.0,
        audience: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A signed token for ``subject`` with ``roles`` (an access token unless told)."""
        kid, key = self.keys.signing_key()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience or self.audience,
            "sub": subject,
            self.subject_claim: subject,
            self.roles_claim: sorted(role.value for role in roles),
            "iat": now,
            "nbf": now,
            "exp": now + int(seconds),
            "jti": secrets.token_hex(8),
            "azp": self.client_id,
            **(extra or {}),
        }
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})

    def redirect_allowed(self, redirect_uri: str) -> bool:
        """Back to the API's own address or a loopback one (RFC 8252), nowhere else."""
        target = urlsplit(redirect_uri)
        own = urlsplit(self.issuer)
        if target.scheme not in ("http", "https") or target.fragment:
            return False
        return target.hostname in _LOOPBACK or target.netloc == own.netloc

    def authorize(self, params: dict[str, str]) -> str:
        """Check an authorization request; the redirect carrying a one-time code."""
        if params.get("client_id") != self.client_id:
            msg = "unknown client_id"
            raise ValueError(msg)
        redirect_uri = params.get("redirect_uri", "")
        if not self.redirect_allowed(redirect_uri):
            msg = "redirect_uri must be the API's own address or a loopback one"
            raise ValueError(msg)
        if params.get("response_type") != "code":
            msg = "response_type must be code"
            raise ValueError(msg)
        challenge = params.get("code_challenge", "")
        if params.get("code_challenge_method") != "S256" or not _CHALLENGE.fullmatch(challenge):
            msg = "PKCE with code_challenge_method=S256 is required"
            raise ValueError(msg)
        subject, roles = parse_login_hint(params.get("login_hint", ""))
        now = time.time()
        for stale in [c for c, v in self._codes.items() if v["expires"] < now]:
            del self._codes[stale]
        code = secrets.token_urlsafe(32)
        self._codes[code] = {
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "challenge": challenge,
            "nonce": params.get("nonce"),
            "subject": subject,
            "roles": roles,
            "expires": now + CODE_SECONDS,
        }
        back = {"code": code, **({"state": params["state"]} if "state" in params else {})}
        joiner = "&" if urlsplit(redirect_uri).query else "?"
        return f"{redirect_uri}{joiner}{urlencode(back)}"

    def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        """Trade a one-time code and its PKCE verifier for tokens; ValueError when refused."""
        if form.get("grant_type") != "authorization_code":
            msg = "unsupported_grant_type"
            raise ValueError(msg)
        grant = self._codes.pop(form.get("code", ""), None)  # one time, whatever follows
        verifier = form.get("code_verifier", "")
        if grant is None or grant["expires"] < time.time():
            msg = "invalid_grant"
            raise ValueError(msg)
        if form.get("client_id") != grant["client_id"]:
            msg = "invalid_client"
            raise ValueError(msg)
        if form.get("redirect_uri") != grant["redirect_uri"]:
            msg = "invalid_grant"
            raise ValueError(msg)
        if not _VERIFIER.fullmatch(verifier) or not secrets.compare_digest(
            s256(verifier), grant["challenge"]
        ):
            msg = "invalid_grant"
            raise ValueError(msg)
        seconds = 3600.0
        nonce = {"nonce": grant["nonce"]} if grant["nonce"] else {}
        return {
            "access_token": self.mint(grant["subject"], grant["roles"], seconds=seconds),
            "id_token": self.mint(
                grant["subject"], grant["roles"], audience=self.client_id, extra=nonce
            ),
            "token_type": "Bearer",
            "expires_in": int(seconds),
            "scope": "openid",
        }


def _oauth_error(error: str, description: str | None = None) -> JSONResponse:
    body = {"error": error, **({"error_description": description} if description else {})}
    return JSONResponse(body, status_code=400, headers={"Cache-Control": "no-store"})


def _client_id(request: Request, form: dict[str, str]) -> str | None:
    """The client id from the form, or from HTTP Basic client authentication."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            return base64.b64decode(value).decode().partition(":")[0]
    return form.get("client_id")


def issuer_router(issuer: LocalIssuer) -> APIRouter:
    """The local issuer's endpoints; the API mounts them under ``/local-issuer``."""
    router = APIRouter(prefix=MOUNT, include_in_schema=False)

    @router.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return issuer.keys.metadata(issuer.issuer)

    @router.get("/jwks")
    async def jwks() -> JSONResponse:
        return JSONResponse(issuer.keys.jwks(), headers={"Cache-Control": "no-store"})

    @router.get("/authorize")
    async def authorize(request: Request) -> Response:
        try:
            location = issuer.authorize(dict(request.query_params))
        except ValueError as exc:
            return _oauth_error("invalid_request", str(exc))
        return RedirectResponse(location, status_code=303)

    @router.post("/token")
    async def token(request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        form["client_id"] = _client_id(request, form) or ""
        try:
            tokens = issuer.exchange(form)
        except ValueError as exc:
            return _oauth_error(str(exc))
        return JSONResponse(tokens, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    return router
