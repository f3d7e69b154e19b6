"""The cohort simulator: determinism, ground truth, duplicates, malformed input, time and DST."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from schemas.common import Reason, Source, classify_validation_error, find_forbidden
from schemas.events import MODEL_BY_SOURCE
from schemas.sources import SOURCES
from stream.dev.simulate import (
    DISENGAGING,
    Persona,
    SimConfig,
    Simulation,
    publish_simulation,
    simulate,
)
from stream.publisher import (
    MAX_EVENT_BYTES,
    Checked,
    PublishReport,
    check_event,
    pack_events,
    read_file,
)

LONDON = ZoneInfo("Europe/London")
# Small enough to be quick, long enough to span the clocks going back on 25 October 2026;
# higher rates so that every kind of defect and persona shows up.
CONFIG = SimConfig(students=60, weeks=4, seed=11, duplicate_rate=0.03, malformed_rate=0.01)


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(CONFIG)


def unique(sim: Simulation) -> list[tuple[Source, dict[str, object]]]:
    """The events without their duplicates, first copy kept."""
    seen: set[object] = set()
    out = []
    for source, event in sim.events:
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            out.append((source, event))
    return out


def when(event: dict[str, object], field: str = "occurred_at") -> datetime:
    return datetime.fromisoformat(str(event[field]))


def test_the_same_seed_gives_the_same_simulation(sim: Simulation) -> None:
    again = simulate(CONFIG)
    assert again.events == sim.events
    assert again.malformed == sim.malformed
    assert again.truth.to_json() == sim.truth.to_json()
    other = simulate(SimConfig(students=60, weeks=1, seed=12))
    assert other.events[:50] != simulate(SimConfig(students=60, weeks=1, seed=11)).events[:50]


def test_a_students_events_do_not_depend_on_cohort_size() -> None:
    small = simulate(SimConfig(students=5, weeks=1, disengaging_share=0.0))
    large = simulate(SimConfig(students=9, weeks=1, disengaging_share=0.0))

    def of_student(s: Simulation) -> list[object]:
        return [
            {k: v for k, v in e.items() if k != "event_id"}
            for _, e in unique(s)
            if e["student_id"] == "S0000003"
        ]

    assert of_student(small) == of_student(large)
    assert of_student(small)


def test_ground_truth_counts_match_the_unique_valid_events(sim: Simulation) -> None:
    counts: Counter[tuple[str, str]] = Counter()
    for source, event in unique(sim):
        counts[str(event["student_id"]), source.value] += 1
    truth = sim.truth
    assert len(truth.students) == CONFIG.students
    for student_id, student in truth.students.items():
        for source in Source:
            assert student.events[source.value] == counts[student_id, source.value]
    per_source = Counter(source.value for source, _ in unique(sim))
    assert truth.totals == {name: per_source.get(name, 0) for name in SOURCES}
    assert truth.duplicates == len(sim.events) - len(unique(sim)) > 0
    assert sum(truth.malformed.values()) == len(sim.malformed)


def test_duplicates_are_exact_copies_placed_after_the_original(sim: Simulation) -> None:
    first_seen: dict[object, int] = {}
    for position, (source, event) in enumerate(sim.events):
        event_id = event["event_id"]
        if event_id in first_seen:
            original_source, original = sim.events[first_seen[event_id]]
            assert (source, event) == (original_source, original)
            assert event is not original
            assert 0 < position - first_seen[event_id] <= 3
        else:
            first_seen[event_id] = position
    copies = Counter(event["event_id"] for _, event in sim.events)
    assert max(copies.values()) == 2


def test_every_unique_event_is_valid_and_ids_are_readable(sim: Simulation) -> None:
    for source, event in unique(sim):
        model = MODEL_BY_SOURCE[source].model_validate(event)
        assert find_forbidden(event) is None
        assert re.fullmatch(r"S\d{7}", model.student_id)
        assert re.fullmatch(rf"sim-{CONFIG.seed}-\d+", model.event_id)


def test_events_are_in_event_time_order_and_timezone_aware(sim: Simulation) -> None:
    times = [when(event) for _, event in sim.events]
    assert all(moment.tzinfo is not None for moment in times)
    assert all(a <= b for a, b in pairwise(times))
    first, last = CONFIG.start, CONFIG.start + timedelta(weeks=CONFIG.weeks)
    assert all(first <= moment.astimezone(LONDON).date() < last for moment in times)


def test_the_clocks_going_back_is_in_the_data(sim: Simulation) -> None:
    offsets = Counter(when(event).utcoffset() for _, event in sim.events)
    assert set(offsets) == {timedelta(hours=1), timedelta(0)}
    for _, event in sim.events:
        moment = when(event)
        expected = moment.astimezone(LONDON).utcoffset()
        assert moment.utcoffset() == expected  # offsets are Europe/London's, both sides of DST
    after = [e for _, e in sim.events if when(e) >= datetime(2026, 10, 25, 1, tzinfo=LONDON)]
    assert after
    assert all(str(e["occurred_at"]).endswith("+00:00") for e in after)


def refusal_by_schemas(source: Source, payload: bytes) -> Reason | None:
    """Classify a payload using only the schemas, the size limit and the JSON parser."""
    try:
        data = json.loads(payload)
    except ValueError:
        return Reason.MALFORMED_JSON
    if len(payload) > MAX_EVENT_BYTES:
        return Reason.OVERSIZED
    forbidden = find_forbidden(data)
    if forbidden is not None:
        return forbidden[0]
    try:
        MODEL_BY_SOURCE[source].model_validate_json(payload)
    except ValidationError as exc:
        return classify_validation_error(exc)[0]
    return None


def test_every_malformed_payload_is_refused_for_the_stated_reason(sim: Simulation) -> None:
    assert {reason for _, _, reason in sim.malformed} == {
        "malformed_json",
        "missing_field",
        "wrong_type",
        "invalid_value",
        "assessment_data",
        "forbidden_field",
        "oversized",
    }
    assert len(sim.malformed) == round(CONFIG.malformed_rate * len(sim.events))
    valid_ids = {event["event_id"] for _, event in sim.events}
    for source, payload, reason in sim.malformed:
        assert refusal_by_schemas(source, payload) == Reason(reason), payload[:200]
        if reason == "oversized":
            assert len(payload) > 20_000
        if reason != "malformed_json":
            data = json.loads(payload)
            assert data.get("event_id") not in valid_ids
            checked = check_event(source, data)  # the publisher agrees
            assert not isinstance(checked, Checked)
            assert checked[0] == reason


def test_personas_are_shared_out_and_start_in_weeks_two_to_three() -> None:
    truth = simulate(SimConfig(students=100, weeks=4, seed=3)).truth
    personas = Counter(student.persona for student in truth.students.values())
    assert personas[Persona.ENGAGED] == 88
    assert all(personas[persona] == 3 for persona in DISENGAGING)
    for student in truth.students.values():
        if student.persona is Persona.ENGAGED:
            assert student.disengaged_from is None
        else:
            assert student.disengaged_from is not None
            assert 7 <= (student.disengaged_from - date(2026, 9, 28)).days <= 20


def test_disengaged_students_behave_as_their_persona(sim: Simulation) -> None:
    by_student: dict[str, list[tuple[Source, dict[str, object]]]] = defaultdict(list)
    for source, event in unique(sim):
        by_student[str(event["student_id"])].append((source, event))
    seen = set()
    for student_id, student in sim.truth.students.items():
        day = student.disengaged_from
        if day is None:
            continue
        seen.add(student.persona)
        events = by_student[student_id]
        before = [(s, e) for s, e in events if when(e).astimezone(LONDON).date() < day]
        after = [(s, e) for s, e in events if when(e).astimezone(LONDON).date() >= day]
        after_sources = Counter(s for s, _ in after)
        if student.persona is Persona.FULL_DROPOUT:
            assert not after
            assert before
        elif student.persona is Persona.VLE_DROPOUT:
            assert after_sources[Source.VLE] == 0
            assert after_sources[Source.ATTENDANCE] > 0
        elif student.persona is Persona.ATTENDANCE_DROPOUT:
            marks = [e["status"] for s, e in after if s is Source.ATTENDANCE]
            attended = sum(status in {"present", "late"} for status in marks)
            assert marks
            assert attended < 0.3 * len(marks)
            assert after_sources[Source.VLE] > 0
        elif student.persona is Persona.GRADUAL:
            first_week = sum(1 for _, e in before if when(e).date() < date(2026, 10, 5))
            last_week = sum(1 for _, e in after if when(e).date() >= date(2026, 10, 19))
            assert last_week < first_week
    assert seen == set(DISENGAGING)


def test_timetables_and_engaged_attendance_look_real(sim: Simulation) -> None:
    week_one: dict[str, set[object]] = defaultdict(set)
    statuses: Counter[object] = Counter()
    methods: Counter[object] = Counter()
    engaged = {sid for sid, s in sim.truth.students.items() if s.persona is Persona.ENGAGED}
    for source, event in unique(sim):
        if source is not Source.ATTENDANCE:
            continue
        start = when(event, "expected_start")
        assert when(event, "expected_end") - start == timedelta(minutes=50)
        assert start.weekday() < 5
        assert 9 <= start.hour <= 16
        if event["student_id"] in engaged:
            statuses[event["status"]] += 1
            methods[event["capture_method"]] += 1
            if start.date() < date(2026, 10, 5):
                week_one[str(event["student_id"])].add(event["session_id"])
    assert all(8 <= len(sessions) <= 10 for sessions in week_one.values())
    assert len(week_one) == len(engaged)
    came = (statuses["present"] + statuses["late"]) / sum(statuses.values())
    assert 0.8 <= came <= 0.92
    assert methods.most_common(1)[0][0] == "card"
    for student in sim.truth.students.values():
        assert 3 <= len(student.modules) <= 4


def test_swipes_cluster_before_sessions_and_vle_follows_a_daily_rhythm(sim: Simulation) -> None:
    ins = [e for s, e in unique(sim) if s is Source.SWIPE and e["direction"] == "in"]
    assert ins
    teaching = [e for e in ins if e["building"] != "Library"]
    early = sum(when(e).minute >= 45 for e in teaching)
    assert early > 0.6 * len(teaching)  # most arrive in the quarter hour before the start
    hours = Counter(when(e).hour for s, e in unique(sim) if s is Source.VLE)
    assert hours[11] > 3 * hours[4]
    assert hours[20] > 3 * hours[4]
    weekdays = Counter(when(e).weekday() for s, e in unique(sim) if s is Source.VLE)
    assert weekdays[6] < 0.7 * weekdays[2]


@pytest.mark.slow
def test_default_cohort_size_is_realistic() -> None:
    sim = simulate()
    assert 150_000 <= len(sim.events) <= 250_000
    assert sim.truth.totals["vle"] > sim.truth.totals["swipe"] > sim.truth.totals["attendance"]


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="duplicate_rate"):
        SimConfig(duplicate_rate=1.5)
    with pytest.raises(ValueError, match="at least 1"):
        SimConfig(students=0)


def test_truth_and_events_can_be_written_and_read_back(sim: Simulation, tmp_path: Path) -> None:
    paths = sim.write(tmp_path)
    truth = json.loads(paths["truth"].read_text(encoding="utf-8"))
    assert truth["totals"] == sim.truth.totals
    assert truth["config"]["start"] == "2026-09-28"
    some = next(iter(sim.truth.students))
    assert truth["students"][some]["events"] == sim.truth.students[some].events
    for source in Source:
        report = PublishReport()
        list(pack_events(source, read_file(paths[source.value]), report))
        assert report.refused == 0
        assert report.sent == sum(1 for s, _ in sim.events if s is source)


class RecordingPublisher:
    """Collects what publish_simulation hands over, in order."""

    def __init__(self, envelope_size: int) -> None:
        self.envelope_size = envelope_size
        self.items: list[tuple[Source | str, object]] = []
        self.flushed = False

    def publish_stream(self, items: Iterable[tuple[Source | str, object]]) -> PublishReport:
        self.items = list(items)
        return PublishReport(sent=sum(not isinstance(i, bytes) for _, i in self.items))

    def flush(self) -> None:
        self.flushed = True


def test_publish_simulation_sends_everything_in_order_with_malformed_spread(
    sim: Simulation,
) -> None:
    recorder = RecordingPublisher(envelope_size=1)
    report = publish_simulation(sim, recorder)  # type: ignore[arg-type]
    assert recorder.flushed
    assert report.sent == len(sim.events)
    valid = [(s, i) for s, i in recorder.items if not isinstance(i, bytes)]
    assert valid == sim.events
    positions = [n for n, (_, i) in enumerate(recorder.items) if isinstance(i, bytes)]
    assert [recorder.items[n] for n in positions] == [(s, p) for s, p, _ in sim.malformed]
    gaps = [b - a for a, b in pairwise(positions)]
    assert min(gaps) > 0.5 * len(recorder.items) / len(positions)
