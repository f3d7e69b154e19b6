"""What the retention job removes: decisions from the register, the periods and the times.

Pure (no Redis, no clock): ``sinks.retention.expire`` reads keys and entries, asks here what
goes, and removes it. A family is touched only when its retention class has a period, and
then by its shape:

- a list (entries appended oldest first, each a JSON object with a time): the entries at its
  head older than the period go; the first newer or undated entry stops the trim (work
  queues, ``WORK_QUEUES``, are left to their consumer);
- a hash about one student by its value (a review item): the whole key goes once it is
  decided (``decided`` = 1) and its newest time is older than the period;
- a string about nobody whose value carries a time (an erasure receipt): the key goes when
  that time is older than the period.

Everything else is left to its own expiry (``expiry`` in the register) or to erasure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final, Literal

from schemas.keys import REGISTER, KeyFamily, Retention

# The fields that date an entry, in the order they are looked for: a record's decision, an
# audit entry, an erasure, a preference change applied, a review item queued.
TIME_FIELDS: Final = ("decided_at", "at", "erased_at", "applied_at", "changed_at", "queued_at")
DECIDED_MARK: Final = "decided"
WITHDRAWN: Final = "withdrawn"
# Lists that are work waiting for its consumer, not data kept: the outbox's publisher trims
# the head it has just published, so a trim by age at the same moment would make it remove
# records it never sent. Its records are kept in the students' lists, which do expire.
WORK_QUEUES: Final = frozenset({"outbox"})

Shape = Literal["head", "closed", "dated"]
Periods = Mapping[Retention, int]


@dataclass(frozen=True)
class Target:
    """One family the job visits, how it expires, and its class's period in days."""

    family: KeyFamily
    shape: Shape
    days: int


def periods(**days: int | None) -> dict[Retention, int]:
    """Class name → days (None: the class is not touched) as a mapping by retention class."""
    return {Retention(name): value for name, value in days.items() if value is not None}


def targets(by_class: Periods, register: Iterable[KeyFamily] = REGISTER) -> list[Target]:
    """The families the job visits: those whose class has a period and whose shape it knows."""
    out = []
    for family in register:
        days = by_class.get(family.retention)
        if days is None or family.name in WORK_QUEUES:
            continue
        if family.redis_type == "list":
            out.append(Target(family, "head", days))
        elif family.redis_type == "hash" and family.about == "value":
            out.append(Target(family, "closed", days))
        elif family.redis_type == "string" and family.about == "no":
            out.append(Target(family, "dated", days))
    return out


def cutoff(now: datetime, days: int) -> datetime:
    """Entries dated before this are older than ``days``."""
    if now.utcoffset() is None:
        msg = f"a timezone-aware time is needed, got {now!r}"
        raise ValueError(msg)
    return now - timedelta(days=days)


def entry_time(value: str | bytes | None) -> datetime | None:
    """The time of a JSON entry (the first of ``TIME_FIELDS`` it has), or None if undated."""
    if value is None:
        return None
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return _iso(value)
    if not isinstance(data, dict):
        return None
    for name in TIME_FIELDS:
        moment = _iso(data.get(name))
        if moment is not None:
            return moment
    return None


def _iso(value: object) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None  # a naive time dates nothing


def expired_head(rows: Sequence[str | bytes], before: datetime) -> int:
    """How many rows at the head of an oldest-first list are dated before ``before``.

    The first row that is newer, or has no time, stops the count: an entry whose age is not
    known is kept, and so is everything after it."""
    count = 0
    for row in rows:
        moment = entry_time(row)
        if moment is None or moment >= before:
            break
        count += 1
    return count


def closed_expired(fields: Mapping[str, str], before: datetime) -> bool:
    """Whether a hash is decided and its newest dated field is before ``before``."""
    if fields.get(DECIDED_MARK) != "1":
        return False
    times = [t for t in (entry_time(v) for v in fields.values()) if t is not None]
    return bool(times) and max(times) < before


def dated_expired(value: str | bytes | None, before: datetime) -> bool:
    """Whether a string's value is dated before ``before`` (undated values are kept)."""
    moment = entry_time(value)
    return moment is not None and moment < before


def withdrawn_past_grace(exemptions: Mapping[str, str], today: date, grace_days: int) -> bool:
    """Whether one student's exemptions (id → stored JSON) say they withdrew more than
    ``grace_days`` before ``today`` and are withdrawn still (no end, or an end not yet past)."""
    for raw in exemptions.values():
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(data, dict) or data.get("kind") != WITHDRAWN:
            continue
        start, end = data.get("start"), data.get("end")
        if not isinstance(start, int) or isinstance(start, bool):
            continue
        if isinstance(end, int) and end < today.toordinal():
            continue  # the withdrawal was ended: the student came back
        if start + grace_days < today.toordinal():
            return True
    return False
