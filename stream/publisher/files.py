"""Read events from JSON-lines, CSV or TSV files, and publish a whole file.

Every line has one outcome: an event, an :class:`Unreadable` marker (counted as refused, with
its line number and a reason), or a skip (a blank line, the CSV header) counted by the reader.
The reader counts the lines it reads itself, so ``read = sent + refused + skipped`` checks that
no line was lost between here and the broker. Nothing in a line can make reading fail: bytes
that are not UTF-8, a line of any length (never held whole in memory), nesting past Python's
recursion limit, a CSV quote that never closes (it used to swallow every line after it).
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from schemas.common import Reason
from stream.publisher.checks import MAX_EVENT_BYTES, Unreadable, too_deep
from stream.publisher.envelopes import MAX_REQUEST_BYTES
from stream.publisher.producer import Publisher
from stream.publisher.report import InputFileError, PublishReport

MAX_LINE_CHARS: Final = MAX_REQUEST_BYTES
"""A longer line is refused unread: no event that long fits in one Kafka message."""

# Bytes that are not UTF-8, as the "surrogateescape" error handler hands them over.
_NOT_UTF8: Final = re.compile("[\udc80-\udcff]")


class _Row(dict[str, object]):
    """An event read from a file, remembering its line so refusals can name it."""

    __slots__ = ("line",)

    def __init__(self, data: dict[str, object], line: int) -> None:
        super().__init__(data)
        self.line = line


class FileEvents(Iterator[dict[str, object]]):
    """The events of one file, in order, and the count of its lines (read, and skipped)."""

    def __init__(self, path: Path, *, max_line_chars: int = MAX_LINE_CHARS) -> None:
        suffix = path.suffix.lower()
        if suffix not in {".jsonl", ".ndjson", ".csv", ".tsv"}:
            msg = f"{path}: unknown file type {suffix!r}; use .jsonl, .ndjson, .csv or .tsv"
            raise InputFileError(msg)
        if not path.is_file():
            msg = f"{path}: no such file"
            raise InputFileError(msg)
        self.path = path
        self.max_line_chars = max_line_chars
        self.lines = 0
        """Lines read so far, blank ones and the CSV header included."""
        self.skipped: Counter[str] = Counter()
        """Lines read that hold no event, by why ("blank", "header")."""
        if suffix in {".jsonl", ".ndjson"}:
            self._events = self._read_jsonl()
        else:
            self._events = self._read_csv("\t" if suffix == ".tsv" else ",")

    def __iter__(self) -> FileEvents:
        return self

    def __next__(self) -> dict[str, object]:
        return next(self._events)

    def _lines(self, newline: str | None) -> Iterator[tuple[int, str | None]]:
        """Each line with its number, without its line break; None for one over the limit."""
        # A line over the limit is read past in pieces, never held whole.
        limit = self.max_line_chars
        try:
            handle = self.path.open(encoding="utf-8-sig", errors="surrogateescape", newline=newline)
        except OSError as exc:
            msg = f"{self.path}: cannot be read ({exc.strerror or exc})"
            raise InputFileError(msg) from exc
        with handle:
            while text := handle.readline(limit + 1):
                self.lines += 1
                if len(text) > limit and not text.endswith("\n"):
                    while (rest := handle.readline(limit)) and not rest.endswith("\n"):
                        pass
                    yield self.lines, None
                    continue
                if text.endswith("\n"):
                    text = text[:-1]
                yield self.lines, text.removesuffix("\r")

    def _too_long(self, number: int) -> Unreadable:
        detail = (
            f"the line is longer than {self.max_line_chars} characters, so it was not read; "
            f"one event may be at most {MAX_EVENT_BYTES} bytes by default"
        )
        return Unreadable(number, Reason.OVERSIZED, detail)

    def _read_jsonl(self) -> Iterator[dict[str, object]]:
        # Only "\n" ends a line (a JSON text may hold a bare "\r" as white space).
        for number, text in self._lines("\n"):
            if text is None:
                yield self._too_long(number)
            elif not text.strip():
                self.skipped["blank"] += 1
            elif bad := _NOT_UTF8.search(text):
                yield Unreadable(number, Reason.MALFORMED_JSON, _not_utf8(bad))
            else:
                yield _parse_json(text, number)

    def _read_csv(self, delimiter: str) -> Iterator[dict[str, object]]:
        names: list[str] | None = None
        broken: str | None = None  # why the header cannot be used
        for number, text in self._lines(None):  # "\r\n", "\r" and "\n" all end a line
            if text is not None and not text.strip():
                self.skipped["blank"] += 1
                continue
            cells = self._too_long(number) if text is None else _cells(text, delimiter, number)
            if names is None and broken is None:  # the first line that is not blank
                names, broken = _header(cells)
                if broken is None:
                    self.skipped["header"] += 1
                else:
                    detail = f"the header line cannot be used: {broken}"
                    broken = f"{broken} (line {number})"
                    yield Unreadable(number, Reason.INVALID_VALUE, detail)
            elif broken is not None or names is None:
                detail = f"not read, because the header cannot be used: {broken}"
                yield Unreadable(number, Reason.INVALID_VALUE, detail)
            elif isinstance(cells, Unreadable):
                yield cells
            elif len(cells) > len(names):
                detail = f"{len(cells)} cells but the header names {len(names)}"
                yield Unreadable(number, Reason.INVALID_VALUE, detail)
            else:
                # Empty cells mean "not given", so model defaults apply; so do missing ones.
                event: dict[str, object] = {
                    k: v for k, v in zip(names, cells, strict=False) if v != ""
                }
                version = event.get("schema_version")
                if isinstance(version, str) and version.strip().isdigit():
                    event["schema_version"] = int(version)
                yield _Row(event, number)


def _parse_json(text: str, number: int) -> dict[str, object]:
    try:
        data = json.loads(text)
    except RecursionError:  # raised cleanly by the C parser, past ~1,000 levels
        return Unreadable(number, Reason.OVERSIZED, too_deep())
    except ValueError as exc:
        return Unreadable(number, Reason.MALFORMED_JSON, f"not valid JSON ({exc})")
    if isinstance(data, dict):
        return _Row(data, number)
    detail = f"expected a JSON object, got {type(data).__name__}"
    return Unreadable(number, Reason.NOT_AN_OBJECT, detail)


def _cells(text: str, delimiter: str, number: int) -> list[str] | Unreadable:
    """One line's cells. A record must fit on its line: a quoted cell cannot span lines."""
    if bad := _NOT_UTF8.search(text):
        return Unreadable(number, Reason.INVALID_VALUE, _not_utf8(bad))
    try:
        rows = list(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        if len(text) > csv.field_size_limit():
            detail = f"a cell is longer than {csv.field_size_limit()} characters"
            return Unreadable(number, Reason.OVERSIZED, detail)
        detail = (
            f"the line is not valid CSV ({exc}): a quoted cell must close on its own line, "
            'and a " inside one is written ""'
        )
        return Unreadable(number, Reason.INVALID_VALUE, detail)
    if len(rows) != 1:
        return Unreadable(number, Reason.INVALID_VALUE, "the line is not one CSV record")
    return rows[0]


def _header(cells: list[str] | Unreadable) -> tuple[list[str] | None, str | None]:
    """Column names from the header's cells, or why they cannot be used."""
    if isinstance(cells, Unreadable):
        return None, cells.detail
    names = [cell.strip() for cell in cells]
    first: dict[str, int] = {}
    for column, name in enumerate(names, start=1):
        if name and name in first:  # by position: a headerless file's first row is data
            return None, f"columns {first[name]} and {column} have the same name"
        first.setdefault(name, column)
    return names, None


def _not_utf8(bad: re.Match[str]) -> str:
    return (
        f"not UTF-8 text (byte 0x{ord(bad.group()) - 0xDC00:02x} at character "
        f"{bad.start() + 1}); save the file as UTF-8"
    )


def read_file(path: Path, *, max_line_chars: int = MAX_LINE_CHARS) -> FileEvents:
    """Read events from .jsonl/.ndjson or .csv/.tsv; bad lines become :class:`Unreadable`.

    Raises :class:`InputFileError` (a ``ValueError``) at once for an unknown file type or a
    missing file; the returned iterator counts lines read and skipped as it goes.
    """
    return FileEvents(path, max_line_chars=max_line_chars)


def publish_file(path: Path, source: str, publisher: Publisher) -> PublishReport:
    """Publish every event in one file to ``source``'s raw topic and wait until it is sent."""
    report = publisher.publish(source, read_file(path))
    publisher.flush()
    return report
