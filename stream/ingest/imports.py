"""A vendor export through a declarative mapping: rows → unit outcomes → checked events or
reference records, in batches, in bounded memory.

Shared by ``engagement publish FILE --mapping NAME``, ``engagement watch DIR --mapping NAME``
and ``POST /import/{mapping}`` on the ingest service. The export is read as a stream: one
batch of rows at a time is adapted, resolved (identity) and checked, then handed to the caller
to send, so a 1 GB export never sits in memory. A CSV export goes through the fast path
(``stream.ingest.imports_fast``) first; the rows it cannot vouch for, and every row of a
mapping it does not cover, are decided here row by row, with the same outcomes.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter
from typing import BinaryIO, overload

from pydantic import ValidationError

from agents.adapters.identity import Policy, resolve, wanted
from agents.adapters.mapping import Compiled, adapt_row, ignored_unit, missing_columns
from agents.adapters.mapping_read import RawRow, open_text, read_batches, read_rows
from agents.adapters.units import Actor, Outcome, Unit
from schemas.common import Reason, classify_validation_error
from schemas.mappings import Mapping as SourceMapping
from schemas.reference import REFERENCE_MODELS
from stream.ingest.imports_fast import FastImport, Vouched
from stream.ingest.lookups import resolve_tables
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
) -> Iterator[Sequence[Prepared]]:
    """Batches of prepared rows, in the export's order. Raises InputFileError before the first
    batch when the header lacks a required column (the whole file cannot be read)."""
    _, text = open_text(stream, mapping)
    compiled = Compiled.of(mapping)
    policy = Policy(mapping.identity.policy) if mapping.identity is not None else None
    if mapping.input.format != "csv":
        _, rows = read_rows(text, mapping)
        batch: list[tuple[int, Unit]] = []
        for index, row in enumerate(rows):
            batch.append((row.line, _adapt(index, row.cells, row.problem, compiled)))
            if len(batch) >= BATCH_ROWS:
                yield _finish(batch, mapping, policy, lookup, max_event_bytes)
                batch = []
        if batch:
            yield _finish(batch, mapping, policy, lookup, max_event_bytes)
        return
    header, batches = read_batches(text, mapping, BATCH_ROWS)
    lacking = missing_columns(mapping, header)
    if lacking:
        names = ", ".join(repr(c) for c in lacking)
        msg = f"the export's header lacks the column(s) {names} that {mapping.name} reads"
        raise InputFileError(msg)
    fast = FastImport.of(compiled, header, max_event_bytes)
    first = 0
    for raw in batches:
        if fast is None:
            slow = [
                (line, _adapt(first + k, _cells(header, cells), problem, compiled))
                for k, (line, cells, problem) in enumerate(raw)
            ]
            yield _finish(slow, mapping, policy, lookup, max_event_bytes)
        else:
            yield _fast_batch(raw, first, header, fast, compiled, policy, lookup)
        first += len(raw)


def _cells(header: list[str], cells: list[str] | None) -> dict[str, str | None] | None:
    return None if cells is None else dict(zip(header, cells, strict=True))


def _adapt(
    index: int, cells: Mapping[str, str | None] | None, problem: str | None, compiled: Compiled
) -> Unit:
    if cells is None:
        return Unit.refused(index, Reason.INVALID_VALUE, problem or "unreadable row")
    return adapt_row(index, cells, compiled)


def _fast_batch(
    raw: list[RawRow],
    first: int,
    header: list[str],
    fast: FastImport,
    compiled: Compiled,
    policy: Policy | None,
    lookup: Lookup | None,
) -> PreparedBatch:
    """One batch through the fast path; the rows it does not vouch for row by row."""
    mapping = compiled.mapping
    vouched, ignored, actors = fast.run(raw, lookup)
    pending = list(compress(range(len(raw)), map(operator.not_, vouched.texts)))
    slow: list[tuple[int, Unit]] = []
    for k in pending:
        line, cells, problem = raw[k]
        rule = ignored.get(k)
        if rule is not None:
            slow.append((line, ignored_unit(first + k, rule, mapping)))
        else:
            slow.append((line, _adapt(first + k, _cells(header, cells), problem, compiled)))
    others = dict(zip(pending, _finish(slow, mapping, policy, lookup, fast.limit), strict=True))
    lines = list(map(itemgetter(0), raw))
    return PreparedBatch(mapping, first, lines, vouched, others, actors)


class PreparedBatch(Sequence[Prepared]):
    """A batch's prepared rows in the export's order. Rows the fast path accepted are kept as
    their line and event text (``lines[k]``, ``vouched.texts[k]``), their unit and checked
    event made only when asked for; every other row is a :class:`Prepared` in ``others[k]``."""

    def __init__(
        self,
        mapping: SourceMapping,
        first: int,
        lines: list[int],
        vouched: Vouched,
        others: dict[int, Prepared],
        actors: list[str],
    ) -> None:
        self.mapping = mapping
        self.first = first  # the index of the batch's first row in the export
        self.lines = lines
        self.vouched = vouched
        self.others = others
        self.actors = actors

    @property
    def checked(self) -> list[Checked | None]:
        """Each row's event as the fast path checked it, or None where it did not."""
        return list(map(self.vouched.at, range(len(self))))

    def __len__(self) -> int:
        return len(self.lines)

    @overload
    def __getitem__(self, k: int) -> Prepared: ...
    @overload
    def __getitem__(self, k: slice) -> Sequence[Prepared]: ...
    def __getitem__(self, k: int | slice) -> Prepared | Sequence[Prepared]:
        if isinstance(k, slice):
            return [self[j] for j in range(len(self))[k]]
        k = range(len(self))[k]
        checked = self.vouched.at(k)
        if checked is None:
            return self.others[k]
        # The unit the row-at-a-time path makes: the record with its student id, and the actor.
        who = self.actors[k]
        identity = self.mapping.identity
        actor = Actor(keys=(who,)) if identity and identity.policy == "map" else Actor((), who)
        event = json.loads(checked.text)
        unit = Unit.accepted(self.first + k, self.mapping.produces, event, actor)
        return Prepared(self.lines[k], unit, checked=checked)


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
    units = resolve_tables(units, mapping, lookup)  # the reader map (stream/ingest/lookups.py)
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
