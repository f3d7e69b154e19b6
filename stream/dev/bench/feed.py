"""The backlog the throughput run publishes: a deterministic, time-ordered synthetic feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.common import Source

TERM_START = datetime(2026, 9, 28, 8, 0, tzinfo=UTC)


def synthetic_events(
    count: int, students: int | None = None
) -> list[tuple[Source, dict[str, Any]]]:
    """A deterministic, time-ordered mixed feed over four weeks: 70% VLE, 20% swipes, 10% marks.

    The cohort is sized so that each student has ~200 events in the four weeks (about seven a
    day), as an engaged student does; a handful of nudges result, as in a real week.
    """
    cohort = students or max(50, count // 200)
    events: list[tuple[Source, dict[str, Any]]] = []
    span_s = 28 * 86_400
    for n in range(count):
        student = f"B{n % cohort:07d}"
        offset_s = n * span_s // count
        when = (TERM_START + timedelta(seconds=offset_s)).isoformat()
        common = {"event_id": f"bench-{n}", "student_id": student, "occurred_at": when}
        kind = n % 10
        if kind < 7:
            events.append(
                (
                    Source.VLE,
                    {
                        **common,
                        "platform": "moodle",
                        "course": f"MOD{n % 12:03d}",
                        "action": "viewed",
                        "resource": f"week-{n % 10}",
                    },
                )
            )
        elif kind < 9:
            events.append(
                (
                    Source.SWIPE,
                    {
                        **common,
                        "reader_id": f"R{n % 40:02d}",
                        "building": "Library",
                        "direction": "in",
                    },
                )
            )
        else:
            events.append(
                (
                    Source.ATTENDANCE,
                    {
                        **common,
                        # A timetabled session happens on one day: a new id each day.
                        "session_id": f"S{n % 500}-d{offset_s // 86_400}",
                        "module": f"MOD{n % 12:03d}",
                        "expected_start": when,
                        "expected_end": when,
                        "status": "present",
                        "capture_method": "card",
                    },
                )
            )
    return events
