"""Report rows as CSV: one header line of the rows' field names, then one line per row."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from pydantic import BaseModel


def to_csv(rows: Sequence[BaseModel], columns: Sequence[str]) -> str:
    """The rows as CSV text; ``columns`` names the header even when there are no rows.

    A value that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) is
    quoted with a leading apostrophe: student ids come from other systems.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = row.model_dump(mode="json")
        writer.writerow(_cell(values[name]) for name in columns)
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text
