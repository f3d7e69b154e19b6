"""A declarative mapping (``schemas.mappings``) applied to rows: one unit outcome per row.

Pure: the rows come in as dicts of cell text (``agents.adapters.mapping_read`` reads them from
an export), and each becomes exactly one :class:`~agents.adapters.units.Unit`:

- **ignored** when an ``[[ignore]]`` rule matches (staff and visitor cards, denied access,
  door-held alarms), with the rule's reason;
- **refused** when a required cell is empty, a vendor code is not in its value map, a time
  does not parse or falls in the hour a clock change skips (``nonexistent = "refuse"``) or
  repeats (``ambiguous = "refuse"``); the sentence names the product field and the column,
  never the cell's value;
- **accepted** otherwise, with the event (or reference record) and the actor to resolve.

Clock changes: a local time in the hour that repeats when the clocks go back is read as the
earlier of its two instants (``ambiguous = "earlier"``, the default), the later, or refused;
a local time in the hour that never happens when they go forward is refused (the default) or
read as if the clocks had not yet changed, i.e. one hour later on the wall (``shift_forward``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping as Cells
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agents.adapters.units import Actor, Ignored, Stop, Unit, content_id, guarded
from schemas.common import Reason
from schemas.mappings import Condition, FieldRule, Mapping, Times

_TEMPLATE = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class Compiled:
    """A mapping made ready for many rows."""

    mapping: Mapping
    zone: ZoneInfo
    patterns: dict[int, re.Pattern[str]]
    times: dict[str, str]  # vendor time text → UTC ISO text: exports repeat their times
    extracts: dict[str, re.Pattern[str]]
    optional: frozenset[str]  # fields the model can do without

    @classmethod
    def of(cls, mapping: Mapping) -> Compiled:
        patterns = {
            n: re.compile(rule.when.matches)
            for n, rule in enumerate(mapping.ignore)
            if rule.when.matches is not None
        }
        extracts = {
            rule.extract: re.compile(rule.extract)
            for rule in mapping.fields.values()
            if rule.extract is not None
        }
        fields = mapping.model.model_fields
        optional = frozenset(n for n in mapping.fields if not fields[n].is_required())
        return cls(mapping, ZoneInfo(mapping.time.zone), patterns, {}, extracts, optional)


def missing_columns(mapping: Mapping, header: list[str]) -> list[str]:
    """Required columns the export's header lacks (the whole file cannot be read without)."""
    present = {h.strip() for h in header}
    return [c for c in mapping.required_columns if c not in present]


def adapt_row(index: int, cells: Cells[str, str | None], compiled: Compiled) -> Unit:
    """One row's outcome; never raises."""
    return guarded(index, lambda: _row(index, cells, compiled), f"a {compiled.mapping.name} row")


def _cell(cells: Cells[str, str | None], column: str) -> str:
    value = cells.get(column)
    return "" if value is None else str(value).strip()


def _matches(condition: Condition, value: str, pattern: re.Pattern[str] | None) -> bool:
    if condition.in_ is not None:
        return value in condition.in_
    if condition.not_in is not None:
        return value not in condition.not_in
    if condition.empty is not None:
        return (value == "") == condition.empty
    return pattern is not None and pattern.search(value) is not None


def _row(index: int, cells: Cells[str, str | None], compiled: Compiled) -> Unit:
    mapping = compiled.mapping
    for n, ignore in enumerate(mapping.ignore):
        if _matches(ignore.when, _cell(cells, ignore.when.column), compiled.patterns.get(n)):
            return ignored_unit(index, n, mapping)
    actor: Actor | None = None
    if mapping.identity is not None:  # whose row it is, first: nothing else matters without
        column = mapping.identity.column
        who = _cell(cells, column)
        if not who:
            raise Stop(Reason.MISSING_FIELD, f"the identity column {column!r} is empty")
        if mapping.identity.policy == "map":
            actor = Actor(keys=(mapping.identity.map_prefix + who,), as_is=None)
        else:
            actor = Actor(keys=(), as_is=who)
    record: dict[str, Any] = {}
    for name, rule in mapping.fields.items():
        value = _value(name, rule, cells, compiled)
        if value is not None:
            record[name] = value
    return Unit.accepted(index, mapping.produces, record, actor)


def ignored_unit(index: int, rule: int, mapping: Mapping) -> Unit:
    """The outcome of a row that the mapping's ignore rule number ``rule`` matches."""
    ignore = mapping.ignore[rule]
    detail = f"the {ignore.when.column!r} column matches an ignore rule of {mapping.name}"
    return Unit.ignored(index, Ignored(ignore.reason), detail)


def _value(name: str, rule: FieldRule, cells: Cells[str, str | None], compiled: Compiled) -> Any:
    """The product value of one field; None leaves an empty optional field out."""
    text = _text(name, rule, cells, compiled)
    if text == "":
        if rule.default is not None:
            text = rule.default
        elif name in compiled.optional:
            return None  # the model has a default for it
        else:
            where = f" (column {rule.column!r})" if rule.column else ""
            raise Stop(Reason.MISSING_FIELD, f"{name}{where} is empty")
    if rule.split is not None:
        parts = [p.strip() for p in text.split(rule.split) if p.strip()]
        return [_coded(name, rule, p, compiled) for p in parts]
    text = _coded(name, rule, text, compiled)
    if rule.time:
        return _time(name, text, compiled)
    if rule.date:
        return _date(name, text, compiled)
    return text


def _text(name: str, rule: FieldRule, cells: Cells[str, str | None], compiled: Compiled) -> str:
    """The field's text from its column, template or constant, before maps and times."""
    if rule.value is not None:
        return rule.value
    if rule.template is not None:
        empty = [c for c in rule.columns if not _cell(cells, c)]
        if empty and rule.default is None:
            raise Stop(Reason.MISSING_FIELD, f"{name} (column {empty[0]!r}) is empty")
        text = _TEMPLATE.sub(lambda m: _cell(cells, m.group(1)), rule.template)
        return content_id(compiled.mapping.name, text) if rule.hash else text
    text = _cell(cells, rule.column or "")
    if rule.strip_prefix and text.startswith(rule.strip_prefix):
        text = text[len(rule.strip_prefix) :]
    if rule.extract is not None:
        found = compiled.extracts[rule.extract].search(text)
        text = (found.group(1) or "") if found else ""
    return text


def _coded(name: str, rule: FieldRule, text: str, compiled: Compiled) -> str:
    """A vendor code through the field's value map, if it has one."""
    if rule.map is None:
        return text
    mapped = compiled.mapping.maps[rule.map].get(text, rule.map_default)
    if mapped is None:
        known = len(compiled.mapping.maps[rule.map])
        detail = f"{name}: the code in column {rule.column!r} is none of the {known} codes "
        detail += f"of map {rule.map!r}"
        raise Stop(Reason.INVALID_VALUE, detail)
    return mapped


def _time(name: str, text: str, compiled: Compiled) -> str:
    found = compiled.times.get(text)
    if found is None:
        found = local_time(text, compiled.mapping.time, compiled.zone, name)
        if len(compiled.times) > 100_000:
            compiled.times.clear()
        compiled.times[text] = found
    return found


def _date(name: str, text: str, compiled: Compiled) -> str:
    return local_date(text, compiled.mapping.time, name)


def local_date(text: str, times: Times, name: str) -> str:
    """A calendar date (no time, no zone) as YYYY-MM-DD, read with the mapping's date formats."""
    for fmt in times.date_formats:
        try:
            return datetime.strptime(text, fmt).date().isoformat()  # noqa: DTZ007  # a date
        except ValueError:
            continue
    raise Stop(Reason.INVALID_VALUE, f"{name}: the date matches none of the mapping's formats")


def local_time(text: str, times: Times, zone: ZoneInfo, name: str) -> str:
    """A vendor time as UTC ISO text: the formats tried in order; a time without an offset is
    in ``zone``, with the clock-change hours read as ``times`` says."""
    for fmt in times.formats:
        try:
            parsed = datetime.strptime(text, fmt)  # noqa: DTZ007  # the zone is applied below
        except ValueError:
            continue
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC).isoformat()
        return _in_zone(parsed, times, zone, name).astimezone(UTC).isoformat()
    raise Stop(Reason.INVALID_VALUE, f"{name}: the time matches none of the mapping's formats")


def _in_zone(naive: datetime, times: Times, zone: ZoneInfo, name: str) -> datetime:
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first  # an ordinary hour
    back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back != naive:  # the hour the clocks skip
        if times.nonexistent == "refuse":
            detail = f"{name}: a local time in the hour the clocks skip ({times.zone})"
            raise Stop(Reason.INVALID_VALUE, detail)
        return first  # read with the offset before the change: an hour later on the wall
    if times.ambiguous == "refuse":  # the hour that repeats
        detail = f"{name}: a local time in the hour that repeats when the clocks go back"
        raise Stop(Reason.INVALID_VALUE, detail)
    return first if times.ambiguous == "earlier" else second
