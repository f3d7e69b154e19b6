"""One student's day facts as their state hash holds them.

The worker's script keeps, per day, ``a:{day}`` (register marks: present, late, absent,
excused, comma-separated) and ``d:{day}:{source}`` (events counted per source). The worker
reads many students' chosen days at once with HMGET (``EngagementStore.load_students``); the
API reads one student's whole hash with one HGETALL (``EngagementStore.load_student``), which
costs Redis no more and saves packing hundreds of field names on every request. Both build
their facts here, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from agents.model.score import DayFacts
from schemas.common import Source
from schemas.sources import SOURCES

COUNTED: Final[tuple[str, ...]] = tuple(name for name in SOURCES if name != Source.ATTENDANCE)
_POSITION: Final = {name: n for n, name in enumerate(COUNTED)}


def text(value: Any) -> str:
    """A reply value as text (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def day_facts(marks: Any, counts: Sequence[Any]) -> DayFacts:
    """One day from its marks field and its counts in ``COUNTED`` order (absent ones None)."""
    p, lt, ab, ex = (int(c) for c in text(marks).split(",")) if marks else (0,) * 4
    by = dict(zip(COUNTED, (int(c or 0) for c in counts), strict=True))
    swipes, vle = by.pop(Source.SWIPE), by.pop(Source.VLE)
    others = tuple(sorted((s, c) for s, c in by.items() if c))
    return DayFacts(p, lt, ab, ex, swipes=swipes, vle=vle, others=others)


def facts_from_hash(raw: Mapping[Any, Any], first: int, last: int) -> dict[int, DayFacts]:
    """Days ``first``..``last`` of a whole state hash: a day is there when any of its fields
    is, exactly as ``load_students`` reads the same days field by field."""
    marks: dict[int, Any] = {}
    counts: dict[int, list[Any]] = {}
    for key, value in raw.items():
        name = text(key)
        if name.startswith("a:"):
            day = int(name[2:])
            if first <= day <= last:
                marks[day] = value
        elif name.startswith("d:"):
            _, day_text, source = name.split(":", 2)
            n = _POSITION.get(source)
            day = int(day_text)
            if n is not None and first <= day <= last:
                counts.setdefault(day, [None] * len(COUNTED))[n] = value
    empty = [None] * len(COUNTED)
    return {
        day: day_facts(marks.get(day), counts.get(day, empty))
        for day in sorted(marks.keys() | counts.keys())
    }
