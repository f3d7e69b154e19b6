"""Export the intervention log: records as JSON lines and/or Jisc xAPI case statements.

Backs ``engagement interventions export``. The log topic may hold a record twice after a crash
(the write is repeated, the record id is the same), so records are de-duplicated by id; output
is ordered by decision time then record id, and each file is replaced atomically so a reader
never sees half an export.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas.interventions import InterventionRecord, Outcome
from sinks.export.xapi import DEFAULT_PLATFORM, case_statements


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote, for the command to print."""

    records: int
    duplicates_skipped: int
    statements: int
    without_identity: int
    outside_window: int = 0

    def summary(self) -> str:
        """One sentence for the operator."""
        notes = [f"{self.duplicates_skipped} duplicate(s) skipped"]
        if self.outside_window:
            notes.append(f"{self.outside_window} outside the time window")
        if self.without_identity:
            notes.append(
                f"{self.without_identity} without a known student id (pseudonym used instead)"
            )
        return (
            f"Exported {self.records} intervention record(s) and {self.statements} xAPI "
            f"statement(s); {', '.join(notes)}."
        )


def write_exports(
    records: Iterable[InterventionRecord],
    identities: Mapping[str, str],
    *,
    jsonl: Path | None,
    xapi: Path | None,
    homepage: str,
    since: datetime | None = None,
    until: datetime | None = None,
    platform: str = DEFAULT_PLATFORM,
) -> ExportReport:
    """Write the records decided in ``[since, until)`` to the files asked for; count the rest.

    ``identities`` maps pseudonym to student id; a record whose mapping has expired is exported
    under its pseudonym. With neither file given nothing is written (a dry run).
    """
    for name, bound in (("since", since), ("until", until)):
        if bound is not None and bound.utcoffset() is None:
            msg = f"{name} must carry a timezone offset, e.g. 2026-10-01T00:00:00+01:00"
            raise ValueError(msg)
    unique, duplicates = _dedupe(records)
    kept = [r for r in unique if _within(r.decided_at, since, until)]
    kept.sort(key=lambda r: (r.decided_at, r.record_id))

    record_lines: list[str] = []
    statement_lines: list[str] = []
    without_identity = 0
    for record in kept:
        student_id = identities.get(record.pseudonym)
        row = record.model_dump(mode="json")
        if student_id is None:
            without_identity += 1
        else:
            row["student_id"] = student_id
        record_lines.append(_line(row))
        if record.outcome is Outcome.SHADOW:
            # A shadow rule's decision reached nobody: it is evidence for judging the rule,
            # kept in the JSONL, not an intervention for the student-records system.
            continue
        statements = case_statements(
            record, student_id=student_id, homepage=homepage, platform=platform
        )
        statement_lines.extend(_line(statement) for statement in statements)

    if jsonl is not None:
        _write_atomically(jsonl, record_lines)
    if xapi is not None:
        _write_atomically(xapi, statement_lines)
    return ExportReport(
        records=len(kept),
        duplicates_skipped=duplicates,
        statements=len(statement_lines),
        without_identity=without_identity,
        outside_window=len(unique) - len(kept),
    )


def _dedupe(records: Iterable[InterventionRecord]) -> tuple[list[InterventionRecord], int]:
    """Keep the first record with each id; a repeat is the same decision written again."""
    seen: dict[str, InterventionRecord] = {}
    duplicates = 0
    for record in records:
        if record.record_id in seen:
            duplicates += 1
        else:
            seen[record.record_id] = record
    return list(seen.values()), duplicates


def _within(moment: datetime, since: datetime | None, until: datetime | None) -> bool:
    # Half-open, so consecutive windows (--since A --until B, then --since B) never overlap.
    return (since is None or moment >= since) and (until is None or moment < until)


def _line(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n"


def _write_atomically(path: Path, lines: Iterable[str]) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
