"""The fast path of an import: a batch of CSV rows to checked events without a model per row.

:class:`~agents.adapters.mapping_fast.FastMapping` gives each row's product values, column by
column. This module decides, as :func:`~stream.publisher.checks.check_event` would, which of
those rows are events the worker takes, and writes their JSON text exactly as ``check_event``
writes it (the same keys, order and escaping). A row it cannot vouch for is left to the
row-at-a-time path (``adapt_row``, the identity step, ``check_event``), which decides it as
always; so every row ends with the outcome and sentence it had before, only sooner.

How it stays exactly as strict as the model, without running the model on every row:

- *free* fields — plain strings with length limits and perhaps "no whitespace" (event ids,
  student ids, session and module names) — are tested directly, by a test that only accepts
  what the schema accepts (printable text without surrounding whitespace, within the limits);
- every other field (times, coded values, constants) is learnt: a value is known good once
  ``check_event`` accepted an event carrying it. The first row the full check accepts is the
  *anchor*; a new value is tried in the anchor's place. Values that a model validator reads
  together (an attendance mark's expected start and end) are learnt together, as one tuple;
- the size limit is checked on each row's own text.

Sound because a model's verdict is the conjunction of its fields' verdicts and of its model
validators', each of which reads the fields :data:`MODEL_CHECKS` names; a model with a model
validator not named there, or a field validator that reads other fields, has no fast path.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from json.encoder import encode_basestring
from operator import itemgetter
from typing import Any, cast

from pydantic import StringConstraints

from agents.adapters.mapping import Compiled
from agents.adapters.mapping_fast import FastMapping, Values
from agents.adapters.mapping_read import RawRow
from schemas.events import MODEL_BY_SOURCE
from stream.publisher.checks import Checked, check_event

Lookup = Callable[[Sequence[str]], Mapping[str, str]]

MODEL_CHECKS: dict[tuple[str, str], tuple[str, ...]] = {
    ("AttendanceMark", "_session_order"): ("expected_start", "expected_end"),
}
"""The fields each model validator of a feed's model reads (tests/unit/test_mapping_fast.py
fails when a model gains one that is not named here)."""

_CONFIG = {"frozen", "extra", "str_strip_whitespace"}  # none of them changes a string's text
_NO_SPACE = r"^\S+$"
_LEARN_LIMIT = 100_000  # values remembered per field
_TRIES = 20  # rows of a batch tried as the anchor before the batch is left to the full check


@dataclass(frozen=True)
class Free:
    """A free field's limits, from its model's string constraints."""

    least: int
    most: int
    no_space: bool  # the pattern forbids whitespace anywhere (ids)

    def accepts(self, value: str) -> bool:
        """Whether the model takes ``value`` unchanged and JSON writes it in plain quotes:
        printable (so no whitespace but the space), no quote or backslash, within the limits,
        no space at all (ids) or none around it (texts: the model would strip it)."""
        if not (self.least <= len(value) <= self.most and _plain(value)):
            return False
        return " " not in value if self.no_space else value[0] != " " != value[-1]

    def accepts_all(self, values: list[str]) -> bool:
        """:meth:`accepts` for every value (none of them empty), tested on the batch at once."""
        if not values:
            return True
        joined = '"'.join(values)  # no value holds a quote if there are only these
        if joined.count('"') != len(values) - 1 or not _plain(joined.replace('"', "")):
            return False
        if max(map(len, values)) > self.most:
            return False
        if self.least > 1 and min(map(len, values)) < self.least:  # "" is never given
            return False
        if self.no_space:
            return " " not in joined
        return ' "' not in joined and '" ' not in joined and joined[0] != " " != joined[-1]


def _plain(text: str) -> bool:
    """Whether JSON writes ``text`` as it is between quotes (``encode_basestring``)."""
    return text.isprintable() and '"' not in text and "\\" not in text


def free_field(model: Any, name: str) -> Free | None:
    """The limits of a free field of ``model``, or None when the field is not free (its value
    is then learnt from the full check)."""
    if not set(model.model_config) <= _CONFIG:
        return None
    field = model.model_fields.get(name)
    if field is None or field.annotation is not str or len(field.metadata) != 1:
        return None
    rule = field.metadata[0]
    if not isinstance(rule, StringConstraints) or rule.pattern not in (None, _NO_SPACE):
        return None
    if any(x is not None for x in (rule.strip_whitespace, rule.to_upper, rule.to_lower)):
        return None
    if rule.strict is not None or rule.ascii_only is not None:
        return None
    decorators = model.__pydantic_decorators__
    if any(name in d.info.fields for d in decorators.field_validators.values()):
        return None
    if any(name in fields for fields in MODEL_CHECKS.values()):
        return None
    most = rule.max_length if rule.max_length is not None else 1_000_000
    return Free(max(rule.min_length or 1, 1), most, rule.pattern == _NO_SPACE)


@dataclass(frozen=True)
class Vouched:
    """A batch's checked events as parallel lists, one entry a row: the event's JSON text
    ("" where the fast path does not vouch for the row), its size in bytes and its key."""

    texts: Values
    sizes: list[int]
    student_ids: Values

    def at(self, k: int) -> Checked | None:
        """Row ``k``'s checked event, or None where the row is not vouched for."""
        text = self.texts[k]
        return Checked(text, self.sizes[k], self.student_ids[k]) if text else None


class FastImport:
    """A mapping's fast path: rows in, a checked event or "not vouched for" out, per row."""

    def __init__(self, fast: FastMapping, limit: int) -> None:
        self.fast = fast
        self.source = fast.mapping.produces
        self.limit = limit
        self.map_policy = fast.identity.policy == "map"
        model = MODEL_BY_SOURCE[self.source]
        names = fast.fields
        self.names = [*names, "student_id"]
        self.free = {n: free for n in self.names if (free := free_field(model, n)) is not None}
        grouped = {f for fields in MODEL_CHECKS.values() for f in fields}
        self.group = [n for n in names if n in grouped]  # learnt together, as one tuple
        self.learnt = [n for n in names if n not in self.free and n not in grouped]
        self.known: dict[str, dict[str, bool]] = {n: {} for n in self.learnt}
        self.known_groups: dict[tuple[str, ...], bool] = {}
        self.anchor: dict[str, str] | None = None
        keys = [encode_basestring(n).replace("%", "%%") for n in self.names]
        # check_event's text: its separators, every value a string in plain quotes
        self.form = "{" + ",".join(f'{k}:"%s"' for k in keys) + "}"

    @classmethod
    def of(cls, compiled: Compiled, header: Sequence[str], limit: int) -> FastImport | None:
        """The fast path of a mapping, or None when it has none."""
        fast = FastMapping.of(compiled, header)
        if fast is None or fast.mapping.produces not in MODEL_BY_SOURCE:
            return None
        model = MODEL_BY_SOURCE[fast.mapping.produces]
        decorators = model.__pydantic_decorators__
        for name in decorators.model_validators:
            if (model.__name__, name) not in MODEL_CHECKS:
                return None
        for validator in decorators.field_validators.values():
            if len(inspect.signature(validator.func).parameters) != 1:
                return None  # it may read other fields (info.data)
        if free_field(model, "student_id") is None:
            return None
        return cls(fast, limit)

    def run(
        self, rows: Sequence[RawRow], lookup: Lookup | None
    ) -> tuple[Vouched, dict[int, int], Values]:
        """For each row its checked event, or none where the fast path does not vouch for it
        (the caller decides those row by row); the rows an ignore rule matches (row → rule);
        and whose row each is (for its unit)."""
        cells = list(map(itemgetter(1), rows))
        if None in cells:  # rows that cannot be read are decided row by row
            at = [k for k, row in enumerate(cells) if row is not None]
            adapted = self.fast.adapt([cells[k] or [] for k in at])
        else:
            at = list(range(len(rows)))
            adapted = self.fast.adapt(cast(list[list[str]], cells))
        ids = adapted.actors
        if self.map_policy:
            wanted = list(dict.fromkeys(filter(None, ids)))
            found = lookup(wanted) if wanted and lookup is not None else {}
            ids = list(map(found.get, ids, repeat("")))
        values = [*adapted.values, ids]
        if self.anchor is None:
            self._find_anchor(values, adapted.ignored)
        out = self._unvouched(values, adapted.ignored)
        texts, sizes = self._render(values, out)
        if len(at) == len(rows):
            return Vouched(texts, sizes, ids), adapted.ignored, adapted.actors
        every: Values = [""] * len(rows)
        every_size = [0] * len(rows)
        every_id: Values = [""] * len(rows)
        actors: Values = [""] * len(rows)
        for j, k in enumerate(at):
            every[k], every_size[k], every_id[k] = texts[j], sizes[j], ids[j]
            actors[k] = adapted.actors[j]
        ignored = {at[j]: rule for j, rule in adapted.ignored.items()}
        return Vouched(every, every_size, every_id), ignored, actors

    def _unvouched(self, values: list[Values], ignored: dict[int, int]) -> set[int]:
        """The rows (of the batch's readable ones) the fast path does not vouch for."""
        out = set(ignored)
        count = len(values[0]) if values else 0
        for name, column in zip(self.names, values, strict=True):
            if "" in column:
                out.update(compress(range(count), map(operator.not_, column)))
            free = self.free.get(name)
            if free is not None:
                if not free.accepts_all(list(filter(None, column))):
                    out.update(j for j, v in enumerate(column) if v and not free.accepts(v))
            elif name in self.known:
                self._learn(name, column, out)
        if self.group:
            self._learn_group([values[self.names.index(n)] for n in self.group], out)
        return out

    def _render(self, values: list[Values], out: set[int]) -> tuple[Values, list[int]]:
        """Each vouched-for row's JSON text and its size in bytes ("" for the others, also
        those found here to be over the size limit)."""
        texts = list(map(self.form.__mod__, zip(*values, strict=True)))
        for j in out:
            texts[j] = ""
        if all(map(str.isascii, texts)):
            sizes = list(map(len, texts))
        else:
            sizes = [len(t) if t.isascii() else len(t.encode()) for t in texts]
        if max(sizes, default=0) > self.limit:  # refused as oversized, row by row
            over = [j for j, n in enumerate(sizes) if n > self.limit]
            out.update(over)
            for j in over:
                texts[j] = ""
        return texts, sizes

    def _find_anchor(self, values: list[Values], ignored: dict[int, int]) -> None:
        """The first row of the batch the full check accepts, if one of the first few is."""
        tries = 0
        for j, row in enumerate(zip(*values, strict=True)):
            if j not in ignored and "" not in row:
                event = dict(zip(self.names, row, strict=True))
                if self._accept(event):
                    self.anchor = event
                    return
                tries += 1
                if tries >= _TRIES:
                    return

    def _learn(self, name: str, column: Values, out: set[int]) -> None:
        """Learn the field's new values in the anchor's place; rows holding a value the full
        check refused (or that there is no anchor yet to try) go to ``out``."""
        known = self.known[name]
        distinct = set(column)
        distinct.discard("")
        fresh = distinct.difference(known)
        if fresh and self.anchor is not None:
            if len(known) + len(fresh) > _LEARN_LIMIT:
                known.clear()
            for value in fresh:
                known[value] = _plain(value) and self._accept({**self.anchor, name: value})
        bad = {v for v in distinct if not known.get(v, False)}
        if bad:
            out.update(j for j, v in enumerate(column) if v in bad)

    def _learn_group(self, columns: list[Values], out: set[int]) -> None:
        """As :meth:`_learn`, for the values a model validator reads, as one tuple."""
        known = self.known_groups
        distinct = set(zip(*columns, strict=True))
        fresh = distinct.difference(known)
        if fresh and self.anchor is not None:
            if len(known) + len(fresh) > _LEARN_LIMIT:
                known.clear()
            for group in fresh:
                good = all(v and _plain(v) for v in group)
                update = dict(zip(self.group, group, strict=True))
                known[group] = good and self._accept({**self.anchor, **update})
        bad = {g for g in distinct if not known.get(g, False)}
        if bad:
            out.update(j for j, g in enumerate(zip(*columns, strict=True)) if g in bad)

    def _accept(self, event: dict[str, str]) -> bool:
        return isinstance(check_event(self.source, event, max_event_bytes=self.limit), Checked)
