"""Sign-in over real HTTP: a small API (uvicorn on a free port) with the local issuer mounted,
the pages' session in the session's real Redis, and clients nobody here wrote — Authlib's
OAuth 2 client for the PKCE flow, httpx following the pages' redirects as a browser does."""

from __future__ import annotations

import asyncio
import secrets
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
import uvicorn
from authlib.common.security import generate_token
from authlib.deprecate import AuthlibDeprecationWarning
from fastapi import Depends, FastAPI, Request

from schemas.access import Principal, Role
from schemas.errors import ConfigError
from schemas.settings import Settings, load_settings
from stream.api.auth import Authenticator, build_authenticator
from stream.api.deps import principal, require
from stream.api.issuer import LocalIssuer
from stream.api.session import csrf_token, install_signin, require_csrf
from stream.dev.processes import free_port
from stream.dev.stack import Endpoints
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration

with warnings.catch_warnings():
    # Authlib 1.9 warns, on import, that it falls back to httpx when httpx2 is not installed
    # (its own filter says "always": this one, set after it, comes first).
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

SESSION_SECRET = "integration-session-secret-0123456789abcdef"  # noqa: S105  # test secret


def build_app(settings: Settings, redis_url: str) -> FastAPI:
    """The API as the real one puts sign-in together, with three routes to try it on."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(redis_url)
        # Short key-cache times, so the test sees rotation and retirement within seconds.
        authenticator = await build_authenticator(settings, min_refetch_s=0.2, max_age_s=1.0)
        install_signin(app, settings, client=client, authenticator=authenticator)
        yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/whoami")
    async def whoami(who: Principal = Depends(principal)) -> dict[str, Any]:  # noqa: B008
        return {"subject": who.subject, "roles": sorted(who.roles)}

    @app.get("/tutors")
    async def tutors(who: Principal = Depends(require(Role.TUTOR))) -> dict[str, str]:  # noqa: B008
        return {"subject": who.subject}

    @app.get("/form")
    async def form(request: Request, who: Principal = Depends(principal)) -> dict[str, Any]:  # noqa: B008
        return {"csrf_token": await csrf_token(request)}

    @app.post("/change", dependencies=[Depends(require_csrf)])
    async def change(who: Principal = Depends(principal)) -> dict[str, str]:  # noqa: B008
        return {"changed_by": who.subject}

    return app


@dataclass
class Api:
    url: str
    settings: Settings
    issuer: LocalIssuer
    redis: redis.Redis
    prefix: str


@pytest.fixture
def api(stack: Endpoints, prefix: str, tmp_path: Path) -> Iterator[Api]:
    """The small API on a free port, signing in with the local issuer."""
    port = free_port()
    settings = load_settings(
        pseudonym_key=secrets.token_urlsafe(24),
        key_prefix=prefix,
        state_dir=tmp_path,
        redis_url=stack.redis_url,
        oidc_issuer="local",
        local_setup=True,
        api_port=port,
        api_public_url=None,
        session_secret=SESSION_SECRET,
        session_hours=2.0,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(settings, stack.redis_url),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws="none",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("the API to start", lambda: server.started, timeout=30)
    client = redis.Redis.from_url(stack.redis_url)
    try:
        yield Api(
            settings.public_url(), settings, LocalIssuer.from_settings(settings), client, prefix
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        client.close()


@pytest.fixture
def closing() -> Iterator[ExitStack]:
    """Clients a test opens, closed when it ends."""
    with ExitStack() as stack:
        yield stack


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def status(url: str, token: str) -> int:
    return httpx.get(url, headers=bearer(token)).status_code


def test_the_pkce_flow_of_an_ordinary_oauth_client_gives_tokens_the_api_accepts(
    api: Api, closing: ExitStack
) -> None:
    issuer = f"{api.url}/local-issuer"
    metadata = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
    assert metadata["issuer"] == issuer
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    client = OAuth2Client(
        client_id=api.settings.oidc_client_id,
        token_endpoint_auth_method="none",  # noqa: S106  # a public client: PKCE, no secret
        redirect_uri=f"http://127.0.0.1:{free_port()}/callback",  # a native app's loopback
        code_challenge_method="S256",
        scope="openid",
    )
    closing.enter_context(client)
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"],
        code_verifier=verifier,
        nonce=nonce,
        login_hint="student:S1234567",
    )
    answer = httpx.get(url, follow_redirects=False)  # the browser visits the provider
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert f"state={state}" in location and "code=" in location
    token = client.fetch_token(
        metadata["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    access, id_token = token["access_token"], token["id_token"]

    me = httpx.get(f"{api.url}/whoami", headers=bearer(access))
    assert me.status_code == 200
    assert me.json() == {"subject": "S1234567", "roles": ["student"]}

    # A second, independent authenticator finds the provider by discovery over HTTP, as the
    # API does with a university's provider, and accepts the same tokens.
    remote = api.settings.model_copy(update={"oidc_issuer": issuer, "local_setup": False})
    authenticator: Authenticator = asyncio.run(build_authenticator(remote))
    assert asyncio.run(authenticator.principal(access)).subject == "S1234567"
    assert asyncio.run(authenticator.id_claims(id_token, nonce))["sub"] == "S1234567"

    # The code was for one use; without the verifier, no tokens either.
    with pytest.raises(Exception, match="invalid_grant"):
        client.fetch_token(
            metadata["token_endpoint"], authorization_response=location, code_verifier=verifier
        )
    url, _ = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, login_hint="tutor:T001"
    )
    location = httpx.get(url, follow_redirects=False).headers["location"]
    with pytest.raises(Exception, match="invalid_grant"):
        client.fetch_token(
            metadata["token_endpoint"],
            authorization_response=location,
            code_verifier=generate_token(64),
        )


def test_bad_tokens_are_refused_with_a_reason_and_roles_are_checked(api: Api) -> None:
    student = api.issuer.mint("S1234567", [Role.STUDENT])
    tutor = api.issuer.mint("T001", [Role.TUTOR])
    assert status(f"{api.url}/tutors", tutor) == 200
    refused = httpx.get(f"{api.url}/tutors", headers=bearer(student))
    assert refused.status_code == 403
    for token, reason in (
        (api.issuer.mint("S1", [Role.STUDENT], seconds=-600), "expired"),
        (api.issuer.mint("S1", [Role.STUDENT], audience="another-app"), "wrong audience"),
        (student[:-8] + ("A" * 8 if not student.endswith("A" * 8) else "B" * 8), "bad signature"),
        ("e30.e30.", "algorithm not allowed"),
        ("not-a-token", "malformed token"),
    ):
        answer = httpx.get(f"{api.url}/whoami", headers=bearer(token))
        assert answer.status_code == 401, reason
        assert answer.json()["detail"] == reason
        assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    nobody = httpx.get(f"{api.url}/whoami")
    assert nobody.status_code == 401 and nobody.headers["www-authenticate"] == "Bearer"
    assert (
        httpx.get(f"{api.url}/whoami", headers={"Authorization": "Basic eDp5"}).status_code == 401
    )


def test_a_rotated_key_is_accepted_without_restart_and_a_retired_one_stops(api: Api) -> None:
    old = api.issuer.mint("S1234567", [Role.STUDENT])
    old_kid = api.issuer.keys.signing_key()[0]
    assert status(f"{api.url}/whoami", old) == 200
    new_kid = api.issuer.keys.rotate(keep_s=3600)
    new = api.issuer.mint("S1234567", [Role.STUDENT])
    assert new_kid != old_kid
    wait_for(
        "a token of the new key to be accepted", lambda: status(f"{api.url}/whoami", new) == 200, 10
    )
    jwks = httpx.get(f"{api.url}/local-issuer/jwks").json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
    assert status(f"{api.url}/whoami", old) == 200  # still in the JWKS: still verifies
    api.issuer.keys.retire(old_kid)
    wait_for(
        "the retired key to stop verifying", lambda: status(f"{api.url}/whoami", old) == 401, 10
    )
    assert httpx.get(f"{api.url}/whoami", headers=bearer(old)).json()["detail"] == "unknown key"
    assert status(f"{api.url}/whoami", new) == 200


def session_keys(api: Api) -> list[bytes]:
    return list(api.redis.scan_iter(match=f"{api.prefix}:session:*"))


def test_the_pages_sign_in_gives_a_session_cookie_csrf_checks_and_logout_ends_it(
    api: Api, closing: ExitStack
) -> None:
    browser = closing.enter_context(httpx.Client(base_url=api.url, follow_redirects=True))
    page = browser.get("/auth/login", params={"login_hint": "tutor:T001", "next": "/whoami"})
    assert page.status_code == 200
    assert page.json() == {"subject": "T001", "roles": ["tutor"]}
    assert [r.status_code for r in page.history] == [303, 303, 303]  # login, authorize, callback
    cookies = page.history[-1].headers.get_list("set-cookie")
    (set_cookie,) = (c for c in cookies if c.startswith("engagement_session="))
    flags = {part.strip().lower() for part in set_cookie.split(";")}
    assert {"httponly", "samesite=lax", "path=/"} <= flags
    assert "secure" not in flags  # the public address is http here; https adds Secure
    cookie = browser.cookies["engagement_session"]

    # Redis holds the session under a hash of the id, with the session's expiry.
    (key,) = session_keys(api)
    assert cookie.split(".")[0] not in key.decode()
    assert 7000 < int(api.redis.ttl(key)) <= 7200  # ENGAGEMENT_SESSION_HOURS=2

    # A POST from the pages must echo the session's CSRF token.
    token = browser.get("/form").json()["csrf_token"]
    assert browser.post("/change").status_code == 403
    assert browser.post("/change", data={"csrf_token": "x" * 43}).status_code == 403
    assert browser.post("/change", headers={"X-CSRF-Token": token}).status_code == 200
    changed = browser.post("/change", data={"csrf_token": token})
    assert changed.status_code == 200 and changed.json() == {"changed_by": "T001"}
    assert browser.post("/auth/logout", follow_redirects=False).status_code == 403

    # A bearer request carries no cookie and needs no CSRF token.
    script = bearer(api.issuer.mint("T1", [Role.TUTOR]))
    assert httpx.post(f"{api.url}/change", headers=script).status_code == 200

    # A forged cookie opens nothing.
    forged = {"engagement_session": cookie.split(".")[0] + ".AAAA"}
    assert httpx.get(f"{api.url}/whoami", cookies=forged).status_code == 401
    odd = {"Cookie": "engagement_session=\xe9t\xe9.\xe9".encode("latin-1")}
    assert httpx.get(f"{api.url}/whoami", headers=odd).status_code == 401
    odd_token = {"X-CSRF-Token": ("\xe9" * 43).encode("latin-1")}
    assert browser.post("/change", headers=odd_token).status_code == 403

    out = browser.post("/auth/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert session_keys(api) == []
    again = httpx.get(f"{api.url}/whoami", cookies={"engagement_session": cookie})
    assert again.status_code == 401


def test_a_callback_without_a_sign_in_under_way_is_refused(api: Api, closing: ExitStack) -> None:
    answer = httpx.get(f"{api.url}/auth/callback", params={"code": "x", "state": "y"})
    assert answer.status_code == 400
    browser = closing.enter_context(httpx.Client(base_url=api.url))
    start = browser.get("/auth/login", params={"login_hint": "student:S1"})
    assert start.status_code == 303
    wrong_state = browser.get("/auth/callback", params={"code": "x", "state": "not-it"})
    assert wrong_state.status_code == 400
    refused = browser.get("/auth/callback", params={"error": "access_denied", "state": "s"})
    assert refused.status_code == 401
    bad_code = browser.get(
        "/auth/callback",
        params={
            "code": "made-up",
            "state": start.headers["location"].split("state=")[1].split("&")[0],
        },
    )
    assert bad_code.status_code == 401
    assert session_keys(api) == []
    # An open redirect is not on offer: `next` only ever leads to a path on this site.
    off_site = browser.get(
        "/auth/login", params={"login_hint": "student:S1", "next": "//evil.example/"}
    )
    assert off_site.status_code == 303
    follows = closing.enter_context(httpx.Client(base_url=api.url, follow_redirects=True))
    ended = follows.get(
        "/auth/login", params={"login_hint": "student:S1", "next": "https://evil.example/"}
    )
    assert ended.url == httpx.URL(f"{api.url}/")


def test_a_provider_that_cannot_be_reached_stops_start_up_with_one_line(api: Api) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/realms/uni"
    settings = api.settings.model_copy(update={"oidc_issuer": nowhere, "local_setup": False})
    with pytest.raises(ConfigError, match="did not answer") as caught:
        asyncio.run(build_authenticator(settings))
    assert "\n" not in str(caught.value) and nowhere in str(caught.value)
    # A discovery document for another issuer is refused too (here: the local issuer's,
    # asked for under a different name).
    other = api.settings.model_copy(
        update={"oidc_issuer": f"{api.url}/local-issuer/", "local_setup": False}
    )
    with pytest.raises(ConfigError, match="names issuer"):
        asyncio.run(build_authenticator(other))
