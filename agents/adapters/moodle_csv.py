"""The CSV export of Moodle's ``logstore_standard_log`` table, as rows the adapter reads.

A database export (phpMyAdmin, MySQL Workbench, ``mysql -B``, ``psql \\copy ... CSV HEADER``,
a spreadsheet) has a header row with the column names and one line per log row; every value
is text. The rows come back as dicts of strings, in order, so that
:func:`agents.adapters.moodle.adapt` gives one outcome per line. Pure: the caller reads the file
(as text or as bytes).

What real exports do that this reader copes with (docs/formats/moodle.md, "The CSV export"):
any of comma, tab, semicolon or ``|`` between values; a byte-order mark, UTF-16 (a spreadsheet's
"Unicode text"), Windows-1252; Excel's ``sep=;`` first line; no header row at all (``SELECT ...
INTO OUTFILE``, ``mysql -N``, ``psql`` without ``HEADER``: the table's 21 columns in order);
header names quoted or prefixed by the table (``l.id``); the borders and the ``(N rows)`` footer
of ``psql`` and ``mysql`` table output.

A line that does not have as many values as the header is still a unit: it comes back as
``{MALFORMED: "<why>"}``, which the adapter refuses (``invalid_value``), so a broken line is
counted and reported rather than silently dropped or shifted into the wrong columns.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from typing import Any, Final

MALFORMED: Final = "__malformed__"
"""The key of a row the CSV reader could not split into the header's columns."""
COLUMNS: Final = (
    "id", "eventname", "component", "action", "target", "objecttable", "objectid", "crud",
    "edulevel", "contextid", "contextlevel", "contextinstanceid", "userid", "courseid",
    "relateduserid", "anonymous", "other", "timecreated", "origin", "ip", "realuserid",
)  # fmt: skip
"""The columns of ``logstore_standard_log``, in the table's order (install.xml)."""
_MALFORMED_TEXT: Final = re.compile(
    r"^line \d+ (has \d+ values?, the header has \d+|cannot be read as CSV)$"
)
_DELIMITERS: Final = (",", "\t", ";", "|")
_EXCEL_SEP: Final = re.compile(r"^sep=(.)\s*$", re.IGNORECASE)
_BORDER_CHARACTERS: Final = frozenset(" \t\r+|=-")
"""What a table border line of ``psql`` or ``mysql`` output (``----+----``, ``+----+----+``)
is made of; it has at least one ``-``."""
_FOOTER: Final = re.compile(r"^\(\d+ rows?\)$")
"""The footer ``psql`` prints after a table (``(42 rows)``)."""
_QUOTES: Final = "\\s\"'`\\[\\]"
_HEADER_NAME: Final = re.compile(
    rf"^[{_QUOTES}]*(?:[A-Za-z0-9_]+[{_QUOTES}]*\.[{_QUOTES}]*)?([A-Za-z0-9_]*)[{_QUOTES}]*$"
)
"""A header cell: the column name, maybe quoted, bracketed or qualified by a table."""
_SLASHES: Final = re.compile(r"\\{2,}")
_BOMS: Final = ("\ufeff", "\u00ef\u00bb\u00bf")
"""A byte-order mark as text, and UTF-8's read as Windows-1252 or Latin-1 (``ï»¿``)."""


def rows_from_csv(data: str | bytes) -> list[dict[str, Any]]:
    """One dict per data line of a CSV export of the log table (header names lower-cased,
    values as text); a line with the wrong number of values becomes a malformed marker.

    The delimiter is the one of comma, tab, semicolon or ``|`` that the first line uses most
    (spreadsheets in many locales write semicolons; ``mysql -B`` writes tabs, ``psql -A``
    bars), unless an Excel ``sep=`` line names it. Blank lines are skipped. Text that is not
    CSV at all ends the reading with one malformed marker.
    """
    return [row for _, row in numbered_rows_from_csv(data)]


def numbered_rows_from_csv(data: str | bytes) -> list[tuple[int, dict[str, Any]]]:
    """:func:`rows_from_csv` with the line each row starts on (1 = the first line of the
    text), for reports: a quoted value can span lines and blank lines are skipped, so a row's
    line is not always its position plus two."""
    text = _clean(decode(data) if isinstance(data, bytes) else data)
    first, _, rest = text.partition("\n")
    excel = _EXCEL_SEP.match(first.strip("\r"))
    skipped = 0
    if excel is not None:
        delimiter, text, skipped = excel.group(1), rest, 1
    else:
        delimiter = max(_DELIMITERS, key=_first_line(text).count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, dict[str, Any]]] = []
    header: list[str] | None = None
    framed = False
    start = 1
    try:
        for raw in reader:
            line, start = start + skipped, reader.line_num + 1
            values = raw[1:-1] if framed and len(raw) > 1 else raw
            if _skip(values):
                continue
            if header is None:
                header, framed, values = _header(raw)
                if not values:
                    continue
            if len(values) != len(header):
                why = f"line {line} has {len(values)} value{'s' * (len(values) != 1)}, "
                rows.append((line, {MALFORMED: why + f"the header has {len(header)}"}))
                continue
            rows.append((line, dict(zip(header, values, strict=True))))
    except csv.Error:
        rows.append((start + skipped, {MALFORMED: f"line {start + skipped} cannot be read as CSV"}))
    return rows


def _first_line(text: str) -> str:
    """The first line that is neither blank nor a table border: the header, or a first row."""
    for line in text.splitlines()[:20]:
        if line.strip() and not _is_border(line):
            return line
    return ""


def _is_border(text: str) -> bool:
    return "-" in text and set(text) <= _BORDER_CHARACTERS


def decode(data: bytes) -> str:
    """The text of an export's bytes: UTF-16 or UTF-32 when a byte-order mark says so, UTF-8
    (with or without its mark) when the bytes are UTF-8, else Windows-1252 (the default of
    spreadsheets and of MySQL's ``latin1``), whose undefined bytes become U+FFFD."""
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _clean(text: str) -> str:
    """Text as a reader that guessed the encoding wrong may hand it over: a byte-order mark
    (or its Windows-1252 reading) dropped; UTF-16 read as an 8-bit encoding (every other
    character NUL, the mark as U+FFFD or ``ÿþ``) brought back to its characters."""
    if "\x00" in text[:200]:
        text = text.replace("\x00", "").lstrip("\ufffd\u00ff\u00fe")
    for bom in _BOMS:
        text = text.removeprefix(bom)
    return text


def _skip(values: list[str]) -> bool:
    """Blank lines, and the borders and footers of ``psql``/``mysql`` table output."""
    if not values or (len(values) == 1 and not values[0].strip()):
        return True
    joined = "|".join(values).strip()
    return _is_border(joined) or bool(_FOOTER.match(joined))


def _header(values: list[str]) -> tuple[list[str], bool, list[str]]:
    """(column names, whether every line is framed by delimiters, the first line's values if
    it is data). A first line naming no ``eventname`` column but holding the table's 21
    values is data of a header-less export: the columns are then the table's, in order."""
    framed = len(values) > 2 and not values[0].strip() and not values[-1].strip()
    if framed:
        values = values[1:-1]
    names = [_name(value) for value in values]
    if "eventname" not in names and len(values) == len(COLUMNS) and _is_row(values):
        return list(COLUMNS), framed, values
    return names, framed, []


def _is_row(values: list[str]) -> bool:
    """Whether a first line in the table's column order is a log row: a numeric id, or an
    event class name where ``eventname`` goes."""
    return values[0].strip().isdigit() or "\\event\\" in _SLASHES.sub("\\\\", values[1])


def _name(value: str) -> str:
    """A header cell as a column name: trimmed, lower-cased, without quotes, brackets or a
    table qualifier (``"l"."eventname"`` and ``mdl_logstore_standard_log.eventname`` are
    ``eventname``)."""
    text = value.strip()[:256]
    match = _HEADER_NAME.match(text)
    return (match.group(1) if match else text).strip().lower()


def malformed_detail(row: dict[str, Any]) -> str:
    """The refusal sentence for a malformed marker; the reader's own wording only, so that a
    marker sent from elsewhere cannot put arbitrary text into a dead letter."""
    why = row.get(MALFORMED)
    if isinstance(why, str) and _MALFORMED_TEXT.match(why):
        return f"CSV export of logstore_standard_log: {why}"
    return "CSV export of logstore_standard_log: the row could not be split into the columns"
