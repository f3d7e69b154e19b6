"""A vendor export through a declarative mapping: rows → unit outcomes → checked events or
reference records, in batches, in bounded memory.

Shared by ``engagement publish FILE --mapping NAME``, ``engagement watch DIR --mapping NAME``
and ``POST /import/{mapping}`` on the ingest service. The export is read as a stream: one
batch of rows at a time is adapted, resolved (identity) and checked, then handed to the caller
to send, so a 1 GB export never sits in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from pydantic import ValidationError

from agents.adapters.identity import Policy, resolve, wanted
from agents.adapters.mapping import Compiled, adapt_row, missing_columns
from agents.adapters.mapping_read import open_export
from agents.adapters.units import Outcome, Unit
from schemas.common import Reason, classify_validation_error
from schemas.mappings import Mapping as SourceMapping
from schemas.reference import REFERENCE_MODELS
from stream.publisher.checks import Checked, check_event
from stream.publisher.report import InputFileError
from stream.reference import ID_FIELD

Lookup = Callable[[Sequence[str]], Mapping[str, str]]
BATCH_ROWS = 2_000


@dataclass(frozen=True)
class Prepared:
    """One row's outcome, with what to send for an accepted one."""

    line: int
    unit: Unit
    checked: Checked | None = None  # an accepted event
    reference: tuple[str, bytes] | None = None  # an accepted reference record: key, JSON


def prepare_export(
    stream: BinaryIO,
    mapping: SourceMapping,
    lookup: Lookup | None,
    max_event_bytes: int,
) -> Iterator[list[Prepared]]:
    """Batches of prepared rows. Raises InputFileError before the first batch when the
    header lacks a required column (the whole file cannot be read)."""
    _, header, rows = open_export(stream, mapping)
    if mapping.input.format == "csv":
        lacking = missing_columns(mapping, header)
        if lacking:
            names = ", ".join(repr(c) for c in lacking)
            msg = f"the export's header lacks the column(s) {names} that {mapping.name} reads"
            raise InputFileError(msg)
    compiled = Compiled.of(mapping)
    policy = Policy(mapping.identity.policy) if mapping.identity is not None else None
    batch: list[tuple[int, Unit]] = []
    index = 0
    for row in rows:
        if row.cells is None:
            unit = Unit.refused(index, Reason.INVALID_VALUE, row.problem or "unreadable row")
        else:
            unit = adapt_row(index, row.cells, compiled)
        batch.append((row.line, unit))
        index += 1
        if len(batch) >= BATCH_ROWS:
            yield _finish(batch, mapping, policy, lookup, max_event_bytes)
            batch = []
    if batch:
        yield _finish(batch, mapping, policy, lookup, max_event_bytes)


def _finish(
    batch: list[tuple[int, Unit]],
    mapping: SourceMapping,
    policy: Policy | None,
    lookup: Lookup | None,
    max_event_bytes: int,
) -> list[Prepared]:
    lines = [line for line, _ in batch]
    units = [unit for _, unit in batch]
    if policy is not None:
        found: Mapping[str, str] = {}
        keys = wanted(units) if policy is Policy.MAP else []
        if keys and lookup is not None:
            found = lookup(keys)
        units = resolve(units, policy, found)
    out: list[Prepared] = []
    for line, unit in zip(lines, units, strict=True):
        if unit.outcome is not Outcome.ACCEPTED or unit.event is None:
            out.append(Prepared(line, unit))
        elif mapping.is_reference:
            out.append(_reference(line, unit, mapping.produces))
        else:
            checked = check_event(
                mapping.produces, dict(unit.event), max_event_bytes=max_event_bytes
            )
            if isinstance(checked, Checked):
                out.append(Prepared(line, unit, checked=checked))
            else:
                out.append(Prepared(line, Unit.refused(unit.index, checked[0], checked[1])))
    return out


def _reference(line: int, unit: Unit, kind: str) -> Prepared:
    try:
        record = REFERENCE_MODELS[kind].model_validate(dict(unit.event or {}))
    except ValidationError as exc:
        reason, detail = classify_validation_error(exc)
        return Prepared(line, Unit.refused(unit.index, reason, detail))
    key = str(getattr(record, ID_FIELD[kind]))
    value = json.dumps(record.model_dump(mode="json")).encode()
    return Prepared(line, unit, reference=(key, value))
