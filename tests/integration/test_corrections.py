"""The state script against the real Redis: register corrections replace, de-duplication is by
feed and event id across days, and decisions read the marks as they were known each day.

These drive ``EngagementStore`` (and, at the end, ``Detector``) directly with signal batches,
as the engagement agent and ``engagement replay`` do; the pipeline itself is exercised in
test_register.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from agents.detect import Detector
from agents.model.corrections import Correction
from agents.model.eventtime import to_epoch_ms
from agents.model.pseudonym import Pseudonymiser
from agents.store.reference import ReferenceStore
from agents.store.state import ApplyResult, EngagementStore
from schemas.keys import Keys
from schemas.nudges import Nudge
from schemas.rules import load_rules
from stream.dev.stack import Endpoints

pytestmark = pytest.mark.integration

T = TypeVar("T")
LONDON = ZoneInfo("Europe/London")
GRACE_MS = 48 * 3_600_000
MONDAY = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)  # 10:00 in London
WHO = "p_" + "0" * 31 + "1"
OTHER = "p_" + "0" * 31 + "2"


def day_of(when: datetime) -> int:
    return when.astimezone(LONDON).date().toordinal()


def signal(
    event_id: str,
    when: datetime,
    source: str = "vle",
    kind: str = "viewed",
    context: str = "CS101",
    session: str | None = None,
    who: str = WHO,
) -> dict[str, Any]:
    """A signal as the ingest makes it."""
    out: dict[str, Any] = {
        "schema_version": 1,
        "event_id": event_id,
        "pseudonym": who,
        "source": source,
        "occurred_at_ms": to_epoch_ms(when),
        "day": day_of(when),
        "hour": when.astimezone(LONDON).hour,
        "kind": kind,
        "context": context,
        "raw_partition": 0,
    }
    if session is not None:
        out["session"] = session
    return out


def mark(event_id: str, when: datetime, status: str, session: str = "CS101-L-1") -> dict[str, Any]:
    """An attendance mark's signal."""
    return signal(event_id, when, "attendance", status, "CS101", session)


class Feed:
    """Signal batches for one deployment's state, each message on partition 0 in order."""

    def __init__(self, client: aioredis.Redis, prefix: str, dedup_days: int = 14) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.store = EngagementStore(
            client,
            prefix=prefix,
            group="g",
            dedup_ttl_s=dedup_days * 86_400,
            state_ttl_s=60 * 86_400,
        )
        self.offset = -1

    async def send(
        self, signals: list[dict[str, Any]], watermark: datetime | None = None
    ) -> ApplyResult:
        """Apply one message; ``watermark`` moves the partition's watermark after it."""
        self.offset += 1
        batch = {
            "schema_version": 1,
            "published_at_ms": None,
            "signals": signals,
            "watermark_ms": to_epoch_ms(watermark) if watermark else None,
        }
        payload = json.dumps(batch).encode()
        return await self.store.apply([(0, self.offset, payload)], GRACE_MS)

    async def state(self, who: str = WHO) -> dict[str, str]:
        raw = await self.client.hgetall(self.keys.state(who))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def marks(self, when: datetime, who: str = WHO) -> tuple[int, ...]:
        """present, late, absent, excused as counted on the day of ``when``."""
        value = (await self.state(who)).get(f"a:{day_of(when)}", "0,0,0,0")
        return tuple(int(v) for v in value.split(","))

    async def counted(self, source: str, who: str = WHO) -> int:
        """Events of ``source`` counted for a student, over all days."""
        fields = (await self.state(who)).items()
        return sum(int(v) for k, v in fields if k.startswith("d:") and k.endswith(f":{source}"))


def run(
    stack: Endpoints, prefix: str, body: Callable[[Feed], Awaitable[T]], dedup_days: int = 14
) -> T:
    """Run ``body`` with a fresh feed on the session's Redis."""

    async def main() -> T:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            return await body(Feed(client, prefix, dedup_days))
        finally:
            await client.aclose()

    return asyncio.run(main())


# -- item 1: a correction replaces the earlier mark --------------------------------------------


def test_a_correction_on_the_day_replaces_the_mark_instead_of_adding_one(
    stack: Endpoints, prefix: str
) -> None:
    async def body(feed: Feed) -> None:
        await feed.send([mark("m-1", MONDAY, "absent")])
        result = await feed.send([mark("m-1-fix", MONDAY + timedelta(hours=3), "present")])
        # One session, now present: not one present and one absent ("4 of 9 sessions").
        assert await feed.marks(MONDAY) == (1, 0, 0, 0)
        assert (result.applied, result.corrections) == (1, 1)

    run(stack, prefix, body)


def test_several_corrections_in_a_row_leave_only_the_latest_status(
    stack: Endpoints, prefix: str
) -> None:
    async def body(feed: Feed) -> None:
        sequence = [
            ("absent", (0, 0, 1, 0)),
            ("present", (1, 0, 0, 0)),
            ("late", (0, 1, 0, 0)),
            ("withdrawn", (0, 0, 0, 0)),
            ("excused", (0, 0, 0, 1)),
        ]
        for n, (status, expected) in enumerate(sequence):
            await feed.send([mark(f"m-{n}", MONDAY + timedelta(minutes=10 * n), status)])
            assert await feed.marks(MONDAY) == expected, status
        # The same corrections in one batch, for another session, end the same way.
        await feed.send(
            [
                mark(f"b-{n}", MONDAY + timedelta(minutes=10 * n), status, "CS101-L-2")
                for n, (status, _) in enumerate(sequence)
            ]
        )
        assert await feed.marks(MONDAY) == (0, 0, 0, 2)

    run(stack, prefix, body)


def test_a_mark_resent_with_its_own_event_id_and_another_status_is_a_correction(
    stack: Endpoints, prefix: str
) -> None:
    async def body(feed: Feed) -> None:
        await feed.send([mark("m-1", MONDAY, "absent")])
        result = await feed.send([mark("m-1", MONDAY + timedelta(hours=2), "present")])
        assert await feed.marks(MONDAY) == (1, 0, 0, 0)
        assert (result.corrections, result.late) == (1, [])
        # The register re-sent with the same marks under new ids counts nothing more.
        again = await feed.send([mark("r-1", MONDAY + timedelta(hours=2), "present")])
        assert (again.applied, again.duplicates) == (0, 1)
        assert await feed.marks(MONDAY) == (1, 0, 0, 0)

    run(stack, prefix, body)


def test_corrections_arriving_out_of_order_end_as_in_order(stack: Endpoints, prefix: str) -> None:
    async def body(feed: Feed) -> tuple[dict[str, str], dict[str, str]]:
        first = mark("x-1", MONDAY, "absent", "S-1")
        fix = mark("x-2", MONDAY + timedelta(days=1, hours=1), "present", "S-1")
        second = dict(first, pseudonym=OTHER)
        second_fix = dict(fix, pseudonym=OTHER)
        await feed.send([first])
        await feed.send([fix])
        await feed.send([second_fix])  # the correction before the mark it corrects
        await feed.send([second])
        in_order, reversed_ = await feed.state(WHO), await feed.state(OTHER)
        return in_order, reversed_

    in_order, reversed_ = run(stack, prefix, body)
    fields = ("a:" + str(day_of(MONDAY)), "ac")
    assert [in_order.get(f) for f in fields] == [reversed_.get(f) for f in fields]
    assert in_order["a:" + str(day_of(MONDAY))] == "0,0,1,0"  # as known on Monday
    assert in_order["ac"] == f"{day_of(MONDAY)}:{day_of(MONDAY) + 1}=1,0,-1,0"


def test_a_correction_made_on_a_later_day_is_kept_apart_with_the_day_it_took_effect(
    stack: Endpoints, prefix: str
) -> None:
    async def body(feed: Feed) -> None:
        monday = day_of(MONDAY)
        await feed.send([mark("m-1", MONDAY, "absent")], MONDAY + timedelta(days=1))
        wednesday = MONDAY + timedelta(days=2)
        result = await feed.send([mark("m-1-fix", wednesday, "present")])
        assert (result.applied, result.corrections, result.late) == (1, 1, [])
        assert await feed.marks(MONDAY) == (0, 0, 1, 0)  # Monday as decided on Monday
        (student,) = await feed.store.load_students([WHO], monday - 1, monday + 3)
        assert student.corrections == (Correction(monday, monday + 2, (1, 0, -1, 0)),)
        assert student.corrections[0].words() == "absent → present"

    run(stack, prefix, body)


def test_a_correction_after_the_grace_period_is_refused_and_the_mark_stands(
    stack: Endpoints, prefix: str
) -> None:
    async def body(feed: Feed) -> None:
        await feed.send([mark("m-1", MONDAY, "absent")], MONDAY + timedelta(days=4))
        result = await feed.send([mark("m-1-fix", MONDAY + timedelta(hours=1), "present")])
        ((late),) = result.late
        assert (late.event_id, late.reason) == ("m-1-fix", "correction_too_late")
        assert late.late_ms > GRACE_MS
        assert result.applied == 0
        assert await feed.marks(MONDAY) == (0, 0, 1, 0)
        assert "ac" not in await feed.state()
        # A late mark for a session never marked before is simply too late.
        other = await feed.send([mark("n-1", MONDAY, "present", "CS101-L-9")])
        assert [x.reason for x in other.late] == ["too_late"]

    run(stack, prefix, body)


# -- item 5: de-duplication by feed and event id, across days ------------------------------------


def test_a_resend_with_another_timestamp_counts_once(stack: Endpoints, prefix: str) -> None:
    async def body(feed: Feed) -> None:
        await feed.send([signal("v-1", MONDAY)])
        resent = await feed.send([signal("v-1", MONDAY + timedelta(days=1, hours=2))])
        assert (resent.applied, resent.duplicates) == (0, 1)
        assert await feed.counted("vle") == 1

    run(stack, prefix, body)


def test_the_same_event_id_from_two_feeds_counts_twice(stack: Endpoints, prefix: str) -> None:
    async def body(feed: Feed) -> None:
        await feed.send([signal("E-77", MONDAY)])
        other = await feed.send([signal("E-77", MONDAY, "swipe", "in", "Library")])
        assert (other.applied, other.duplicates) == (1, 0)
        assert (await feed.counted("vle"), await feed.counted("swipe")) == (1, 1)

    run(stack, prefix, body)


def test_a_resend_that_says_something_else_is_refused_as_a_conflict(
    stack: Endpoints, prefix: str
) -> None:
    async def body(feed: Feed) -> None:
        await feed.send([signal("v-1", MONDAY, context="CS101")])
        result = await feed.send([signal("v-1", MONDAY, context="MA200")])
        assert [(x.event_id, x.reason) for x in result.late] == [("v-1", "duplicate_conflict")]
        assert result.applied == result.duplicates == 0
        # An attendance mark re-sent under its id for another session is a conflict too.
        await feed.send([mark("m-1", MONDAY, "present", "S-1")])
        moved = await feed.send([mark("m-1", MONDAY, "present", "S-2")])
        assert [x.reason for x in moved.late] == ["duplicate_conflict"]
        assert await feed.counted("vle") == 1
        assert await feed.marks(MONDAY) == (1, 0, 0, 0)

    run(stack, prefix, body)


def test_ids_are_remembered_for_a_generation_and_then_forgotten(
    stack: Endpoints, prefix: str
) -> None:
    async def body(feed: Feed) -> None:
        feed.store = EngagementStore(
            feed.client, prefix=feed.keys.prefix, group="g", dedup_ttl_s=2 * 86_400,
            state_ttl_s=60 * 86_400,
        )  # fmt: skip
        await feed.send([signal("v-1", MONDAY)], MONDAY)
        for days in (1, 2, 3):  # within one to two generations of two days: still known
            at = MONDAY + timedelta(days=days)
            assert (await feed.send([signal("v-1", at)], at)).duplicates == 1, days
        for days in (4, 5, 6):  # new ids in later generations count (while v-1 is still known)
            at = MONDAY + timedelta(days=days)
            assert (await feed.send([signal(f"n-{days}", at)], at)).applied == 1, days
        later = MONDAY + timedelta(days=8)
        assert (await feed.send([signal("v-2", later)], later)).applied == 1
        assert (await feed.send([signal("v-1", later)])).applied == 1  # forgotten
        slots = [await feed.client.hlen(feed.keys.seen(WHO, n)) for n in (0, 1)]
        assert sum(slots) < 6  # six ids sent: older generations were dropped

    run(stack, prefix, body)


# -- decisions read the marks as they were known each day -------------------------------------


def _attendance_rule_only() -> Any:
    rules = load_rules()
    keep = [r for r in rules.rules if r.id == "attendance_below_50pct_14d"]
    assert keep, "the default rules have an attendance rule"
    return rules.model_copy(update={"rules": keep})


async def _decide_until(feed: Feed, detector: Detector, until: datetime) -> list[Nudge]:
    await feed.send([], until)
    detection = await detector.evaluate([0])
    await detection.commit()
    return detection.nudges


def test_a_correction_after_the_decision_is_recorded_and_later_days_read_it(
    stack: Endpoints, prefix: str
) -> None:
    """Absent from every session: the attendance rule decides. On day 16 the register is
    corrected (every session so far attended): the decision is not taken again, a record says
    it was based on data later corrected, and later windows read the corrected marks."""

    async def body(feed: Feed) -> tuple[list[Nudge], list[Nudge], list[Nudge]]:
        rules = _attendance_rule_only()
        pseudonymise = Pseudonymiser(SecretStr("k" * 20))
        reference = ReferenceStore(feed.client, feed.keys.prefix, pseudonymise, LONDON)
        detector = Detector(feed.store, reference, rules, LONDON, grace_ms=GRACE_MS, partitions=1)

        async def register(days: range) -> None:  # as a register feed sends it: day by day
            for d in days:
                at = MONDAY + timedelta(days=d)
                marks = [mark(f"m-{d}", at, "absent", f"S-{d}")] if at.weekday() < 5 else []
                await feed.send(marks, at)

        await register(range(17))
        first = await _decide_until(feed, detector, MONDAY + timedelta(days=17))
        # Corrections made on day 16, for the sessions of days 0 to 15 (within the grace
        # period: the watermark is at day 17 09:00).
        fixed = MONDAY + timedelta(days=16, hours=3)
        fixes = [
            mark(f"fix-{d}", fixed, "present", f"S-{d}")
            for d in range(16)
            if (MONDAY + timedelta(days=d)).weekday() < 5
        ]
        result = await feed.send(fixes)
        assert result.corrections == len(fixes) and result.late == []
        await register(range(17, 21))
        second = await _decide_until(feed, detector, MONDAY + timedelta(days=24))
        # A fresh detector (another worker, or after a restart) decides the same from Redis.
        again = Detector(feed.store, reference, rules, LONDON, grace_ms=GRACE_MS, partitions=1)
        await feed.client.hdel(feed.keys.decided("g"), "0")
        await feed.client.hdel(feed.keys.state(WHO), "rs")
        third = (await again.evaluate([0])).nudges
        return first, second, third

    first, second, third = run(stack, prefix, body, dedup_days=28)  # remembers day 0's mark
    live = [n for n in first if n.suppressed is None]
    assert [n.rule_id for n in live] == ["attendance_below_50pct_14d"]
    original = live[0]
    # Nothing is decided again; one record says the decision's data was corrected.
    (notice,) = second
    assert notice.suppressed == "data_corrected"
    assert notice.rule_id == original.rule_id
    assert notice.nudge_id != original.nudge_id
    assert original.nudge_id in notice.explanation.notes[0]
    assert "absent → present" in notice.explanation.notes[0]
    assert "would not have decided so" in notice.explanation.notes[0]
    assert "later corrected" in notice.explanation.summary
    assert notice.explanation.window_end == original.explanation.window_end
    # Deciding every day again from the stored state gives the same ids.
    assert sorted(n.nudge_id for n in third) == sorted(n.nudge_id for n in first + second)


def _expected(marks: list[tuple[datetime, str]]) -> tuple[dict[int, tuple[int, ...]], str]:
    """What one session's marks should count: the status at the end of each day that has a
    mark, the first such day's as its counts, each later change kept apart from its day."""
    slots = {"present": 0, "late": 1, "absent": 2, "excused": 3}
    by_day: dict[int, tuple[datetime, str]] = {}
    for at, status in marks:
        day = day_of(at)
        if day not in by_day or at >= by_day[day][0]:
            by_day[day] = (at, status)
    days = sorted(by_day)
    first = days[0]

    def vector(status: str, sign: int) -> list[int]:
        out = [0, 0, 0, 0]
        if status in slots:
            out[slots[status]] = sign
        return out

    base = tuple(vector(by_day[first][1], 1))
    cells = []
    for before, day in itertools.pairwise(days):
        was, now = vector(by_day[before][1], -1), vector(by_day[day][1], 1)
        change = [a + b for a, b in zip(was, now, strict=True)]
        if any(change):
            cells.append(f"{first}:{day}=" + ",".join(map(str, change)))
    return {first: base}, ";".join(sorted(cells))


def test_marks_in_any_order_count_as_they_would_in_time_order(
    stack: Endpoints, prefix: str
) -> None:
    """Random sessions of several marks over a few days, sent in a random order (as a live feed
    may deliver them within the grace period): the counts are those of the marks in time order."""
    rng = random.Random(12)
    statuses = ["present", "late", "absent", "excused", "withdrawn"]
    trials = []
    for n in range(40):
        marks = [
            (MONDAY + timedelta(hours=rng.randrange(0, 96), minutes=m), rng.choice(statuses))
            for m in range(rng.randint(1, 6))
        ]
        arrival = marks[:]
        rng.shuffle(arrival)
        trials.append((f"p_{n:032x}", marks, arrival))

    async def body(feed: Feed) -> list[dict[str, str]]:
        for who, _, arrival in trials:
            for k, (at, status) in enumerate(arrival):
                await feed.send([dict(mark(f"{who}-{k}", at, status, "S-1"), pseudonym=who)])
        return [await feed.state(who) for who, _, _ in trials]

    states = run(stack, prefix, body)
    for (who, marks, _), state in zip(trials, states, strict=True):
        base, cells = _expected(marks)
        counted = {
            int(k[2:]): tuple(int(v) for v in value.split(","))
            for k, value in state.items()
            if k.startswith("a:") and value != "0,0,0,0"
        }
        assert counted == {d: c for d, c in base.items() if any(c)}, (who, marks)
        assert state.get("ac", "") == cells, (who, marks)
