"""Settings of the people-facing API and pages (``engagement api``) and of sign-in.

Part of the one settings object: ``schemas.settings.Settings`` derives from :class:`ApiSettings`
and lists these variables in its ``ENV``. Sign-in trusts the institution's OpenID Connect
provider (``ENGAGEMENT_OIDC_ISSUER``); the built-in local issuer (``local``) is for the demo and
the tests only, and the API refuses it unless ``ENGAGEMENT_LOCAL_SETUP=yes`` says this is a local
setup. The session secret signs the pages' session cookie: from the environment or a file,
never a default.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator

API_ENV = {
    "api_port": "ENGAGEMENT_API_PORT",
    "api_public_url": "ENGAGEMENT_API_PUBLIC_URL",
    "oidc_issuer": "ENGAGEMENT_OIDC_ISSUER",
    "oidc_audience": "ENGAGEMENT_OIDC_AUDIENCE",
    "oidc_client_id": "ENGAGEMENT_OIDC_CLIENT_ID",
    "oidc_client_secret_file": "ENGAGEMENT_OIDC_CLIENT_SECRET_FILE",
    "oidc_subject_claim": "ENGAGEMENT_OIDC_SUBJECT_CLAIM",
    "oidc_roles_claim": "ENGAGEMENT_OIDC_ROLES_CLAIM",
    "oidc_leeway_s": "ENGAGEMENT_OIDC_LEEWAY_S",
    "oidc_algorithms": "ENGAGEMENT_OIDC_ALGORITHMS",
    "local_setup": "ENGAGEMENT_LOCAL_SETUP",
    "session_secret": "ENGAGEMENT_SESSION_SECRET",
    "session_secret_file": "ENGAGEMENT_SESSION_SECRET_FILE",
    "session_hours": "ENGAGEMENT_SESSION_HOURS",
    "audit_retention_days": "ENGAGEMENT_AUDIT_RETENTION_DAYS",
}

API_PORT = 8090
LOCAL_ISSUER = "local"
MIN_SECRET_CHARS = 32
# Asymmetric algorithms only: a token signed with a shared secret (HS256) or unsigned ("none")
# is never accepted, whatever its header says.
ALLOWED_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
)


def _env(field: str) -> AliasChoices:
    return AliasChoices(API_ENV[field])


class ApiSettings(BaseModel):
    """The API's fields of the settings object."""

    api_port: int = Field(
        default=API_PORT,
        ge=1,
        le=65535,
        validation_alias=_env("api_port"),
        description="Port of the API and pages (it binds to ENGAGEMENT_WEB_BIND).",
    )
    api_public_url: str | None = Field(
        default=None,
        validation_alias=_env("api_public_url"),
        description="The address people reach the pages at (https://…); sign-in redirects back "
        "to it. Absent: http://127.0.0.1:ENGAGEMENT_API_PORT (local use).",
    )
    oidc_issuer: str | None = Field(
        default=None,
        validation_alias=_env("oidc_issuer"),
        description="The OpenID Connect issuer URL (its /.well-known/openid-configuration is "
        "read), or 'local' for the built-in development issuer (needs ENGAGEMENT_LOCAL_SETUP).",
    )
    oidc_audience: str = Field(
        default="engagement-stream",
        validation_alias=_env("oidc_audience"),
        description="The audience (aud) every access token must carry.",
    )
    oidc_client_id: str = Field(
        default="engagement-stream",
        validation_alias=_env("oidc_client_id"),
        description="The pages' client id at the provider (authorization code with PKCE).",
    )
    oidc_client_secret_file: Path | None = Field(
        default=None,
        validation_alias=_env("oidc_client_secret_file"),
        description="A file holding the client secret, when the provider requires one.",
    )
    oidc_subject_claim: str = Field(
        default="sub",
        validation_alias=_env("oidc_subject_claim"),
        description="The claim holding the person's id (student id or staff id).",
    )
    oidc_roles_claim: str = Field(
        default="roles",
        validation_alias=_env("oidc_roles_claim"),
        description="The claim holding the person's roles (a list or a space-separated string).",
    )
    oidc_leeway_s: int = Field(
        default=60,
        ge=0,
        le=600,
        validation_alias=_env("oidc_leeway_s"),
        description="Clock skew allowed when checking exp, nbf and iat (seconds).",
    )
    oidc_algorithms: str = Field(
        default="RS256,ES256",
        validation_alias=_env("oidc_algorithms"),
        description="Signature algorithms accepted, comma-separated (asymmetric only).",
    )
    local_setup: bool = Field(
        default=False,
        validation_alias=_env("local_setup"),
        description="yes: this is a local setup, and the built-in development issuer may be used.",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_env("session_secret"),
        description="Signs the pages' session cookie (at least 32 characters).",
    )
    session_secret_file: Path | None = Field(
        default=None,
        validation_alias=_env("session_secret_file"),
        description="A file holding the session secret, instead of the variable.",
    )
    session_hours: float = Field(default=8.0, gt=0, le=168, validation_alias=_env("session_hours"))
    audit_retention_days: int = Field(
        default=2_190,
        ge=1,
        validation_alias=_env("audit_retention_days"),
        description="How long audit entries (who read whose data) are kept: six years by default.",
    )

    @field_validator("oidc_algorithms")
    @classmethod
    def _algorithms(cls, value: str) -> str:
        names = [a.strip() for a in value.split(",") if a.strip()]
        wrong = [a for a in names if a not in ALLOWED_ALGORITHMS]
        if not names or wrong:
            msg = f"use asymmetric algorithms only, from {', '.join(ALLOWED_ALGORITHMS)}"
            raise ValueError(msg)
        return value

    @field_validator("session_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_CHARS:
            msg = f"the session secret must be at least {MIN_SECRET_CHARS} characters"
            raise ValueError(msg)
        return value

    def algorithms(self) -> list[str]:
        return [a.strip() for a in self.oidc_algorithms.split(",") if a.strip()]

    def uses_local_issuer(self) -> bool:
        return self.oidc_issuer == LOCAL_ISSUER

    def public_url(self) -> str:
        return (self.api_public_url or f"http://127.0.0.1:{self.api_port}").rstrip("/")
