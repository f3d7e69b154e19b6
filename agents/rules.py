"""Rule arithmetic and nudge construction: pure functions, unit-tested without a broker."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from schemas.nudges import Explanation, Nudge
from schemas.rules import AttendanceRateRule, VleAbsenceRule
from stream.eventtime import MS_PER_DAY, from_epoch_ms, local_day_of_ms

ATTENDANCE_STATUSES = ("present", "late", "absent", "excused")


def nudge_id(rule_id: str, rule_version: int, pseudonym: str, start: date, end: date) -> str:
    """Deterministic id of one rule's decision about one student over one window."""
    text = f"{rule_id}|{rule_version}|{pseudonym}|{start.isoformat()}|{end.isoformat()}"
    return "n_" + hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class AttendanceDay:
    """Marks on one day."""

    present: int = 0
    late: int = 0
    absent: int = 0
    excused: int = 0

    @property
    def expected(self) -> int:
        """Sessions the student was expected at: excused absences do not count."""
        return self.present + self.late + self.absent

    @property
    def attended(self) -> int:
        """Sessions attended, late or not."""
        return self.present + self.late


@dataclass(frozen=True)
class AttendanceWindow:
    """Attendance totals over the window ending on ``end_day``."""

    start_day: int
    end_day: int
    attended: int
    expected: int
    first_session_day: int | None = None

    @property
    def rate(self) -> float:
        """Share of expected sessions attended (1.0 when none were expected)."""
        return self.attended / self.expected if self.expected else 1.0


def attendance_window(
    days: Mapping[int, AttendanceDay], end_day: int, length: int
) -> AttendanceWindow:
    """Sum the marks of the ``length`` days ending on ``end_day`` (inclusive)."""
    start = end_day - length + 1
    attended = expected = 0
    first: int | None = None
    for day in range(start, end_day + 1):
        marks = days.get(day)
        if marks is not None:
            attended += marks.attended
            expected += marks.expected
            if first is None and marks.expected:
                first = day
    return AttendanceWindow(start, end_day, attended, expected, first)


def attendance_breaches(
    rule: AttendanceRateRule,
    days: Mapping[int, AttendanceDay],
    first_day: int,
    last_day: int,
    last_nudged_day: int | None,
) -> list[AttendanceWindow]:
    """Windows ending in [first_day, last_day] that breach the rule, honouring its cooldown.

    Every end day is evaluated in order, so the outcome does not depend on how events were
    batched: a live run and a replay of the same events give the same windows.
    """
    breaches: list[AttendanceWindow] = []
    last = last_nudged_day
    for end_day in range(first_day, last_day + 1):
        if last is not None and end_day - last < rule.cooldown_days:
            continue
        window = attendance_window(days, end_day, rule.window_days)
        if window.expected >= rule.min_sessions and window.rate < rule.threshold:
            breaches.append(window)
            last = end_day
    return breaches


def _pretty(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def attendance_nudge(
    rule: AttendanceRateRule, pseudonym: str, window: AttendanceWindow, zone: ZoneInfo
) -> Nudge:
    """The nudge for one breached attendance window, explained in words a student can read."""
    start, end = date.fromordinal(window.start_day), date.fromordinal(window.end_day)
    created = datetime.combine(end, datetime.max.time(), tzinfo=zone).replace(microsecond=0)
    # Rounded down, so a rate just under the threshold never reads as equal to it.
    percent = math.floor(window.rate * 100)
    # The sentence starts at the first session in the window, not before term began.
    since = date.fromordinal(window.first_session_day or window.start_day)
    summary = (
        f"Between {_pretty(since)} and {_pretty(end)} you attended {window.attended} of the "
        f"{window.expected} timetabled sessions you were expected at ({percent}%). "
        f"We get in touch when attendance over {rule.window_days} days falls below "
        f"{round(rule.threshold * 100)}%, because it is often a sign that something is making "
        "study harder, and support is available."
    )
    return Nudge(
        nudge_id=nudge_id(rule.id, rule.version, pseudonym, start, end),
        pseudonym=pseudonym,
        rule_id=rule.id,
        rule_version=rule.version,
        tier=rule.tier,
        channels=rule.channels,
        created_at=created,
        explanation=Explanation(
            summary=summary,
            metrics={
                "sessions_attended": window.attended,
                "sessions_expected": window.expected,
                "attendance_rate": round(window.rate, 4),
            },
            threshold=(
                f"attendance below {round(rule.threshold * 100)}% of at least "
                f"{rule.min_sessions} timetabled sessions over {rule.window_days} days"
            ),
            window_start=start,
            window_end=end,
            sources=("attendance",),
        ),
    )


def vle_absence_nudge(
    rule: VleAbsenceRule, pseudonym: str, last_seen_ms: int, zone: ZoneInfo
) -> Nudge:
    """The nudge for a VLE absence that began at ``last_seen_ms``.

    The window runs from the day of the last VLE activity (or, for a student never seen on
    the VLE, the first event of any kind) to the day the absence reached the threshold. The
    id depends only on that, so the sweep and the gap check agree, and replays match.
    """
    deadline_ms = last_seen_ms + rule.days * MS_PER_DAY
    start = date.fromordinal(local_day_of_ms(last_seen_ms, zone))
    end = date.fromordinal(local_day_of_ms(deadline_ms, zone))
    summary = (
        f"We have not seen you in the online learning environment since {_pretty(start)}: "
        f"that is {rule.days} days. Course materials, announcements and discussions are there, "
        "and if something is getting in the way, your personal tutor and student support can help."
    )
    return Nudge(
        nudge_id=nudge_id(rule.id, rule.version, pseudonym, start, end),
        pseudonym=pseudonym,
        rule_id=rule.id,
        rule_version=rule.version,
        tier=rule.tier,
        channels=rule.channels,
        created_at=from_epoch_ms(deadline_ms),
        explanation=Explanation(
            summary=summary,
            metrics={"days_without_vle_activity": rule.days},
            threshold=f"no VLE activity for {rule.days} days",
            window_start=start,
            window_end=end,
            sources=("vle",),
        ),
    )
