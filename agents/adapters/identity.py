"""The identity step: an accepted unit's actor becomes the institutional student id.

Two policies, chosen per sender and for all at once (``ENGAGEMENT_IDENTITY_POLICY``):

- ``map`` (the default): the actor's keys are looked up, most specific first, in the identity
  map (reference data: LMS account or IRI → student id). An actor not in the map is ignored as
  ``unknown_actor`` and counted: the product never guesses who someone is.
- ``as-is``: the format's own id is the student id (the account name, the SIS id, the IRI).

Pure: the caller fetches the map entries for :func:`wanted` keys (one Redis call for a
batch) and passes them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from enum import StrEnum

from agents.adapters.units import Ignored, Outcome, Unit

_MAX_ID = 64  # schemas.fields.StudentId


class Policy(StrEnum):
    """How an actor becomes a student id."""

    MAP = "map"
    AS_IS = "as-is"


def wanted(units: Iterable[Unit]) -> list[str]:
    """Every identity-map key the accepted units may need, each once, in order."""
    seen: dict[str, None] = {}
    for unit in units:
        if unit.outcome is Outcome.ACCEPTED and unit.actor is not None:
            for key in unit.actor.keys:
                seen.setdefault(key, None)
    return list(seen)


def _usable(student_id: str | None) -> bool:
    return (
        student_id is not None
        and 0 < len(student_id) <= _MAX_ID
        and not any(c.isspace() for c in student_id)
    )


def resolve(units: Sequence[Unit], policy: Policy, found: Mapping[str, str]) -> list[Unit]:
    """The units with each accepted event's ``student_id`` filled in, or the unit ignored as
    ``unknown_actor``. ``found`` holds the identity-map entries for :func:`wanted` keys that
    exist (only consulted under ``map``)."""
    out: list[Unit] = []
    for unit in units:
        if unit.outcome is not Outcome.ACCEPTED or unit.event is None:
            out.append(unit)
            continue
        actor = unit.actor
        if actor is None and "student_id" in unit.event:
            out.append(unit)  # the product's own schema: the sender named the student
            continue
        student_id: str | None = None
        if actor is not None:
            if policy is Policy.MAP:
                student_id = next((found[k] for k in actor.keys if k in found), None)
            else:
                student_id = actor.as_is
        if not _usable(student_id):
            why = (
                "the actor is not in the identity map"
                if policy is Policy.MAP
                else "the actor has no id that can be a student id"
            )
            out.append(Unit.ignored(unit.index, Ignored.UNKNOWN_ACTOR, why))
            continue
        out.append(replace(unit, event={**unit.event, "student_id": student_id}))
    return out
