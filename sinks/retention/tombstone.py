"""What an erasure leaves behind: a tombstone on the log of record and a receipt in Redis.

The tombstone goes to the interventions topic (the log of record) and names nobody: no
student id, no pseudonym, no keyed hash of either; only when, why and how much was erased.
The receipt answers the student who signs in later ("your data was erased on …"): its key
is ``e_`` + an HMAC of the pseudonym under the deployment's pseudonym key with its own label,
so it differs from the pseudonym and from every other key; it holds only the time, the reason
and the tombstone's id. Nothing in Redis links it to a student: it is found again only by
someone who has both the student's id and the deployment's key (the API, when the student
signs in) — the same standing as the pseudonym itself, which the erasure removed everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

from schemas.common import SCHEMA_VERSION
from schemas.errors import EngagementError

_RECEIPT_LABEL: Final = b"engagement-erasure-receipt|"
REASON_MAX: Final = 200
REASON_WITHDRAWN: Final = "withdrawn past the erasure grace period"


class ErasureError(EngagementError):
    """An erasure was refused before anything was removed (the message says why)."""


class ErasureTombstone(BaseModel):
    """On the interventions topic: a student's data was erased (v1). Names nobody."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["erasure"] = "erasure"
    tombstone_id: str = Field(description="Random; repeated if the same erasure is re-run.")
    erased_at: AwareDatetime
    reason: str
    keys_deleted: int = Field(default=0, description="Whole keys about the student deleted.")


class ErasureReceipt(BaseModel):
    """In Redis under the receipt key: when and why one student's data was erased."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    erased_at: AwareDatetime
    reason: str
    tombstone_id: str


def receipt_id(key: SecretStr, pseudonym: str) -> str:
    """The receipt's name for ``pseudonym``: ``e_`` + 32 hex of a labelled HMAC."""
    digest = hmac.new(
        key.get_secret_value().encode(), _RECEIPT_LABEL + pseudonym.encode(), hashlib.sha256
    )
    return "e_" + digest.hexdigest()[:32]


def new_tombstone_id() -> str:
    """A random tombstone id (nothing about the student goes into it)."""
    return "t_" + secrets.token_hex(16)


def check_reason(reason: str, *identities: str | None) -> str:
    """The reason as stored: one line, at most ``REASON_MAX`` characters, naming nobody."""
    text = " ".join(reason.split())
    if not text:
        msg = "give a reason for the erasure (e.g. 'compliance request 2026-114')"
        raise ErasureError(msg)
    if len(text) > REASON_MAX:
        msg = f"the reason is longer than {REASON_MAX} characters"
        raise ErasureError(msg)
    folded = text.casefold()
    if any(who and who.casefold() in folded for who in identities):
        msg = "the reason must not name the student (it is kept after their data is erased)"
        raise ErasureError(msg)
    return text
