"""Readers for the Open University Learning Analytics Dataset (OULAD), for replays and backtests.

OULAD dates are day offsets from a module presentation's start; the readers turn them into
timezone-aware VLE events and read final results so a backtest can compare nudges to outcomes.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

VLE_COLUMNS: Final = (
    "code_module",
    "code_presentation",
    "id_student",
    "id_site",
    "date",
    "sum_click",
)
SITE_COLUMNS: Final = ("id_site", "activity_type")

# How bad an outcome is: when a student has several, the worst one is kept.
_BADNESS: Final[Mapping[str, int]] = {"distinction": 0, "pass": 1, "fail": 2, "withdrawn": 3}
_ADVERSE: Final = frozenset({"fail", "withdrawn"})
_OULAD_OUTCOME_COLUMNS: Final = ("id_student", "final_result")
_GENERIC_OUTCOME_COLUMNS: Final = ("student_id", "outcome")
_NOON: Final = time(12)


def _open_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) from a CSV file whose header must include ``required``.

    Every field is stripped; a row with a missing or empty required field, or with more fields
    than the header, raises ``ValueError`` naming the file and line.
    """
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or ()]
        missing = [name for name in required if name not in header]
        if missing:
            msg = f"{path}: line 1: missing column(s) {', '.join(missing)}; expected {required}"
            raise ValueError(msg)
        reader.fieldnames = header
        for raw in reader:
            line = reader.line_num
            if None in raw:
                msg = f"{path}: line {line}: more fields than the header's {len(header)}"
                raise ValueError(msg)
            row = {key: (value or "").strip() for key, value in raw.items()}
            empty = [name for name in required if not row[name]]
            if empty:
                msg = f"{path}: line {line}: missing value(s) for {', '.join(empty)}"
                raise ValueError(msg)
            yield line, row


def _integer(path: Path, line: int, name: str, value: str) -> int:
    """Parse an integer field, or raise ``ValueError`` naming the file, line and column."""
    try:
        return int(value)
    except ValueError:
        msg = f"{path}: line {line}: {name} {value!r} is not an integer"
        raise ValueError(msg) from None


def local_noon(start: date, offset: int, zone: ZoneInfo) -> datetime:
    """Local noon in ``zone`` on ``start + offset`` days (no clock change skips noon)."""
    return datetime.combine(start + timedelta(days=offset), _NOON, tzinfo=zone)


def read_oulad_vle(
    path: Path,
    *,
    start: date,
    zone: ZoneInfo,
    sites: Mapping[str, str] | None = None,
) -> Iterator[dict[str, object]]:
    """Yield one schema-v1 VLE event per row of OULAD ``studentVle.csv``, dated local noon.

    ``start`` is the presentation's first day (OULAD day 0); ``sites`` (from
    :func:`read_oulad_sites`) names each site's activity type, else the action is "clicked".
    The event id ends with the 1-based data row number, so duplicate daily rows stay distinct.
    """
    for row_number, (line, row) in enumerate(_open_rows(path, VLE_COLUMNS), start=1):
        offset = _integer(path, line, "date", row["date"])
        _integer(path, line, "sum_click", row["sum_click"])
        module, presentation = row["code_module"], row["code_presentation"]
        student, site = row["id_student"], row["id_site"]
        action = sites.get(site, "clicked") if sites is not None else "clicked"
        yield {
            "schema_version": 1,
            "event_id": f"oulad-{module}-{presentation}-{student}-{site}-{offset}-{row_number}",
            "student_id": student,
            "occurred_at": local_noon(start, offset, zone).isoformat(),
            "source": "vle",
            "platform": "oulad",
            "course": f"{module}-{presentation}",
            "action": action,
            "resource": f"site-{site}",
        }


def read_oulad_sites(path: Path) -> dict[str, str]:
    """Map each id_site in OULAD ``vle.csv`` to its activity_type (resource, forumng, quiz...)."""
    sites: dict[str, str] = {}
    for line, row in _open_rows(path, SITE_COLUMNS):
        site, activity = row["id_site"], row["activity_type"]
        if sites.setdefault(site, activity) != activity:
            msg = f"{path}: line {line}: site {site} has two activity types"
            raise ValueError(msg)
    return sites


def read_outcomes(path: Path, *, course: str | None = None) -> dict[str, str]:
    """Map student id to lower-cased final outcome, keeping the worst when a student repeats.

    Reads OULAD ``studentOutcome.csv``/``studentInfo.csv`` (id_student, final_result; other
    columns are ignored, never kept) or a generic ``student_id,outcome`` CSV. ``course``
    ("AAA-2013J") keeps only that presentation's OULAD rows.
    """
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = {name.strip() for name in next(csv.reader(handle), [])}
    if set(_OULAD_OUTCOME_COLUMNS) <= header:
        id_column, outcome_column = _OULAD_OUTCOME_COLUMNS
    elif set(_GENERIC_OUTCOME_COLUMNS) <= header:
        id_column, outcome_column = _GENERIC_OUTCOME_COLUMNS
    else:
        msg = (
            f"{path}: line 1: expected columns {','.join(_OULAD_OUTCOME_COLUMNS)} (OULAD) "
            f"or {','.join(_GENERIC_OUTCOME_COLUMNS)}"
        )
        raise ValueError(msg)
    required: tuple[str, ...] = (id_column, outcome_column)
    if course is not None:
        required = (*required, "code_module", "code_presentation")
    outcomes: dict[str, str] = {}
    for line, row in _open_rows(path, required):
        if course is not None and f"{row['code_module']}-{row['code_presentation']}" != course:
            continue
        outcome = row[outcome_column].lower()
        if outcome not in _BADNESS:
            msg = (
                f"{path}: line {line}: outcome {row[outcome_column]!r} is not one of "
                f"{', '.join(sorted(_BADNESS))}"
            )
            raise ValueError(msg)
        student = row[id_column]
        previous = outcomes.get(student)
        if previous is None or _BADNESS[outcome] > _BADNESS[previous]:
            outcomes[student] = outcome
    return outcomes


def is_adverse(outcome: str) -> bool:
    """Whether an outcome is one a nudge hopes to prevent: withdrawn or fail."""
    return outcome.strip().lower() in _ADVERSE
