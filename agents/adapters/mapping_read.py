"""Reading a vendor export into rows for a mapping, in bounded memory and without crashing.

Exports come as CSV/TSV from a reporting tool — UTF-8, UTF-8 with a byte-order mark, or
Windows-1252; comma, semicolon, tab or pipe; quoted cells that hold line breaks; sometimes a
title line above the header — or as JSON (an array of objects, or one object per line; nested
objects are read as dotted column names, ``a.b``). Rows are yielded one at a time with the line
they start on, so a 1 GB export is read in constant memory. A row that cannot be read (wrong
number of cells, bytes that are not the file's encoding) comes out as a problem for that row;
only a file whose header lacks a required column is refused whole.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice, repeat
from operator import itemgetter
from typing import Any, BinaryIO

from schemas.mappings import Mapping

_DELIMITERS = (",", ";", "\t", "|")
# Bytes that are not in the file's encoding, as ``surrogateescape`` decoding leaves them.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class Row:
    """One row: its first line, and its cells by column name, or why it cannot be read."""

    line: int
    cells: dict[str, str | None] | None
    problem: str | None = None


def encoding_of(head: bytes, declared: str) -> str:
    """The export's encoding from its first bytes (``auto``) or as declared."""
    if declared != "auto":
        return declared
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    cut = head.rfind(b"\n")
    sample = head if cut < 0 else head[: cut + 1]
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def delimiter_of(header: str, declared: str) -> str:
    """The delimiter the header line uses most (``auto``), or as declared."""
    if declared != "auto":
        return declared
    return max(_DELIMITERS, key=header.count)


_HEAD_BYTES = 65_536


def open_export(stream: BinaryIO, mapping: Mapping) -> tuple[str, list[str], Iterator[Row]]:
    """An export opened as the import reads it: the encoding found from its first bytes,
    bytes that are not in it kept as surrogates (the row is then refused), quoted line breaks
    kept. Returns the encoding, the header's column names and the rows. Reads ``stream`` once,
    from where it is (no seek: it may be a pipe or a request body)."""
    encoding, text = open_text(stream, mapping)
    header, rows = read_rows(text, mapping)
    return encoding, header, rows


def open_text(stream: BinaryIO, mapping: Mapping) -> tuple[str, io.TextIOWrapper]:
    """The export as text, as :func:`open_export` reads it: its encoding, and its lines."""
    head = stream.read(_HEAD_BYTES)
    encoding = encoding_of(head, mapping.input.encoding)
    raw = io.BufferedReader(_Rewound(head, stream), buffer_size=_HEAD_BYTES)
    text = io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")
    return encoding, text


class _Rewound(io.RawIOBase):
    """A binary stream whose first bytes were already read (to find the encoding)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def read_rows(lines: Iterable[str], mapping: Mapping) -> tuple[list[str], Iterator[Row]]:
    """The header's column names and an iterator over the rows after it. ``lines`` are text
    lines with their endings (a file opened with ``newline=""``, decoding errors as
    ``surrogateescape``)."""
    if mapping.input.format == "json":
        return [], _json_rows(lines)
    header, batches = read_batches(lines, mapping)
    return header, (_row(header, raw) for batch in batches for raw in batch)


RawRow = tuple[int, list[str] | None, str | None]
"""One CSV row as :func:`read_batches` gives it: its first line, and its cells (as many as the
header has columns) or why it cannot be read."""


def read_batches(
    lines: Iterable[str], mapping: Mapping, size: int = 2_000
) -> tuple[list[str], Iterator[list[RawRow]]]:
    """A CSV export's header and its rows, ``size`` at a time, as lists of cells: the rows of
    :func:`read_rows` before they become dicts (an import's fast path reads them by column)."""
    source = iter(lines)
    skipped = [next(source, "") for _ in range(mapping.input.header_row - 1)]
    header_line = next(source, "")
    delimiter = delimiter_of(header_line, mapping.input.delimiter)
    reader = csv.reader(chain([header_line], source), delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    return header, _csv_batches(reader, len(header), len(skipped), size)


def _row(header: list[str], raw: RawRow) -> Row:
    line, cells, problem = raw
    if cells is None:
        return Row(line, None, problem)
    return Row(line, dict(zip(header, cells, strict=True)))


def _csv_batches(reader: Any, width: int, offset: int, size: int) -> Iterator[list[RawRow]]:
    seen = 1  # lines the reader has read: the header's
    while True:
        rows: list[list[str]] = []
        problem = None
        try:
            rows.extend(islice(reader, size))  # the rows before a bad line stay in ``rows``
        except csv.Error as exc:
            problem = f"the line is not valid CSV ({exc})"
        if not rows and problem is None:
            return
        starts, seen = _starts(rows, seen, reader.line_num)
        batch = _checked(rows, [offset + s for s in starts], width)
        if problem is not None:  # the bad line starts after the rows read before it
            batch.append((offset + seen + 1, None, problem))
            seen = reader.line_num
        if batch:
            yield batch


def _starts(rows: list[list[str]], seen: int, now: int) -> tuple[list[int], int]:
    """The line each row starts on, and the lines read after the last: each row is one line
    (the usual case, seen at once from the reader's count), or one plus the line breaks its
    quoted cells hold (each CR LF, CR or LF, as the text reader splits lines)."""
    if now - seen == len(rows):
        return list(range(seen + 1, now + 1)), now
    starts = []
    for cells in rows:
        starts.append(seen + 1)
        text = "".join(cells)
        seen += 1 + text.count("\n") + text.count("\r") - text.count("\r\n")
    return starts, seen


def _checked(rows: list[list[str]], starts: list[int], width: int) -> list[RawRow]:
    """The rows less blank lines, with those that cannot be read marked as such."""
    if width and set(map(len, rows)) == {width}:  # the usual batch, tested at once
        firsts = list(map(itemgetter(0), rows))  # a row is blank only if its first cell is
        if "" not in firsts and not any(map(str.isspace, firsts)):
            text = "".join(chain.from_iterable(rows))
            if text.isascii() or not _UNDECODABLE.search(text):
                return list(zip(starts, rows, repeat(None), strict=False))
    joined = list(map("".join, rows))
    batch: list[RawRow] = []
    for start, cells, text in zip(starts, rows, joined, strict=True):
        if not text or text.isspace():
            continue  # a blank line
        if not text.isascii() and _UNDECODABLE.search(text):
            batch.append((start, None, _NOT_ENCODED))
        elif len(cells) != width:
            problem = f"the row has {len(cells)} cells where the header has {width}"
            batch.append((start, None, problem))
        else:
            batch.append((start, cells, None))
    return batch


_NOT_ENCODED = "the row holds bytes that are not in the file's encoding"


def _json_rows(lines: Iterable[str]) -> Iterator[Row]:
    text_lines = iter(lines)
    first = next(text_lines, "")
    if first.lstrip().startswith("["):  # one array: read whole (JSON exports are API pages)
        try:
            items = json.loads(first + "".join(text_lines))
        except (ValueError, RecursionError):
            yield Row(1, None, "the file is not valid JSON")
            return
        for n, item in enumerate(items if isinstance(items, list) else [items]):
            yield _json_row(n + 1, item)
        return
    for number, line in enumerate(chain([first], text_lines), start=1):
        if line.strip():
            try:
                yield _json_row(number, json.loads(line))
            except (ValueError, RecursionError):
                yield Row(number, None, "the line is not valid JSON")


def _json_row(line: int, item: object) -> Row:
    if not isinstance(item, dict):
        return Row(line, None, "expected a JSON object")
    flat: dict[str, str | None] = {}
    stack: list[tuple[str, object]] = [("", item)]
    while stack:
        prefix, value = stack.pop()
        if isinstance(value, dict) and len(flat) < 1000:
            stack.extend((f"{prefix}{k}.", v) for k, v in value.items())
        else:
            key = prefix[:-1]
            flat[key] = None if value is None else str(value)
    return Row(line, flat)
