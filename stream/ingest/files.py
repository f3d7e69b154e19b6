"""``engagement publish FILE --format xapi|caliper|canvas|moodle-log``: a file of native
payloads through the same adapters, identity step and checks as the ingest service.

A ``.json`` file is one payload (an object or an array); ``.jsonl``/``.ndjson`` one payload
per line (bounded memory); a Moodle log may also be the ``.csv`` export of its table. Every
unit ends as accepted (sent), ignored or refused, with its line and index in the report.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.adapters import moodle
from agents.adapters.identity import Policy, wanted
from agents.adapters.units import Unit
from schemas.common import Reason
from stream.ingest.formats import FORMATS
from stream.ingest.prepare import adapt, finish
from stream.publisher import Publisher
from stream.publisher.report import InputFileError

Lookup = Callable[[Sequence[str]], Mapping[str, str]]
_FLUSH = 500


class FileReport:
    """Every unit of a file, where it was and what became of it.

    The units are written to a spill file as they come (one JSON line each), never kept in
    memory, so the report of a 1 GB export costs no more memory than that of a small one.
    """

    def __init__(self) -> None:
        self.count = 0
        self.tally: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self._spill = tempfile.TemporaryFile("w+", encoding="utf-8")  # closed in write_json/close

    def __del__(self) -> None:
        self._spill.close()

    def add(self, line: int, unit: Unit) -> None:
        self._spill.write(json.dumps({"line": line, **unit.report()}) + "\n")
        self.count += 1
        self.tally[str(unit.outcome)] += 1
        if unit.reason:
            self.reasons[f"{unit.outcome}: {unit.reason}"] += 1

    def units(self) -> Iterator[dict[str, Any]]:
        """The units reported so far, in order (read back from the spill file)."""
        self._spill.flush()
        self._spill.seek(0)
        for text in self._spill:
            yield json.loads(text)
        self._spill.seek(0, 2)

    def summary(self) -> str:
        """One line of totals, then one line per reason."""
        head = (
            f"read {self.count} units: accepted {self.tally['accepted']}, "
            f"ignored {self.tally['ignored']}, refused {self.tally['refused']}"
        )
        return "\n".join([head, *(f"  {k}: {n}" for k, n in sorted(self.reasons.items()))])

    def write_json(self, path: Path, error: str | None = None) -> None:
        """The ``--report-json`` document, streamed: ``{"error": ..., "units": [...]}``."""
        with path.open("w", encoding="utf-8") as out:
            out.write("{" + (f'"error": {json.dumps(error)}, ' if error is not None else ""))
            out.write('"units": [')
            for n, unit in enumerate(self.units()):
                out.write(("," if n else "") + "\n " + json.dumps(unit))
            out.write("\n]}\n")


def payloads(path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """(line, payload) pairs of a file; a line that is not JSON is a payload the adapters
    refuse (so it is reported, not skipped)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        msg = f"{path}: no such file"
        raise InputFileError(msg)
    if suffix in (".csv", ".tsv", ".txt") and fmt == "moodle-log":
        # One payload per row, so that each row's report names the line it starts on; the
        # reader finds the encoding (UTF-8, UTF-16 by its mark, else Windows-1252) itself.
        yield from moodle.numbered_rows_from_csv(path.read_bytes())
    elif suffix == ".json":
        yield 1, _json(path.read_text(encoding="utf-8", errors="replace"))
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield number, _json(line)
    else:
        csv = " or .csv/.tsv/.txt (moodle-log)" if fmt == "moodle-log" else ""
        msg = f"{path}: expected .json, .jsonl or .ndjson{csv}"
        raise InputFileError(msg)


class _NotJson:
    """A payload that did not parse; every adapter refuses it as not an object."""


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NotJson()


def publish_native(
    path: Path, fmt: str, publisher: Publisher, policy: Policy, lookup: Lookup
) -> FileReport:
    """Adapt, resolve, check and send every unit of a file; wait until the broker has it."""
    report = FileReport()
    buffers: dict[str, list[dict[str, Any]]] = {}
    received = datetime.now(UTC)
    for line, payload in payloads(path, fmt):
        if isinstance(payload, _NotJson):
            units = [Unit.refused(0, Reason.MALFORMED_JSON, "the line is not JSON")]
        else:
            units = adapt(FORMATS[fmt], payload, received)
        keys = wanted(units) if policy is Policy.MAP else []
        found = lookup(keys) if keys else {}
        for unit, checked in finish(units, policy, found, publisher.max_event_bytes):
            if checked is not None and unit.source and unit.event is not None:
                buffer = buffers.setdefault(unit.source, [])
                buffer.append({**unit.event})
                if len(buffer) >= _FLUSH:
                    publisher.publish(unit.source, buffer)
                    buffer.clear()
            report.add(line, unit)
    for source, buffer in buffers.items():
        if buffer:
            publisher.publish(source, buffer)
    publisher.flush()
    return report
