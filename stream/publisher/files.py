"""Read events from JSON-lines, CSV or TSV files, and publish a whole file.

A line that cannot be read becomes an :class:`Unreadable` marker instead of an exception, so
one bad line is counted as refused (with its line number), not fatal to the file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from schemas.common import Reason
from stream.publisher.checks import Unreadable
from stream.publisher.producer import Publisher
from stream.publisher.report import PublishReport


class _Row(dict[str, object]):
    """An event read from a file, remembering its line so refusals can name it."""

    __slots__ = ("line",)

    def __init__(self, data: dict[str, object], line: int) -> None:
        super().__init__(data)
        self.line = line


def read_file(path: Path) -> Iterator[dict[str, object]]:
    """Read events from .jsonl/.ndjson or .csv/.tsv; bad lines become :class:`Unreadable`."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return _read_jsonl(path)
    if suffix in {".csv", ".tsv"}:
        return _read_csv(path, "\t" if suffix == ".tsv" else ",")
    msg = f"{path}: unknown file type {suffix!r}; use .jsonl, .ndjson, .csv or .tsv"
    raise ValueError(msg)


def _read_jsonl(path: Path) -> Iterator[dict[str, object]]:
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                yield Unreadable(number, Reason.MALFORMED_JSON, f"not valid JSON ({exc})")
                continue
            if isinstance(data, dict):
                yield _Row(data, number)
            else:
                detail = f"expected a JSON object, got {type(data).__name__}"
                yield Unreadable(number, Reason.NOT_AN_OBJECT, detail)


def _read_csv(path: Path, delimiter: str) -> Iterator[dict[str, object]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        for row in reader:
            number = reader.line_num
            if None in row:
                cells = len(row) - 1 + len(row[None])
                detail = f"{cells} cells but the header names {len(reader.fieldnames or ())}"
                yield Unreadable(number, Reason.INVALID_VALUE, detail)
                continue
            # Empty cells mean "not given", so model defaults apply.
            event: dict[str, object] = {k: v for k, v in row.items() if v not in ("", None)}
            version = event.get("schema_version")
            if isinstance(version, str) and version.strip().isdigit():
                event["schema_version"] = int(version)
            yield _Row(event, number)


def publish_file(path: Path, source: str, publisher: Publisher) -> PublishReport:
    """Publish every event in one file to ``source``'s raw topic and wait until it is sent."""
    report = publisher.publish(source, read_file(path))
    publisher.flush()
    return report
