"""The CSV export of Moodle's ``logstore_standard_log`` table, as rows the adapter reads.

A database export (phpMyAdmin, MySQL Workbench, ``psql \\copy ... CSV HEADER``, a spreadsheet)
has a header row with the column names and one line per log row; every value is text. The
rows come back as dicts of strings, in order, so that :func:`agents.adapters.moodle.adapt`
gives one outcome per line. Pure: the caller reads the file.

A line that does not have as many values as the header is still a unit: it comes back as
``{MALFORMED: "<why>"}``, which the adapter refuses (``invalid_value``), so a broken line is
counted and reported rather than silently dropped or shifted into the wrong columns.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any, Final

MALFORMED: Final = "__malformed__"
"""The key of a row the CSV reader could not split into the header's columns."""
_MALFORMED_TEXT: Final = re.compile(
    r"^line \d+ (has \d+ values?, the header has \d+|cannot be read as CSV)$"
)
_DELIMITERS: Final = (",", "\t", ";")


def rows_from_csv(text: str) -> list[dict[str, Any]]:
    """One dict per data line of a CSV export of the log table (header names lower-cased,
    values as text); a line with the wrong number of values becomes a malformed marker.

    The delimiter is the one of comma, tab or semicolon that the header line uses most
    (spreadsheets in many locales write semicolons; ``mysql -B`` writes tabs). Blank lines are
    skipped. Text that is not CSV at all ends the reading with one malformed marker.
    """
    return [row for _, row in numbered_rows_from_csv(text)]


def numbered_rows_from_csv(text: str) -> list[tuple[int, dict[str, Any]]]:
    """:func:`rows_from_csv` with the line each row starts on (1 = the first line of the
    text), for reports: a quoted value can span lines and blank lines are skipped, so a row's
    line is not always its position plus two."""
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, dict[str, Any]]] = []
    header: list[str] | None = None
    start = 1
    try:
        for values in reader:
            line, start = start, reader.line_num + 1
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            if header is None:
                header = [name.strip().lower() for name in values]
                continue
            if len(values) != len(header):
                why = f"line {line} has {len(values)} value{'s' * (len(values) != 1)}, "
                rows.append((line, {MALFORMED: why + f"the header has {len(header)}"}))
                continue
            rows.append((line, dict(zip(header, values, strict=True))))
    except csv.Error:
        rows.append((start, {MALFORMED: f"line {start} cannot be read as CSV"}))
    return rows


def malformed_detail(row: dict[str, Any]) -> str:
    """The refusal sentence for a malformed marker; the reader's own wording only, so that a
    marker sent from elsewhere cannot put arbitrary text into a dead letter."""
    why = row.get(MALFORMED)
    if isinstance(why, str) and _MALFORMED_TEXT.match(why):
        return f"CSV export of logstore_standard_log: {why}"
    return "CSV export of logstore_standard_log: the row could not be split into the columns"
