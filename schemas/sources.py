"""The source kinds the product accepts, registered in one place.

Each kind of feed (card swipes, attendance marks, VLE activity, ...) is one ``SourceKind``: its
name, the model of one raw event, its raw topic, whether it is a live feed or an uploaded
register, the event fields that become a signal's kind and context, and how source health
watches it. Everything that lists or looks up sources — topics, ingest, metrics, health, the
words in a nudge — reads ``SOURCES``, so adding a feed is a model (derived from
``schemas.feeds.RawEvent``) and one ``SourceKind`` in ``_BUILT_IN`` below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationInfo

from schemas.common import Source
from schemas.errors import ConfigError
from schemas.feeds import AttendanceMark, CardSwipe, LibraryActivity, RawEvent, VleActivity

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


class Cadence(StrEnum):
    """How a feed's events arrive (DESIGN decision 17: lateness per source)."""

    LIVE = "live"
    """As they happen (door readers, VLE clicks): seconds behind event time."""
    REGISTER = "register"
    """Uploaded in batches, often a day late (attendance registers)."""


class TimetableCheck(StrEnum):
    """A health check of a feed against the timetable of one day."""

    DOORS = "doors"
    """A session in a building whose readers are normally busy, with no event there around it."""
    REGISTERS = "registers"
    """A module with sessions that day and not a single event for it all day."""


@dataclass(frozen=True)
class Health:
    """How source health watches a feed, and what a gap in it makes unreliable."""

    pattern: bool = False
    """Silence in an hour the feed (or one of its locations) is normally busy is a gap."""
    whole_feed: bool = False
    """The feed counts as one location ('all') rather than one per signal context."""
    timetable: TimetableCheck | None = None
    also_affects: tuple[str, ...] = ()
    """Other feeds whose data a gap in this one makes unreliable (card-captured attendance)."""

    @property
    def watched(self) -> bool:
        """Whether any health check reads this feed's activity."""
        return self.pattern or self.timetable is not None


@dataclass(frozen=True)
class SourceKind:
    """One kind of feed and every fact the code keys on about it."""

    name: str
    """The signal's ``source``, the metric label, the file and CLI name (e.g. ``vle``)."""
    model: type[RawEvent]
    """The schema of one raw event; its ``source`` field defaults to ``name``."""
    cadence: Cadence
    signal_kind: str
    """The event field that becomes the signal's ``kind`` (status, action, direction)."""
    signal_context: str
    """The event field that becomes the signal's ``context`` (module, course, building)."""
    title: str
    """The feed in a sentence: 'the VLE feed'."""
    activity: str
    """Where a student is active on it, as a nudge says it: 'online', 'on campus'."""
    health: Health = field(default_factory=Health)
    topic: str = ""
    """The raw topic's last part (``engagement.raw.<topic>``); empty: the name."""

    def __post_init__(self) -> None:
        problems = []
        if not _NAME.match(self.name):
            problems.append("the name must be 2-32 lower-case letters, digits or _")
        fields = self.model.model_fields
        for what, name in (
            ("signal_kind", self.signal_kind),
            ("signal_context", self.signal_context),
        ):
            if name not in fields:
                problems.append(f"{what} {name!r} is not a field of {self.model.__name__}")
        declared = fields["source"].default if "source" in fields else None
        if declared != self.name:
            problems.append(f"{self.model.__name__}.source must default to {self.name!r}")
        if problems:
            msg = f"source kind {self.name!r}: " + "; ".join(problems)
            raise ConfigError(msg)

    @property
    def raw_topic(self) -> str:
        """The raw topic's name without the deployment prefix."""
        return f"engagement.raw.{self.topic or self.name}"

    @property
    def gap_affects(self) -> tuple[str, ...]:
        """The feeds whose data a gap in this one makes unreliable, itself first."""
        return (self.name, *self.health.also_affects)

    def kind_and_context(self, event: RawEvent) -> tuple[str, str]:
        """The signal's ``kind`` and ``context`` from a valid event of this feed."""
        return getattr(event, self.signal_kind), getattr(event, self.signal_context)


class SourceRegistry(Mapping[str, SourceKind]):
    """Source kinds by name, in registration order. Tests extend a ``copy()``."""

    def __init__(self, kinds: Iterable[SourceKind] = ()) -> None:
        self._kinds: dict[str, SourceKind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: SourceKind) -> SourceKind:
        """Add a kind; a name or raw topic that is taken already is a configuration error."""
        if kind.name in self._kinds:
            msg = f"source kind {kind.name!r} is registered already"
            raise ConfigError(msg)
        clash = [k.name for k in self._kinds.values() if k.raw_topic == kind.raw_topic]
        if clash:
            msg = f"source kind {kind.name!r} would share {kind.raw_topic} with {clash[0]}"
            raise ConfigError(msg)
        self._kinds[kind.name] = kind
        return kind

    def copy(self) -> SourceRegistry:
        """A registry with the same kinds, to extend without changing this one."""
        return SourceRegistry(self._kinds.values())

    def __getitem__(self, name: str) -> SourceKind:
        try:
            return self._kinds[name]
        except KeyError:
            msg = f"unknown source {name!r}; expected one of {', '.join(self._kinds)}"
            raise KeyError(msg) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    @property
    def models(self) -> Mapping[str, type[RawEvent]]:
        """The event model of each source, by name (a view: later registrations show)."""
        return _Models(self)


class _Models(Mapping[str, type[RawEvent]]):
    """A read-only view of a registry's event models."""

    def __init__(self, registry: SourceRegistry) -> None:
        self._registry = registry

    def __getitem__(self, name: str) -> type[RawEvent]:
        return self._registry[name].model

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)


_BUILT_IN = (
    SourceKind(
        name=Source.SWIPE,
        model=CardSwipe,
        cadence=Cadence.LIVE,
        signal_kind="direction",
        signal_context="building",
        title="card-swipe",
        activity="on campus",
        # Doors are read per building; a silent door also casts doubt on card-captured marks.
        health=Health(
            pattern=True, timetable=TimetableCheck.DOORS, also_affects=(Source.ATTENDANCE,)
        ),
    ),
    SourceKind(
        name=Source.ATTENDANCE,
        model=AttendanceMark,
        cadence=Cadence.REGISTER,
        signal_kind="status",
        signal_context="module",
        title="attendance",
        activity="at a timetabled session",
        health=Health(timetable=TimetableCheck.REGISTERS),
    ),
    SourceKind(
        name=Source.VLE,
        model=VleActivity,
        cadence=Cadence.LIVE,
        signal_kind="action",
        signal_context="course",
        title="VLE",
        activity="online",
        health=Health(pattern=True, whole_feed=True),
    ),
    SourceKind(
        name=Source.LIBRARY,
        model=LibraryActivity,
        cadence=Cadence.LIVE,
        signal_kind="activity",
        signal_context="service",
        title="library",
        activity="using the library",
        # Loans and bookings are sparse and seasonal: an hour without one is no gap.
        health=Health(),
    ),
)

SOURCES = SourceRegistry(_BUILT_IN)
"""Every source kind this product accepts."""


def _registered(name: str, info: ValidationInfo) -> str:
    """A registered source's name (validation ``context={"sources": ...}`` picks a registry)."""
    context: Any = info.context
    registry = context.get("sources", SOURCES) if isinstance(context, dict) else SOURCES
    if name not in registry:
        msg = f"unknown source {name!r}; expected one of {', '.join(registry)}"
        raise ValueError(msg)
    return registry[name].name


RegisteredSource = Annotated[str, AfterValidator(_registered)]
"""A field holding the name of a registered source kind."""
