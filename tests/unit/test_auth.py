"""Bearer tokens: what the Authenticator accepts and the reason it gives for each refusal,
with tokens minted here directly (PyJWT, cryptography) and the keys served from memory; and the
local development issuer's pieces (keys file, login hint, PKCE, start-up refusal)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from schemas.access import Principal, Role
from schemas.api_settings import ApiSettings
from schemas.errors import ConfigError
from stream.api.auth import (
    Authenticator,
    AuthError,
    KeySet,
    Provider,
    build_authenticator,
    roles_of,
)
from stream.api.issuer import (
    LocalIssuer,
    LocalKeys,
    check_startup,
    local_issuer_url,
    parse_login_hint,
    s256,
)
from stream.cli.main import main

ISSUER = "https://idp.example.ac.uk/realms/uni"
AUDIENCE = "engagement-stream"
PROVIDER = Provider(ISSUER, f"{ISSUER}/auth", f"{ISSUER}/token", f"{ISSUER}/certs")


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(private: Any, kid: str, alg: str | None = "RS256") -> dict[str, Any]:
    if isinstance(private, rsa.RSAPrivateKey):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "use": "sig", **({"alg": alg} if alg else {})}


class Served:
    """A JWKS the test can change between fetches, counting the fetches."""

    def __init__(self, *jwks: dict[str, Any]) -> None:
        self.keys = list(jwks)
        self.count = 0

    async def __call__(self) -> Mapping[str, Any]:
        self.count += 1
        return {"keys": list(self.keys)}


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "S1234567",
        "roles": ["student"],
        "iat": now,
        "exp": now + 300,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(private: Any, kid: str | None = "k1", alg: str = "RS256", **changes: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**changes), private, algorithm=alg, headers=headers)


def authenticator(served: Served, **options: Any) -> Authenticator:
    keyset_options = {k: options.pop(k) for k in ("min_refetch_s", "max_age_s") if k in options}
    return Authenticator(
        PROVIDER,
        KeySet(served, **keyset_options),
        audience=AUDIENCE,
        algorithms=options.pop("algorithms", ["RS256", "ES256"]),
        **options,
    )


def principal(auth: Authenticator, token: str) -> Principal:
    return asyncio.run(auth.principal(token))


def refused(auth: Authenticator, token: str) -> str:
    with pytest.raises(AuthError) as caught:
        principal(auth, token)
    return caught.value.reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], body: dict[str, Any], mac_key: bytes | None) -> str:
    """A token put together by hand, as an attacker would (PyJWT refuses to make these)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    if mac_key is None:
        return f"{signing_input}."
    mac = hmac.new(mac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


# -- accepted ----------------------------------------------------------------------------------


def test_a_good_token_signs_in_its_subject_with_its_roles(key: rsa.RSAPrivateKey) -> None:
    auth = authenticator(Served(public_jwk(key, "k1")))
    who = principal(auth, sign(key, roles=["tutor", "support"], sub="T001"))
    assert who == Principal("T001", frozenset({Role.TUTOR, Role.SUPPORT}))


def test_roles_may_be_a_space_separated_string_and_unknown_names_are_ignored(
    key: rsa.RSAPrivateKey,
) -> None:
    auth = authenticator(Served(public_jwk(key, "k1")))
    who = principal(auth, sign(key, roles="offline_access tutor uma_authorization"))
    assert who.roles == frozenset({Role.TUTOR})
    assert roles_of(["student", "admin", 3]) == frozenset({Role.STUDENT})
    assert roles_of({"student": True}) == frozenset()


def test_subject_and_roles_come_from_the_configured_claims(key: rsa.RSAPrivateKey) -> None:
    auth = authenticator(
        Served(public_jwk(key, "k1")),
        subject_claim="student_number",
        roles_claim="realm_access.roles",
    )
    token = sign(key, student_number="S7654321", realm_access={"roles": ["insights"]})
    assert principal(auth, token) == Principal("S7654321", frozenset({Role.INSIGHTS}))
    # A claim named by URL, dots and all, is read as one name.
    url_claim = "https://uni.example/roles"
    auth = authenticator(Served(public_jwk(key, "k1")), roles_claim=url_claim)
    assert principal(auth, sign(key, **{url_claim: ["ops"]})).roles == frozenset({Role.OPS})


def test_a_key_without_alg_verifies_the_algorithm_its_type_allows(
    key: rsa.RSAPrivateKey,
) -> None:
    auth = authenticator(Served(public_jwk(key, "k1", alg=None)), algorithms=["PS256"])
    assert principal(auth, sign(key, alg="PS256")).subject == "S1234567"


def test_an_ec_key_verifies_es256() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    auth = authenticator(Served(public_jwk(private, "e1", alg="ES256")))
    assert principal(auth, sign(private, kid="e1", alg="ES256")).subject == "S1234567"


def test_a_token_without_kid_uses_the_only_key(key: rsa.RSAPrivateKey) -> None:
    auth = authenticator(Served(public_jwk(key, "k1")))
    assert principal(auth, sign(key, kid=None)).subject == "S1234567"


def test_leeway_is_honoured(key: rsa.RSAPrivateKey) -> None:
    now = int(time.time())
    token = sign(key, exp=now - 30, iat=now - 300)
    assert principal(authenticator(Served(public_jwk(key, "k1")), leeway_s=60), token).subject
    assert refused(authenticator(Served(public_jwk(key, "k1")), leeway_s=0), token) == "expired"
    early = sign(key, nbf=now + 30)
    assert principal(authenticator(Served(public_jwk(key, "k1")), leeway_s=60), early).subject


# -- refused -----------------------------------------------------------------------------------


def test_an_expired_token_is_refused(key: rsa.RSAPrivateKey) -> None:
    now = int(time.time())
    auth = authenticator(Served(public_jwk(key, "k1")), leeway_s=60)
    assert refused(auth, sign(key, exp=now - 120, iat=now - 600)) == "expired"


def test_a_token_not_yet_valid_is_refused(key: rsa.RSAPrivateKey) -> None:
    now = int(time.time())
    auth = authenticator(Served(public_jwk(key, "k1")), leeway_s=60)
    assert refused(auth, sign(key, nbf=now + 300)) == "not yet valid"
    assert refused(auth, sign(key, iat=now + 300, exp=now + 600)) == "not yet valid"


def test_a_token_signed_by_another_key_with_the_same_kid_is_refused(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    auth = authenticator(Served(public_jwk(key, "k1")))
    assert refused(auth, sign(other_key, kid="k1")) == "bad signature"


def test_an_unknown_kid_is_refused_after_one_rate_limited_refetch(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    served = Served(public_jwk(key, "k1"))
    auth = authenticator(served, min_refetch_s=60)
    assert principal(auth, sign(key)).subject  # first use fetches the keys
    assert served.count == 1
    assert refused(auth, sign(other_key, kid="nobody")) == "unknown key"
    assert refused(auth, sign(other_key, kid="nobody-else")) == "unknown key"
    assert served.count == 1  # made-up key ids do not make us ask the provider again and again


def test_a_new_kid_is_fetched_and_accepted_and_a_retired_one_stops_verifying(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    served = Served(public_jwk(key, "k1"))
    auth = authenticator(served, min_refetch_s=0, max_age_s=3600)
    old = sign(key, kid="k1")
    assert principal(auth, old).subject
    served.keys.append(public_jwk(other_key, "k2"))  # the provider rotates
    assert principal(auth, sign(other_key, kid="k2")).subject
    assert served.count == 2
    served.keys.pop(0)  # … and later retires the old key
    asyncio.run(auth.keys.refresh())
    assert refused(auth, old) == "unknown key"


def test_wrong_audience_and_wrong_issuer_are_refused(key: rsa.RSAPrivateKey) -> None:
    auth = authenticator(Served(public_jwk(key, "k1")))
    assert refused(auth, sign(key, aud="another-app")) == "wrong audience"
    assert refused(auth, sign(key, iss="https://evil.example/")) == "wrong issuer"


def test_alg_none_is_refused(key: rsa.RSAPrivateKey) -> None:
    auth = authenticator(Served(public_jwk(key, "k1")))
    for alg in ("none", "None", "NONE"):
        assert refused(auth, hand_made({"alg": alg, "kid": "k1"}, claims(), None)) == (
            "algorithm not allowed"
        )


def test_hs256_signed_with_the_public_key_is_refused(key: rsa.RSAPrivateKey) -> None:
    """Key confusion: the public key used as an HMAC secret must never verify, even when the
    configured list were (wrongly) to include HS256."""
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_n = public_jwk(key, "k1")["n"].encode()
    for secret in (pem, jwk_n):
        token = hand_made({"alg": "HS256", "kid": "k1", "typ": "JWT"}, claims(), secret)
        for algorithms in (["RS256"], ["RS256", "HS256"]):
            auth = authenticator(Served(public_jwk(key, "k1")), algorithms=algorithms)
            assert refused(auth, token) == "algorithm not allowed"


def test_a_header_naming_another_algorithm_than_the_key_is_refused(
    key: rsa.RSAPrivateKey,
) -> None:
    auth = authenticator(Served(public_jwk(key, "k1")), algorithms=["RS256", "ES256"])
    private = ec.generate_private_key(ec.SECP256R1())
    assert refused(auth, sign(private, kid="k1", alg="ES256")) == (
        "algorithm does not match the key"
    )


def test_missing_subject_and_no_known_role_are_refused(key: rsa.RSAPrivateKey) -> None:
    auth = authenticator(Served(public_jwk(key, "k1")))
    assert refused(auth, sign(key, sub=None)) == "no subject"
    assert refused(auth, sign(key, sub="")) == "no subject"
    assert refused(auth, sign(key, roles=["admin", "offline_access"])) == "no known role"
    assert refused(auth, sign(key, roles=None)) == "no known role"


def test_missing_times_and_garbage_are_refused(key: rsa.RSAPrivateKey) -> None:
    auth = authenticator(Served(public_jwk(key, "k1")))
    assert refused(auth, sign(key, exp=None)) == "missing claim exp"
    for garbage in ("", "abc", "a.b.c", "Bearer x", "é.é.é"):
        assert refused(auth, garbage) == "malformed token"


def test_an_id_token_needs_our_client_and_our_nonce(key: rsa.RSAPrivateKey) -> None:
    auth = authenticator(Served(public_jwk(key, "k1")), client_id="pages")
    id_token = sign(key, aud="pages", nonce="n-1")
    assert asyncio.run(auth.id_claims(id_token, "n-1"))["sub"] == "S1234567"
    with pytest.raises(AuthError, match="wrong nonce"):
        asyncio.run(auth.id_claims(id_token, "n-2"))
    with pytest.raises(AuthError, match="wrong audience"):
        asyncio.run(auth.id_claims(sign(key, nonce="n-1"), "n-1"))


def test_discovery_must_name_the_configured_issuer() -> None:
    metadata = {"issuer": ISSUER, "authorization_endpoint": "a", "token_endpoint": "t"}
    with pytest.raises(ConfigError, match="jwks_uri"):
        Provider.from_metadata(ISSUER, metadata)
    with pytest.raises(ConfigError, match="names issuer"):
        Provider.from_metadata(ISSUER + "/", {**metadata, "jwks_uri": "j"})


# -- the local development issuer ------------------------------------------------------------


def settings(tmp_path: Path, **values: Any) -> Any:
    class Local(ApiSettings):
        state_dir: Path = tmp_path

    return Local.model_validate(values)


def test_the_local_issuer_is_refused_outside_a_local_setup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ENGAGEMENT_LOCAL_SETUP=yes"):
        check_startup(settings(tmp_path, ENGAGEMENT_OIDC_ISSUER="local"))
    with pytest.raises(ConfigError, match="ENGAGEMENT_OIDC_ISSUER is not set"):
        check_startup(settings(tmp_path))
    check_startup(settings(tmp_path, ENGAGEMENT_OIDC_ISSUER="local", ENGAGEMENT_LOCAL_SETUP="yes"))
    with pytest.raises(ConfigError, match="ENGAGEMENT_LOCAL_SETUP"):
        asyncio.run(build_authenticator(settings(tmp_path, ENGAGEMENT_OIDC_ISSUER="local")))


def test_the_key_file_is_private_and_rotation_keeps_the_old_key_for_a_while(
    tmp_path: Path,
) -> None:
    keys = LocalKeys(tmp_path)
    first, _ = keys.signing_key()
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600
    second = keys.rotate(keep_s=3600)
    assert keys.signing_key()[0] == second
    assert {k["kid"] for k in keys.jwks()["keys"]} == {first, second}
    assert all("d" not in k for k in keys.jwks()["keys"])  # public halves only
    keys.retire(first)
    assert {k["kid"] for k in LocalKeys(tmp_path).jwks()["keys"]} == {second}
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600


def test_tokens_of_the_local_issuer_are_accepted_by_the_authenticator(tmp_path: Path) -> None:
    configured = settings(
        tmp_path,
        ENGAGEMENT_OIDC_ISSUER="local",
        ENGAGEMENT_LOCAL_SETUP="yes",
        ENGAGEMENT_API_PUBLIC_URL="https://engagement.example.ac.uk",
    )
    auth = asyncio.run(build_authenticator(configured))
    assert auth.provider.issuer == "https://engagement.example.ac.uk/local-issuer"
    issuer = LocalIssuer.from_settings(configured)
    token = issuer.mint("T001", [Role.TUTOR], seconds=60)
    assert principal(auth, token) == Principal("T001", frozenset({Role.TUTOR}))


def test_login_hints_name_roles_and_a_subject() -> None:
    assert parse_login_hint("student:S1234567") == ("S1234567", frozenset({Role.STUDENT}))
    assert parse_login_hint("tutor,support:T001")[1] == frozenset({Role.TUTOR, Role.SUPPORT})
    for bad in ("", "S1234567", "student:", "admin:X1", "student:a b", "student:" + "x" * 129):
        with pytest.raises(ValueError, match="login_hint"):
            parse_login_hint(bad)


def _issuer(tmp_path: Path) -> LocalIssuer:
    return LocalIssuer(
        LocalKeys(tmp_path), local_issuer_url("http://127.0.0.1:8090"), AUDIENCE, "pages"
    )


def _authorize(issuer: LocalIssuer, verifier: str, **changes: str) -> str:
    params = {
        "client_id": "pages",
        "redirect_uri": "http://127.0.0.1:8090/auth/callback",
        "response_type": "code",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "login_hint": "student:S1234567",
        "state": "st",
        **changes,
    }
    location = issuer.authorize(params)
    return location.split("code=")[1].split("&")[0]


def test_a_code_is_exchanged_once_and_only_with_its_verifier(tmp_path: Path) -> None:
    issuer = _issuer(tmp_path)
    verifier = secrets.token_urlsafe(48)
    form = {
        "grant_type": "authorization_code",
        "client_id": "pages",
        "redirect_uri": "http://127.0.0.1:8090/auth/callback",
        "code_verifier": verifier,
    }
    code = _authorize(issuer, verifier)
    with pytest.raises(ValueError, match="invalid_grant"):
        issuer.exchange({**form, "code": code, "code_verifier": secrets.token_urlsafe(48)})
    with pytest.raises(ValueError, match="invalid_grant"):  # a failed try used the code up
        issuer.exchange({**form, "code": code})
    code = _authorize(issuer, verifier)
    tokens = issuer.exchange({**form, "code": code})
    assert tokens["token_type"] == "Bearer"  # noqa: S105  # a token type, not a password
    assert tokens["access_token"] and tokens["id_token"]
    with pytest.raises(ValueError, match="invalid_grant"):
        issuer.exchange({**form, "code": code})
    code = _authorize(issuer, verifier)
    with pytest.raises(ValueError, match="invalid_grant"):
        issuer.exchange({**form, "code": code, "redirect_uri": "http://127.0.0.1:9/x"})


def test_authorize_refuses_other_clients_sites_and_plain_pkce(tmp_path: Path) -> None:
    issuer = _issuer(tmp_path)
    verifier = secrets.token_urlsafe(48)
    for changes, problem in (
        ({"client_id": "other"}, "client_id"),
        ({"redirect_uri": "https://evil.example/cb"}, "redirect_uri"),
        ({"code_challenge_method": "plain"}, "S256"),
        ({"response_type": "token"}, "response_type"),
        ({"login_hint": "root:0"}, "login_hint"),
    ):
        with pytest.raises(ValueError, match=problem):
            _authorize(issuer, verifier, **changes)


# -- engagement token ----------------------------------------------------------------------------


def test_engagement_token_prints_a_token_the_api_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENGAGEMENT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ENGAGEMENT_OIDC_ISSUER", "local")
    monkeypatch.delenv("ENGAGEMENT_LOCAL_SETUP", raising=False)
    assert main(["token", "--role", "student", "--subject", "S1234567"]) == 2
    assert "ENGAGEMENT_LOCAL_SETUP=yes" in capsys.readouterr().err
    monkeypatch.setenv("ENGAGEMENT_LOCAL_SETUP", "yes")
    assert main(["token", "--role", "student", "--subject", "S1234567", "--minutes", "5"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.count(".") == 2 and "\n" not in token
    configured = settings(tmp_path, ENGAGEMENT_OIDC_ISSUER="local", ENGAGEMENT_LOCAL_SETUP="yes")
    auth = asyncio.run(build_authenticator(configured))
    assert principal(auth, token) == Principal("S1234567", frozenset({Role.STUDENT}))
    lasts = jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()
    assert 290 <= lasts <= 300
    assert main(["token", "--rotate-key"]) == 0
    new_kid = capsys.readouterr().out.strip()
    assert jwt.get_unverified_header(token)["kid"] != new_kid
    assert principal(auth, token).subject == "S1234567"  # the old key still verifies


# -- the pages' session cookie ---------------------------------------------------------------


def test_the_session_cookie_is_secure_on_https_and_signed(key: rsa.RSAPrivateKey) -> None:
    from stream.api.session import SignIn

    auth = authenticator(Served(public_jwk(key, "k1")))
    plain = SignIn(auth, None, b"s" * 32, "http://127.0.0.1:8090", "pages")
    tls = SignIn(auth, None, b"s" * 32, "https://engagement.uni.example", "pages")
    assert (plain.secure, plain.cookie) == (False, "engagement_session")
    assert (tls.secure, tls.cookie) == (True, "__Host-engagement_session")
    assert tls.redirect_uri == "https://engagement.uni.example/auth/callback"
    signed = plain.sign("an-id")
    assert plain.unsign(signed) == "an-id"
    other = SignIn(auth, None, b"t" * 32, "http://127.0.0.1:8090", "pages")
    for forged in (other.sign("an-id"), "an-id", "an-id.", "", None, "\xe9.\xe9"):
        assert plain.unsign(forged) is None


def test_the_session_secret_comes_from_settings_or_a_file_never_a_default(
    tmp_path: Path,
) -> None:
    from stream.api.session import session_secret

    given = "g" * 40
    assert session_secret(settings(tmp_path, ENGAGEMENT_SESSION_SECRET=given)) == given.encode()
    secret_file = tmp_path / "secret"
    secret_file.write_text("f" * 40 + "\n", encoding="utf-8")
    from_file = settings(tmp_path, ENGAGEMENT_SESSION_SECRET_FILE=str(secret_file))
    assert session_secret(from_file) == b"f" * 40
    with pytest.raises(ConfigError, match="ENGAGEMENT_SESSION_SECRET"):
        session_secret(settings(tmp_path))
    secret_file.write_text("short", encoding="utf-8")
    with pytest.raises(ConfigError, match="at least 32"):
        session_secret(from_file)
    local = settings(tmp_path / "state", ENGAGEMENT_LOCAL_SETUP="yes")
    made = session_secret(local)
    assert len(made) >= 32 and session_secret(local) == made
    assert stat.S_IMODE((tmp_path / "state" / "session.secret").stat().st_mode) == 0o600
