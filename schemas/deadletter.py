"""The dead-letter record: why an input was refused, with a redacted excerpt (v1)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.common import SCHEMA_VERSION, Reason, WireModel


class DeadLetter(WireModel):
    """One refused input: one message, or one event of an envelope (``index`` says which).

    Nothing in it identifies a student. Letters from decoding (``agents.letters``) show only
    the allow-listed fields of the event's schema (``agents.redact.EXCERPT_FIELDS``), replace
    an event id that is not opaque by a keyed hash (``h_…``) and never quote the input in the
    sentence; the other producers (too-late events, reference records, preference changes)
    send no excerpt.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    reason: Reason
    detail: str = Field(description="A human sentence saying what was wrong and what to fix.")
    topic: str
    partition: int
    offset: int
    index: int | None = Field(
        default=None,
        description="0-based position of the event in its envelope or replayed batch; null "
        "when the whole message was refused.",
    )
    event_id: str | None = Field(
        default=None,
        description="The refused event's id; from decoding, h_ and a keyed hash of it unless "
        "it is opaque.",
    )
    received_at: AwareDatetime
    payload_excerpt: str = Field(
        description="At most 512 characters: the allow-listed fields, '[redacted]' for the "
        "schema's other fields, and a count of the fields left out."
    )
