"""Settings of the HTTP ingest service (``engagement ingest``) and of the identity policy.

Part of the one settings object: ``schemas.settings.Settings`` derives from
:class:`IngestSettings` and lists these variables in its ``ENV``. Tokens are secrets: give them
in ``ENGAGEMENT_INGEST_TOKENS`` (from a secret store) or, better, as SHA-256 hashes in the file
``ENGAGEMENT_INGEST_TOKENS_FILE``; there is no default token.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator

INGEST_ENV = {
    "ingest_port": "ENGAGEMENT_INGEST_PORT",
    "ingest_tokens": "ENGAGEMENT_INGEST_TOKENS",
    "ingest_tokens_file": "ENGAGEMENT_INGEST_TOKENS_FILE",
    "identity_policy": "ENGAGEMENT_IDENTITY_POLICY",
    "identity_policies": "ENGAGEMENT_IDENTITY_POLICIES",
    "ingest_max_body_bytes": "ENGAGEMENT_INGEST_MAX_BODY_BYTES",
    "ingest_max_units": "ENGAGEMENT_INGEST_MAX_UNITS",
    "ingest_ack_timeout_s": "ENGAGEMENT_INGEST_ACK_TIMEOUT_S",
}

INGEST_PORT = 8088
MIN_TOKEN_CHARS = 16
_SENDER = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
IdentityPolicyName = Literal["map", "as-is"]


def _env(field: str) -> AliasChoices:
    return AliasChoices(INGEST_ENV[field])


def token_hash(token: str) -> str:
    """The SHA-256 of a token, as ``ENGAGEMENT_INGEST_TOKENS_FILE`` holds it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_tokens(value: str) -> list[tuple[str, str]]:
    """``lms=TOKEN,scanners=TOKEN2,lms=NEWTOKEN`` → [(sender, sha256 of token), …]: a sender
    may have several tokens (rotation)."""
    pairs = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        sender, sep, token = part.partition("=")
        sender, token = sender.strip(), token.strip()
        if not sep or not _SENDER.match(sender):
            msg = "each entry must be sender=token, the sender 1-32 lower-case letters, digits, _ -"
            raise ValueError(msg)
        if len(token) < MIN_TOKEN_CHARS:
            msg = f"the token of {sender!r} is shorter than {MIN_TOKEN_CHARS} characters"
            raise ValueError(msg)
        pairs.append((sender, token_hash(token)))
    if not pairs:
        msg = "no sender=token entry"
        raise ValueError(msg)
    return pairs


def read_token_file(path: Path) -> list[tuple[str, str]]:
    """Lines of ``sender sha256-hex`` (``#`` comments and blank lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read {path} ({exc.strerror or exc})"
        raise ValueError(msg) from None
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not _SENDER.match(parts[0]) or not _HASH.match(parts[1].lower()):
            msg = (
                f"{path} line {number}: expected 'sender sha256-hex' "
                "(make the hash with `engagement ingest --hash-token`)"
            )
            raise ValueError(msg)
        pairs.append((parts[0], parts[1].lower()))
    if not pairs:
        msg = f"{path} holds no token"
        raise ValueError(msg)
    return pairs


def parse_policies(value: str) -> dict[str, IdentityPolicyName]:
    """``scanners=as-is,lms=map`` → {"scanners": "as-is", "lms": "map"}."""
    out: dict[str, IdentityPolicyName] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        sender, sep, policy = (x.strip() for x in part.partition("="))
        if not sep or not _SENDER.match(sender) or policy not in ("map", "as-is"):
            msg = f"{part!r} is not sender=map or sender=as-is"
            raise ValueError(msg)
        out[sender] = "map" if policy == "map" else "as-is"
    return out


class IngestSettings(BaseModel):
    """The ingest service's fields of the settings object."""

    ingest_port: int = Field(
        default=INGEST_PORT,
        ge=1,
        le=65535,
        validation_alias=_env("ingest_port"),
        description="Port of the HTTP ingest service (it binds to ENGAGEMENT_WEB_BIND).",
    )
    ingest_tokens: SecretStr | None = Field(
        default=None,
        validation_alias=_env("ingest_tokens"),
        description="sender=token pairs, comma-separated; a sender may have several tokens.",
    )
    ingest_tokens_file: Path | None = Field(
        default=None,
        validation_alias=_env("ingest_tokens_file"),
        description="A file of 'sender sha256-of-token' lines, instead of or besides the tokens.",
    )
    identity_policy: IdentityPolicyName = Field(
        default="map",
        validation_alias=_env("identity_policy"),
        description="How an LMS or LRS actor becomes a student id: map (the identity map) or "
        "as-is (the account name, SIS id or IRI is the student id).",
    )
    identity_policies: str = Field(
        default="",
        validation_alias=_env("identity_policies"),
        description="Per-sender exceptions to the identity policy: scanners=as-is,lms=map.",
    )
    ingest_max_body_bytes: int = Field(
        default=5_000_000, ge=1_000, le=100_000_000, validation_alias=_env("ingest_max_body_bytes")
    )
    ingest_max_units: int = Field(
        default=1_000, ge=1, le=100_000, validation_alias=_env("ingest_max_units")
    )
    ingest_ack_timeout_s: float = Field(
        default=10.0, gt=0, le=120, validation_alias=_env("ingest_ack_timeout_s")
    )

    @field_validator("ingest_tokens")
    @classmethod
    def _tokens(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_tokens(value.get_secret_value())
        return value

    @field_validator("ingest_tokens_file")
    @classmethod
    def _token_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_token_file(value)
        return value

    @field_validator("identity_policies")
    @classmethod
    def _policies(cls, value: str) -> str:
        parse_policies(value)
        return value

    def token_hashes(self) -> list[tuple[str, str]]:
        """Every (sender, token hash) configured, from the variable and the file."""
        pairs = []
        if self.ingest_tokens is not None:
            pairs.extend(parse_tokens(self.ingest_tokens.get_secret_value()))
        if self.ingest_tokens_file is not None:
            pairs.extend(read_token_file(self.ingest_tokens_file))
        return pairs

    def identity_policy_for(self, sender: str) -> IdentityPolicyName:
        """The identity policy of one sender."""
        return parse_policies(self.identity_policies).get(sender, self.identity_policy)
