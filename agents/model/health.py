"""Source health: find feeds and locations that went quiet against their own normal pattern.

Pure functions over activity counts (events per source, location and local hour) and the
timetable. Three checks, each over one closed day; which feeds each one watches, and which
feeds a gap makes unreliable, is registered with the source kind (``schemas.sources``):

- *pattern*: a location (a building's doors, or the whole VLE feed) that had events in this
  hour on most of the previous days of the same kind (weekdays or weekends), enough that
  silence by chance is very unlikely, and had none today;
- *doors*: a timetabled session in a building whose doors are normally read, with no swipe at
  that building from the hour before the session to its end;
- *registers*: a module with sessions today and not a single attendance mark all day.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from agents.model.reference import Enrolment, Session
from schemas.common import Source
from schemas.health import SourceGap
from schemas.sources import SOURCES, SourceRegistry, TimetableCheck

LONDON = ZoneInfo("Europe/London")
Activity = Mapping[tuple[str, int], int]
"""(location, local hour) → events on one day of one source."""


@dataclass(frozen=True)
class HealthConfig:
    """How sure a silence must be before it counts as a gap.

    An hour is *normally busy* when, on the days of the same kind (weekdays, or weekend days)
    among the previous ``pattern_days``, it had events on at least ``pattern_share`` of them
    and on at least ``pattern_min_days``, with a mean of ``min_expected`` events or more.
    """

    pattern_days: int = 14
    pattern_min_days: int = 3
    pattern_share: float = 1.0
    min_expected: float = 8.0  # mean events/hour; P(silence by chance) = e^-8 ≈ 0.03%


def _gap(
    source: str,
    location: str,
    day: int,
    hours: tuple[int, int],
    reason: str,
    sources: SourceRegistry,
    **extra: object,
) -> SourceGap:
    text = f"{source}|{location}|{day}|{hours[0]}|{hours[1]}|{reason}"
    gap_id = "g_" + hashlib.sha256(text.encode()).hexdigest()[:24]
    return SourceGap.model_validate(
        {
            "gap_id": gap_id,
            "source": source,
            "location": location,
            "day": date.fromordinal(day),
            "start_hour": hours[0],
            "end_hour": hours[1],
            "reason": reason,
            "affects": sources[source].gap_affects,
            **extra,
        },
        context={"sources": sources},
    )


def _runs(hours: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for hour in sorted(hours):
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + 1)
        else:
            runs.append((hour, hour + 1))
    return runs


def _weekend(day: int) -> bool:
    return date.fromordinal(day).weekday() >= 5


def local_hours(day: int, zone: ZoneInfo) -> list[int]:
    """The local hours that exist on a day (one is missing when the clocks go forward)."""
    d = date.fromordinal(day)
    hours = []
    for hour in range(24):
        moment = datetime(d.year, d.month, d.day, hour, tzinfo=zone)
        if moment.astimezone(UTC).astimezone(zone).hour == hour:
            hours.append(hour)
    return hours


def pattern_gaps(
    source: str,
    day: int,
    history: Mapping[int, Activity],
    config: HealthConfig,
    zone: ZoneInfo = LONDON,
    sources: SourceRegistry = SOURCES,
) -> list[SourceGap]:
    """Hours a location was silent although it is normally busy then, on this kind of day."""
    kind = sources[source]
    today = history.get(day, {})
    earlier = range(day - config.pattern_days, day)
    past = [history.get(d, {}) for d in earlier if _weekend(d) == _weekend(day)]
    locations = sorted({loc for counts in past for loc, _ in counts})
    needed = max(config.pattern_min_days, math.ceil(config.pattern_share * len(past)))
    gaps = []
    for location in locations:
        silent = []
        for hour in local_hours(day, zone):
            seen = [c for counts in past if (c := counts.get((location, hour), 0)) > 0]
            if (
                len(seen) >= needed
                and sum(seen) / len(past) >= config.min_expected
                and today.get((location, hour), 0) == 0
            ):
                silent.append(hour)
        for start, end in _runs(silent):
            whole = kind.health.whole_feed and location == "all"
            where = f"the {kind.title} feed" if whole else f"{location} ({source})"
            detail = (
                f"{where} had no events from {start:02d}:00 to {end:02d}:00, when it is "
                f"normally busy (events in that hour on at least {needed} of the previous "
                f"{len(past)} {'weekend days' if _weekend(day) else 'weekdays'})"
            )
            gaps.append(
                _gap(
                    source,
                    location,
                    day,
                    (start, end),
                    "silent_against_pattern",
                    sources,
                    detail=detail,
                )
            )
    return gaps


def door_gaps(
    day: int,
    swipes: Mapping[int, Activity],
    sessions: Sequence[Session],
    config: HealthConfig,
    source: str = Source.SWIPE,
    sources: SourceRegistry = SOURCES,
) -> list[SourceGap]:
    """Sessions in buildings whose doors are normally read, with no swipe around them."""
    known = {loc for d in range(day - config.pattern_days, day) for loc, _ in swipes.get(d, {})}
    today = swipes.get(day, {})
    silent: dict[tuple[str, int, int], list[str]] = {}
    for session in sessions:
        if session.building not in known:
            continue
        hours = range(max(0, session.start_hour - 1), session.end_hour)
        if all(today.get((session.building, h), 0) == 0 for h in hours):
            key = (session.building, hours.start, hours.stop)
            silent.setdefault(key, []).append(session.module)
    gaps = []
    for (building, start, end), modules in sorted(silent.items()):
        detail = (
            f"no card swipes at {building} from {start:02d}:00 to {end:02d}:00 although "
            f"{', '.join(sorted(set(modules)))} had a session there: the door readers may have "
            "been offline, so card-captured attendance is not trusted"
        )
        gaps.append(
            _gap(
                source,
                building,
                day,
                (start, end),
                "door_silent_during_session",
                sources,
                modules=tuple(sorted(set(modules))),
                detail=detail,
            )
        )
    return gaps


def register_gaps(
    day: int,
    marks: Activity,
    sessions: Sequence[Session],
    source: str = Source.ATTENDANCE,
    sources: SourceRegistry = SOURCES,
) -> list[SourceGap]:
    """Modules with sessions today and no attendance mark at all."""
    marked = {module for module, _ in marks}
    by_module: dict[str, list[Session]] = {}
    for session in sessions:
        by_module.setdefault(session.module, []).append(session)
    gaps = []
    for module, held in sorted(by_module.items()):
        if module in marked:
            continue
        start = min(s.start_hour for s in held)
        end = max(s.end_hour for s in held)
        detail = (
            f"{module} had {len(held)} timetabled session(s) but no attendance marks were "
            "received all day: the register may not have been taken or uploaded"
        )
        gaps.append(
            _gap(
                source,
                module,
                day,
                (start, end),
                "register_without_marks",
                sources,
                modules=(module,),
                detail=detail,
            )
        )
    return gaps


def find_gaps(
    day: int,
    activity: Mapping[str, Mapping[int, Activity]],
    sessions: Sequence[Session],
    config: HealthConfig | None = None,
    zone: ZoneInfo = LONDON,
    sources: SourceRegistry = SOURCES,
) -> list[SourceGap]:
    """Every gap of one closed day; ``activity`` is source → day → counts for day and before.

    Pattern checks come first, whole feeds before feeds read per location, then the doors
    and then the registers checks against the timetable.
    """
    config = config or HealthConfig()
    kinds = list(sources.values())
    patterned = sorted(
        (k for k in kinds if k.health.pattern), key=lambda k: not k.health.whole_feed
    )
    gaps: list[SourceGap] = []
    for kind in patterned:
        gaps += pattern_gaps(kind.name, day, activity.get(kind.name, {}), config, zone, sources)
    for kind in kinds:
        if kind.health.timetable is TimetableCheck.DOORS:
            history = activity.get(kind.name, {})
            gaps += door_gaps(day, history, sessions, config, kind.name, sources)
    for kind in kinds:
        if kind.health.timetable is TimetableCheck.REGISTERS:
            marks = activity.get(kind.name, {}).get(day, {})
            gaps += register_gaps(day, marks, sessions, kind.name, sources)
    return gaps


def watched_sources(sources: SourceRegistry = SOURCES) -> tuple[str, ...]:
    """The feeds whose activity some health check reads, in registration order."""
    return tuple(str(name) for name, kind in sources.items() if kind.health.watched)


def covers(gap: SourceGap, enrolment: Enrolment | None) -> bool:
    """Whether a gap covers a student: module gaps cover the module's students, others all.

    A student without a roster entry is covered by every gap: without knowing their modules
    we cannot rule the gap out, and a data gap must never produce a nudge.
    """
    if not gap.modules or enrolment is None:
        return True
    return not enrolment.modules.isdisjoint(gap.modules)
