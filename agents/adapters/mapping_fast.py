"""A mapping applied to a whole batch of CSV rows, a column at a time: an import's fast path.

:func:`agents.adapters.mapping.adapt_row` reads one row at a time through a dict of its cells,
and an export of millions of rows spent most of its time there. :class:`FastMapping` does the
same work for a batch with one list comprehension per column, ignore rule and field, and says
which rows it can vouch for. A row it cannot (an empty cell where a value is needed, a code not
in its map, a time or date that does not read, an empty identity) is left to ``adapt_row``,
which decides it as always: this path never decides a refusal, so every outcome and every
sentence stays the row-at-a-time one.

Pure: cell text in, product values out. Mappings it does not cover (JSON input, reference
records, list or looked-up fields, no identity column) get no fast path at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import itemgetter

from agents.adapters.mapping import Compiled, local_date, local_time
from agents.adapters.units import content_id
from schemas.mappings import Condition, FieldRule, Identity

_TEMPLATE = re.compile(r"\{([^{}]+)\}")  # as agents.adapters.mapping reads templates
_CACHE_LIMIT = 100_000  # distinct time and date texts remembered (as Compiled.times)

Column = list[str]
Values = list[str]  # a field's values, one a row; "" where the row is not vouched for


@dataclass(frozen=True)
class FastRows:
    """A batch's rows, column-wise: the rows an ignore rule matches (row → the first such
    rule), whose row each is (the id under ``as-is``, the identity-map key under ``map``) and
    each field's product value, in the mapping's order; "" where a row is not vouched for."""

    ignored: dict[int, int]
    actors: Values
    values: list[Values]


class FastMapping:
    """A mapping made ready for batches of CSV rows whose header is ``header``."""

    def __init__(self, compiled: Compiled, identity: Identity, header: Sequence[str]) -> None:
        self.compiled = compiled
        self.mapping = compiled.mapping
        self.identity = identity
        self.columns = {name: n for n, name in enumerate(header)}  # a repeated name: the last
        self.bad_times: set[str] = set()
        self.dates: dict[str, str] = {}

    @classmethod
    def of(cls, compiled: Compiled, header: Sequence[str]) -> FastMapping | None:
        """The fast path of a mapping, or None for a mapping it does not cover."""
        mapping = compiled.mapping
        identity = mapping.identity
        if mapping.input.format != "csv" or mapping.is_reference or identity is None:
            return None
        if "student_id" in mapping.fields:  # the identity step would keep its place
            return None
        for rule in mapping.fields.values():
            if rule.split is not None or rule.reference is not None:
                return None
        return cls(compiled, identity, header)

    @property
    def fields(self) -> list[str]:
        """The product fields every vouched-for row sets, in the mapping's order."""
        return list(self.mapping.fields)

    def adapt(self, rows: Sequence[Sequence[str]]) -> FastRows:
        """The batch's rows (each as many cells as the header has columns), column-wise."""
        stripped: dict[str, Column] = {}
        count = len(rows)

        def column(name: str) -> Column:
            found = stripped.get(name)
            if found is None:
                at = self.columns.get(name)
                if at is None:
                    found = [""] * count  # as a dict of the row's cells gives for it
                else:
                    found = list(map(str.strip, map(itemgetter(at), rows)))
                stripped[name] = found
            return found

        mapping = self.mapping
        ignored: dict[int, int] = {}
        for n in reversed(range(len(mapping.ignore))):  # the first rule that matches wins
            when = mapping.ignore[n].when
            hits = _test(when, self.compiled.patterns.get(n), column(when.column))
            ignored.update(dict.fromkeys(compress(range(count), hits), n))
        actors = column(self.identity.column)
        if self.identity.policy == "map":
            prefix = self.identity.map_prefix
            actors = [prefix + who if who else "" for who in actors]
        values = [self._field(rule, column, count) for rule in mapping.fields.values()]
        return FastRows(ignored, actors, values)

    def _field(self, rule: FieldRule, column: Callable[[str], Column], count: int) -> Values:
        """One field's values, as ``_value`` in agents.adapters.mapping makes them."""
        texts: Values
        if rule.value is not None:
            texts = [rule.value] * count
        elif rule.template is not None:
            texts = self._template(rule, column, count)
        else:
            texts = column(rule.column or "")
            if rule.strip_prefix:
                cut, size = rule.strip_prefix, len(rule.strip_prefix)
                texts = [t[size:] if t.startswith(cut) else t for t in texts]
            if rule.extract is not None:
                search = self.compiled.extracts[rule.extract].search
                texts = [(m.group(1) or "") if (m := search(t)) else "" for t in texts]
        if rule.default is not None:
            default = rule.default
            texts = [t or default for t in texts]
        if rule.map is not None:  # an empty text is never looked up (the map may have "")
            table, otherwise = self.mapping.maps[rule.map], rule.map_default or ""
            if "" in texts:
                texts = [table.get(t, otherwise) if t else "" for t in texts]
            else:
                texts = list(map(table.get, texts, repeat(otherwise)))
        if rule.time:
            texts = self._times(texts)
        elif rule.date:
            dates, day = self.dates, self._date
            texts = [dates[t] if t in dates else day(t) if t else "" for t in texts]
        return texts

    def _times(self, texts: Values) -> Values:
        """Times as UTC ISO text, through the cache of times already read."""
        times = self.compiled.times
        found = list(map(times.get, texts, repeat("")))
        if "" in found:  # new times (or empty or unreadable texts): each read once
            missing = {t for f, t in zip(found, texts, strict=True) if not f and t}
            new = {t: self._time(t) for t in missing}
            found = [f or new.get(t, "") for f, t in zip(found, texts, strict=True)]
        return found

    def _template(self, rule: FieldRule, column: Callable[[str], Column], count: int) -> Values:
        template = rule.template or ""
        parts = _TEMPLATE.split(template)  # text, column, text, column, ..., text
        names = parts[1::2]
        if not names:
            text = content_id(self.mapping.name, template) if rule.hash else template
            return [text] * count
        form = "%s".join(p.replace("%", "%%") for p in parts[0::2])
        cells = [column(name) for name in names]
        texts = list(map(form.__mod__, zip(*cells, strict=True)))
        if rule.default is None and any("" in c for c in cells):  # refused: not vouched for
            rows = zip(texts, zip(*cells, strict=True), strict=True)
            texts = [t if "" not in row else "" for t, row in rows]
        if rule.hash:
            name = self.mapping.name
            texts = [content_id(name, t) if t else "" for t in texts]
        return texts

    def _time(self, text: str) -> str:
        """A time the cache does not hold yet, read as ``_time`` reads it; "" if it does not
        read (the row-at-a-time path then refuses it with its sentence)."""
        if text in self.bad_times:
            return ""
        try:
            found = local_time(text, self.mapping.time, self.compiled.zone, "")
        except Exception:  # Stop, or a time past what datetime can hold: not vouched for
            if len(self.bad_times) > _CACHE_LIMIT:
                self.bad_times.clear()
            self.bad_times.add(text)
            return ""
        times = self.compiled.times
        if len(times) > _CACHE_LIMIT:
            times.clear()
        times[text] = found
        return found

    def _date(self, text: str) -> str:
        try:
            found = local_date(text, self.mapping.time, "")
        except Exception:  # Stop: not vouched for
            found = ""
        if len(self.dates) > _CACHE_LIMIT:
            self.dates.clear()
        self.dates[text] = found
        return found


def _test(when: Condition, pattern: re.Pattern[str] | None, cells: Column) -> list[bool]:
    """An ignore rule's test of every cell of its column (``_matches``, column-wise)."""
    if when.in_ is not None:
        return list(map(frozenset(when.in_).__contains__, cells))
    if when.not_in is not None:
        outside = frozenset(when.not_in)
        return [c not in outside for c in cells]
    if when.empty is not None:
        return [not c for c in cells] if when.empty else [c != "" for c in cells]
    if pattern is None:
        return [False] * len(cells)
    search = pattern.search
    return [search(c) is not None for c in cells]
