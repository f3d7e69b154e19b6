"""Mapping fields looked up in a reference table at import time (``reference = "readers"``).

Pure: a field with ``reference`` is read from its column like any other, then, once per batch,
:func:`wanted` lists the cells to look up (each once), the caller fetches those entries (one
Redis HMGET per table) and :func:`apply_lookups` puts the entry's value in place of the cell.

A cell that is not in the table:

- ``missing = "keep"`` (the default): the row is accepted with the cell as it is (a Paxton
  reader's door name stays the building) and carries the table's note (``unmapped_reader``),
  so the import's report counts the rows whose reader the map lacks;
- ``missing = "refuse"``: the row is refused ``invalid_value``, naming the field and column.

Sentences name fields, columns and tables, never the cell's value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agents.adapters.units import Outcome, Unit
from schemas.common import Reason
from schemas.mappings import Mapping as SourceMapping
from schemas.reference import LOOKUP_TABLES


@dataclass(frozen=True)
class LookedUp:
    """One field of a mapping that is looked up: in which table, and which value it takes."""

    field: str
    column: str
    table: str
    take: str
    refuse: bool


def looked_up(mapping: SourceMapping) -> tuple[LookedUp, ...]:
    """The mapping's looked-up fields, in the mapping's order (none for most mappings)."""
    out = []
    for name, rule in mapping.fields.items():
        if rule.reference is not None:
            take = rule.take or LOOKUP_TABLES[rule.reference].default_take
            column = rule.column or "(template)"
            out.append(LookedUp(name, column, rule.reference, take, rule.missing == "refuse"))
    return tuple(out)


def wanted(units: Iterable[Unit], fields: Sequence[LookedUp]) -> dict[str, list[str]]:
    """Table → the cells the accepted units need looked up, each once, in order."""
    seen: dict[str, dict[str, None]] = {}
    units = list(units)
    for field in fields:
        cells = seen.setdefault(field.table, {})
        for unit in units:
            if unit.outcome is Outcome.ACCEPTED and unit.event is not None:
                cell = unit.event.get(field.field)
                if isinstance(cell, str) and cell:
                    cells.setdefault(cell, None)
    return {table: list(cells) for table, cells in seen.items() if cells}


def _entries(raw: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Stored entries (JSON text); one that is not a JSON object counts as absent."""
    out = {}
    for key, text in raw.items():
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            out[key] = value
    return out


def apply_lookups(
    units: Sequence[Unit], fields: Sequence[LookedUp], found: Mapping[str, Mapping[str, str]]
) -> list[Unit]:
    """The units with each looked-up cell replaced by its entry's value; ``found`` holds, per
    table, the stored entries of :func:`wanted` cells that exist."""
    if not fields:
        return list(units)
    tables = {table: _entries(raw) for table, raw in found.items()}
    out: list[Unit] = []
    for unit in units:
        if unit.outcome is not Outcome.ACCEPTED or unit.event is None:
            out.append(unit)
            continue
        event = dict(unit.event)
        lacking: list[LookedUp] = []
        for field in fields:
            cell = event.get(field.field)
            if not isinstance(cell, str) or not cell:
                continue  # an optional field left out: nothing to look up
            entry = tables.get(field.table, {}).get(cell)
            value = entry.get(field.take) if entry is not None else None
            if isinstance(value, str) and value:
                event[field.field] = value
            else:
                lacking.append(field)
        out.append(_outcome(unit, event, lacking))
    return out


def _outcome(unit: Unit, event: dict[str, Any], lacking: list[LookedUp]) -> Unit:
    if not lacking:
        return replace(unit, event=event)
    chosen = next((f for f in lacking if f.refuse), lacking[0])
    table = LOOKUP_TABLES[chosen.table]
    detail = f"{chosen.field}: the {table.noun} has no {chosen.take} for the {chosen.column!r} cell"
    if chosen.refuse:
        return Unit.refused(unit.index, Reason.INVALID_VALUE, detail)
    return replace(unit, event=event, reason=table.missing_reason, detail=f"{detail}; kept as is")
