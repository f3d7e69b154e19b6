"""Bearer tokens: who a JWT from the institution's OpenID Connect provider says is asking.

The provider is found by discovery (``{issuer}/.well-known/openid-configuration``); its keys
come from its JWKS, cached, fetched again when a token names a key id not seen yet (at most
once per ``min_refetch_s``, so a stream of made-up key ids cannot make us hammer the provider)
and when the cache is older than ``max_age_s`` (a retired key stops verifying). A token is
accepted only when its signature verifies with an asymmetric algorithm from the configured
list — never ``none``, never a shared secret (HS*) — and its issuer, audience and times hold.
A refusal is an :class:`AuthError` with a short reason that is safe to show the caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from schemas.access import Principal, Role
from schemas.api_settings import ApiSettings
from schemas.errors import ConfigError, EngagementError
from stream.api.issuer import LocalKeys, check_startup, local_issuer_url

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 5.0
# The key types each algorithm family may use: a token's header cannot choose another.
_PARSED_KEYS = 32  # parsed signing keys kept; providers publish a handful
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_ROLE_NAMES = {role.value: role for role in Role}


class AuthError(EngagementError):
    """A token is refused; ``reason`` is short and safe to return to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Provider:
    """Where the OpenID Connect provider signs people in, hands out tokens and keeps keys."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str

    @classmethod
    def from_metadata(cls, issuer: str, metadata: Mapping[str, Any]) -> Provider:
        """Read discovery metadata; the issuer it names must be exactly the configured one."""
        if metadata.get("issuer") != issuer:
            named = metadata.get("issuer")
            msg = f"the provider's discovery document names issuer {named!r}, not {issuer!r} "
            msg += "(ENGAGEMENT_OIDC_ISSUER)"
            raise ConfigError(msg)
        fields = ("authorization_endpoint", "token_endpoint", "jwks_uri")
        missing = [f for f in fields if not isinstance(metadata.get(f), str)]
        if missing:
            msg = f"the provider's discovery document has no {', '.join(missing)}"
            raise ConfigError(msg)
        return cls(issuer, *(str(metadata[f]) for f in fields))


KeySource = Callable[[], Awaitable[Mapping[str, Any]]]
"""Returns the provider's JWKS document (``{"keys": [...]}``)."""


class KeySet:
    """The provider's signing keys by key id, refreshed on unknown ids and when old."""

    def __init__(
        self,
        fetch: KeySource,
        *,
        min_refetch_s: float = 10.0,
        max_age_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._min_refetch_s = min_refetch_s
        self._max_age_s = max_age_s
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Fetch the JWKS now; the keys held so far stay when the provider cannot answer."""
        async with self._lock:
            await self._load()

    async def _load(self) -> None:
        self._fetched_at = self._clock()  # a failed fetch waits as long as a good one
        document = await self._fetch()
        raw = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(raw, list):
            msg = "the provider's JWKS has no list of keys"
            raise ConfigError(msg)
        keys: dict[str, dict[str, Any]] = {}
        for jwk in raw:
            usable = isinstance(jwk, dict) and jwk.get("kty") in _KEY_TYPES.values()
            if usable and jwk.get("use", "sig") == "sig":
                keys[str(jwk.get("kid", ""))] = jwk
        self._keys = keys

    async def jwk(self, kid: str | None) -> dict[str, Any]:
        """The key a token names (by ``kid``; without one, the only key there is)."""
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self._max_age_s
        if stale or (self._find(kid) is None and self._may_refetch(now)):
            async with self._lock:
                if self._fetched_at is None or self._fetched_at < now:
                    try:
                        await self._load()
                    except (httpx.HTTPError, ConfigError, ValueError) as exc:
                        log.warning("sign-in keys could not be fetched: %s", exc)
        found = self._find(kid)
        if found is None:
            msg = "unknown key"
            raise AuthError(msg)
        return found

    def _may_refetch(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._min_refetch_s

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)


_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidIssuedAtError, "bad issue time"),
    (jwt.InvalidKeyError, "unusable key"),
    (jwt.DecodeError, "malformed token"),
)


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    return next((reason for kind, reason in _REASONS if isinstance(exc, kind)), "invalid token")


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name; a dotted name not present as such walks nested objects
    (``realm_access.roles``), since some providers nest roles and others name claims by URL."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def roles_of(value: Any) -> frozenset[Role]:
    """Known roles in a list or a space-separated string; unknown names are ignored."""
    names = value.split() if isinstance(value, str) else value
    if not isinstance(names, list | tuple):
        return frozenset()
    return frozenset(_ROLE_NAMES[n] for n in names if isinstance(n, str) and n in _ROLE_NAMES)


class Authenticator:
    """Validates bearer tokens from one provider and says whom they sign in."""

    def __init__(
        self,
        provider: Provider,
        keys: KeySet,
        *,
        audience: str,
        algorithms: list[str],
        client_id: str | None = None,
        subject_claim: str = "sub",
        roles_claim: str = "roles",
        leeway_s: float = 60.0,
    ) -> None:
        self.provider = provider
        self.keys = keys
        self.audience = audience
        self.client_id = client_id or audience
        self.algorithms = [a for a in algorithms if not a.upper().startswith(("HS", "NONE"))]
        self.subject_claim = subject_claim
        self.roles_claim = roles_claim
        self.leeway_s = leeway_s
        self._parsed: dict[tuple[str, str], jwt.PyJWK] = {}  # a key is parsed once, not per token

    def _key(self, jwk: Mapping[str, Any], alg: str) -> jwt.PyJWK:
        """The provider's key as PyJWT uses it; cached by its content, so a rotated key is a
        new entry and the cache never outgrows the few keys a provider publishes."""
        seen = (alg, json.dumps(jwk, sort_keys=True))
        key = self._parsed.get(seen)
        if key is None:
            if len(self._parsed) >= _PARSED_KEYS:
                self._parsed.clear()
            key = self._parsed[seen] = jwt.PyJWK(dict(jwk), algorithm=alg)
        return key

    async def claims(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """The token's claims once its signature, issuer, audience and times are checked."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            msg = "malformed token"
            raise AuthError(msg) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            msg = "algorithm not allowed"
            raise AuthError(msg)
        kid = header.get("kid")
        jwk = await self.keys.jwk(kid if isinstance(kid, str) else None)
        if jwk.get("kty") != _KEY_TYPES.get(alg[:2]) or jwk.get("alg", alg) != alg:
            msg = "algorithm does not match the key"
            raise AuthError(msg)
        try:
            key = self._key(jwk, alg)
            decoded: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=audience or self.audience,
                issuer=self.provider.issuer,
                leeway=self.leeway_s,
                options={
                    "require": ["exp", "iat", "iss", "aud"],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise AuthError(_reason(exc)) from None
        return decoded

    async def principal(self, token: str) -> Principal:
        """Who an access token signs in, or :class:`AuthError` with the reason it is refused."""
        claims = await self.claims(token)
        return self.principal_of(claims)

    def principal_of(self, claims: Mapping[str, Any]) -> Principal:
        """Subject and known roles from validated claims; a token with neither is refused."""
        subject = claim(claims, self.subject_claim)
        if not isinstance(subject, str | int) or isinstance(subject, bool) or not str(subject):
            msg = "no subject"
            raise AuthError(msg)
        roles = roles_of(claim(claims, self.roles_claim))
        if not roles:
            msg = "no known role"
            raise AuthError(msg)
        return Principal(str(subject), roles)

    async def id_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        """An ID token's claims for the pages' sign-in: for our client, with our nonce."""
        claims = await self.claims(id_token, audience=self.client_id)
        if claims.get("nonce") != nonce:
            msg = "wrong nonce"
            raise AuthError(msg)
        return claims


async def fetch_json(url: str) -> dict[str, Any]:
    """GET a JSON object (discovery, JWKS) without blocking the event loop."""
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False) as client:
        response = await client.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
    if not isinstance(document, dict):
        msg = f"{url} did not answer with a JSON object"
        raise ValueError(msg)
    return document


async def discover(issuer: str) -> Provider:
    """The provider's endpoints from its discovery document, or a ConfigError saying why not."""
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    try:
        metadata = await fetch_json(url)
    except (httpx.HTTPError, ValueError) as exc:
        msg = f"the sign-in provider did not answer at {url} ({type(exc).__name__}: {exc}); "
        msg += "check ENGAGEMENT_OIDC_ISSUER"
        raise ConfigError(msg) from None
    return Provider.from_metadata(issuer, metadata)


def _authenticator(settings: ApiSettings, provider: Provider, keys: KeySet) -> Authenticator:
    return Authenticator(
        provider,
        keys,
        audience=settings.oidc_audience,
        algorithms=settings.algorithms(),
        client_id=settings.oidc_client_id,
        subject_claim=settings.oidc_subject_claim,
        roles_claim=settings.oidc_roles_claim,
        leeway_s=settings.oidc_leeway_s,
    )


async def build_authenticator(
    settings: Any, *, min_refetch_s: float = 10.0, max_age_s: float = 900.0
) -> Authenticator:
    """The API's authenticator, discovered at start-up: a provider that cannot be reached, or
    the local issuer without ENGAGEMENT_LOCAL_SETUP=yes, is a ConfigError naming what to fix.

    ``settings`` is the settings object (its API fields and ``state_dir``)."""
    check_startup(settings)
    if settings.uses_local_issuer():
        local = LocalKeys(settings.state_dir)
        await asyncio.to_thread(local.signing_key)  # the key file exists before anyone asks
        issuer = local_issuer_url(settings.public_url())
        provider = Provider.from_metadata(issuer, local.metadata(issuer))

        async def local_jwks() -> Mapping[str, Any]:
            return await asyncio.to_thread(local.jwks)

        keys = KeySet(local_jwks, min_refetch_s=min_refetch_s, max_age_s=max_age_s)
    else:
        provider = await discover(settings.oidc_issuer)
        uri = provider.jwks_uri

        async def remote_jwks() -> Mapping[str, Any]:
            return await fetch_json(uri)

        keys = KeySet(remote_jwks, min_refetch_s=min_refetch_s, max_age_s=max_age_s)
    try:
        await keys.refresh()
    except (httpx.HTTPError, ValueError) as exc:
        msg = f"the sign-in provider's keys could not be read from {provider.jwks_uri} ({exc})"
        raise ConfigError(msg) from None
    return _authenticator(settings, provider, keys)
