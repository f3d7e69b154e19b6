"""The source-kind registry: the shipped feeds as they were, and a new feed (a sports centre's
visits, registered on a copy of the registry) seen by everything that lists sources —
topics, ingest, metrics, source health and validation — without editing any of them."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter, ValidationError

from agents.decode import Origin
from agents.engagement import initial_health
from agents.ingest import raw_ingestors
from agents.model.health import HealthConfig, find_gaps, watched_sources
from agents.model.rules import evaluate_day
from agents.model.score import DayFacts
from agents.model.student import Student
from ops.metrics import create_metrics, initialise_labels
from schemas.common import Source
from schemas.errors import ConfigError
from schemas.events import MODEL_BY_SOURCE, Envelope
from schemas.feeds import AttendanceMark, CardSwipe, LibraryActivity, RawEvent, VleActivity
from schemas.fields import ShortText
from schemas.health import SourceGap
from schemas.rules import SourceName, load_rules
from schemas.settings import Settings, load_settings
from schemas.signals import Signal
from schemas.sources import (
    SOURCES,
    Cadence,
    Health,
    SourceKind,
    SourceRegistry,
    TimetableCheck,
)
from schemas.topics import TopicNames

DAY = date(2026, 11, 11).toordinal()  # a Wednesday in term
LONDON = ZoneInfo("Europe/London")


class GymVisit(RawEvent):
    """A test feed: a student's booking, class or gate entry at a sports centre."""

    source: Literal["gym"] = "gym"
    branch: ShortText
    action: Literal["booking", "class", "entry"]


class BookLoan(RawEvent):
    """Another test feed, to clash with the gym's raw topic."""

    source: Literal["books"] = "books"
    branch: ShortText
    action: Literal["loan", "return"]


GYM = SourceKind(
    name="gym",
    model=GymVisit,
    cadence=Cadence.LIVE,
    signal_kind="action",
    signal_context="branch",
    title="sports centre",
    activity="at the sports centre",
    health=Health(pattern=True),
)


@pytest.fixture
def sources() -> SourceRegistry:
    """The shipped kinds plus the gym, on a copy: the real registry is never changed."""
    registry = SOURCES.copy()
    registry.register(GYM)
    return registry


@pytest.fixture
def settings() -> Settings:
    return load_settings(pseudonym_key="k" * 20, topic_prefix="t.")


# -- the shipped kinds -----------------------------------------------------------------------


def test_the_shipped_kinds_are_the_source_names_in_their_order() -> None:
    assert list(SOURCES) == list(Source) == ["swipe", "attendance", "vle", "library"]
    assert all(SOURCES[s].name is s for s in Source)  # validation gives back the enum member
    assert dict(MODEL_BY_SOURCE) == {
        Source.SWIPE: CardSwipe,
        Source.ATTENDANCE: AttendanceMark,
        Source.VLE: VleActivity,
        Source.LIBRARY: LibraryActivity,
    }


def test_the_shipped_facts_are_the_ones_the_code_used_to_spell_out() -> None:
    facts = {
        name: (kind.signal_kind, kind.signal_context, kind.activity, kind.gap_affects)
        for name, kind in SOURCES.items()
    }
    assert facts == {
        "swipe": ("direction", "building", "on campus", ("swipe", "attendance")),
        "attendance": ("status", "module", "at a timetabled session", ("attendance",)),
        "vle": ("action", "course", "online", ("vle",)),
        "library": ("activity", "service", "using the library", ("library",)),
    }
    assert [SOURCES[s].cadence for s in Source] == [
        Cadence.LIVE,
        Cadence.REGISTER,
        Cadence.LIVE,
        Cadence.LIVE,
    ]
    assert SOURCES["swipe"].health.timetable is TimetableCheck.DOORS
    assert SOURCES["attendance"].health.timetable is TimetableCheck.REGISTERS
    assert [SOURCES[s].health.whole_feed for s in Source] == [False, False, True, False]
    assert watched_sources() == ("swipe", "attendance", "vle")
    assert TopicNames("x.").raw_all == (
        "x.engagement.raw.swipe",
        "x.engagement.raw.attendance",
        "x.engagement.raw.vle",
        "x.engagement.raw.library",
    )


def test_rules_may_name_every_registered_source_and_no_other() -> None:
    for name in SOURCES:
        TypeAdapter(SourceName).validate_python(name)
    with pytest.raises(ValidationError, match="unknown source 'gym'"):
        TypeAdapter(SourceName).validate_python("gym")


def test_an_unknown_source_is_refused_where_a_name_is_read() -> None:
    with pytest.raises(ValueError, match="'gym' is not a registered source"):
        TopicNames().raw("gym")
    with pytest.raises(KeyError, match="unknown source 'gym'"):
        SOURCES["gym"]
    with pytest.raises(ValidationError, match="unknown source 'gym'"):
        Envelope.model_validate({"source": "gym", "events": [{}]})
    assert Envelope.model_validate({"source": "swipe", "events": [{}]}).source is Source.SWIPE


# -- registering -----------------------------------------------------------------------------


def test_a_name_or_raw_topic_cannot_be_registered_twice(sources: SourceRegistry) -> None:
    with pytest.raises(ConfigError, match="registered already"):
        sources.register(GYM)
    clash = SourceKind(
        name="books",
        model=BookLoan,
        cadence=Cadence.LIVE,
        signal_kind="action",
        signal_context="branch",
        title="books",
        activity="reading",
        topic="gym",
    )
    with pytest.raises(ConfigError, match=r"would share engagement\.raw\.gym with gym"):
        sources.register(clash)


def test_a_kind_must_match_its_model() -> None:
    with pytest.raises(ConfigError) as caught:
        SourceKind(
            name="loans",
            model=GymVisit,
            cadence=Cadence.LIVE,
            signal_kind="title",
            signal_context="branch",
            title="loans",
            activity="borrowing",
        )
    message = str(caught.value)
    assert "signal_kind 'title' is not a field of GymVisit" in message
    assert "GymVisit.source must default to 'loans'" in message


def test_registering_on_a_copy_leaves_the_real_registry_alone(sources: SourceRegistry) -> None:
    assert "gym" in sources
    assert "gym" not in SOURCES
    assert len(SOURCES) == 4
    assert sources.models["gym"] is GymVisit


# -- a new feed, seen everywhere sources are listed ------------------------------------------


def test_a_new_feed_gets_its_raw_topic(sources: SourceRegistry) -> None:
    topics = TopicNames("t.", sources)
    assert topics.raw("gym") == "t.engagement.raw.gym"
    assert topics.raw_all[-1] == "t.engagement.raw.gym"
    assert "t.engagement.raw.gym" in topics.all


def test_a_new_feed_is_ingested_into_signals(sources: SourceRegistry, settings: Settings) -> None:
    ingestors = raw_ingestors(settings, sources)
    assert list(ingestors) == [*settings.topics.raw_all, "t.engagement.raw.gym"]
    event = {
        "event_id": "lib-1",
        "student_id": "S1234567",
        "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "branch": "Main Hall",
        "action": "booking",
    }
    result = ingestors["t.engagement.raw.gym"].decode(
        json.dumps(event).encode(), Origin("t.engagement.raw.gym", 0, 7)
    )
    assert result.dead == []
    [signal] = result.signals
    assert (signal["source"], signal["kind"], signal["context"]) == (
        "gym",
        "booking",
        "Main Hall",
    )
    assert type(signal["source"]) is str
    Signal.model_validate(signal, context={"sources": sources})
    with pytest.raises(ValidationError, match="unknown source 'gym'"):
        Signal.model_validate(signal)  # the real registry has no gym feed


def test_a_new_feed_has_its_metrics_series_from_the_start(sources: SourceRegistry) -> None:
    metrics = create_metrics(CollectorRegistry())
    initialise_labels(metrics, "worker", sources=sources)
    read = metrics.registry.get_sample_value
    assert read("engagement_events_received_total", {"source": "gym"}) == 0
    assert read("engagement_events_received_total", {"source": "vle"}) == 0
    assert initial_health(sources)[("gym", "all")] == 1
    assert set(initial_health()) == {
        (name, "all") for name in ("swipe", "attendance", "vle", "library")
    }


def test_a_new_feed_is_watched_for_silence_against_its_pattern(sources: SourceRegistry) -> None:
    assert watched_sources(sources) == ("swipe", "attendance", "vle", "gym")
    busy = {d: {("Main Hall", 10): 20} for d in range(DAY - 14, DAY)}
    activity = {"gym": {**busy, DAY: {("Main Hall", 15): 3}}}
    gaps = find_gaps(DAY, activity, [], HealthConfig(), sources=sources)
    assert [(g.source, g.location, g.reason, g.affects) for g in gaps] == [
        ("gym", "Main Hall", "silent_against_pattern", ("gym",))
    ]
    assert "Main Hall (gym) had no events from 10:00 to 11:00" in gaps[0].detail
    SourceGap.model_validate_json(gaps[0].model_dump_json(), context={"sources": sources})


def test_a_rule_on_the_library_feed_loads_and_reads_library_days(tmp_path: Path) -> None:
    """docs/formats.md's example: a library rule is a rules-file entry, nothing more."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
    example = docs.read_text(encoding="utf-8").split("```toml\n", 1)[1].split("```", 1)[0]
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text("schema_version = 2\n\n" + example, encoding="utf-8")
    (rule,) = load_rules(rules_file).rules
    assert rule.sources == ("library",)
    first = DAY - 40
    borrowed = Student("p_" + "0" * 32, first, {first: DayFacts(others=(("library", 1),))})
    quiet = [n.rule_id for n in evaluate_day(load_rules(rules_file), borrowed, first + 29, LONDON)]
    assert quiet == ["no_library_use_28d"]
    busy = Student(
        "p_" + "1" * 32,
        first,
        {first: DayFacts(others=(("library", 1),)), first + 20: DayFacts(others=(("library", 2),))},
    )
    assert evaluate_day(load_rules(rules_file), busy, first + 29, LONDON) == []
