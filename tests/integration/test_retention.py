"""Retention and erasure on the running product: real worker, notifier, broker and Redis.

A student with state, intervention records (one delivered prompt, one invitation queued for
their tutor), a preference change, an identity, a roster entry, an exemption and audit
entries is erased on a compliance request: afterwards a SCAN of every key and every value
finds neither their pseudonym nor their id, the interventions topic carries a tombstone that
names nobody, and the receipt answers "erased at T". `engagement retention run` erases a
student withdrawn past the grace period (not one within it) and expires old entries by class.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from schemas.common import Source
from schemas.interventions import Outcome, StaffAction, Stage
from schemas.keys import Keys, Retention
from schemas.nudges import Nudge, Route, Tier
from schemas.preferences import PreferenceHistoryEntry, Preferences
from schemas.review import load_teams
from sinks.stores.audit import AuditLog
from sinks.stores.interventions import InterventionLog, new_record
from sinks.stores.review import ReviewQueue
from stream.dev.stack import Endpoints
from tests.integration.harness import TERM, Pipeline, vle, wait_for
from tests.unit.build import days, only, run, student

pytestmark = pytest.mark.integration

END = date(2026, 10, 25).toordinal()


def nudge_for(pipeline: Pipeline, student_id: str, **changes: Any) -> Nudge:
    """A real prompt from the rules, about ``student_id``, under a fresh nudge id."""
    who = student(days(END - 20, END - 8, vle=3), END - 20)
    (nudge,) = run(only("no_vle_activity_7d"), who, END - 20, END)
    update = {"pseudonym": pipeline.pseudonym(student_id), "nudge_id": f"n_{secrets.token_hex(16)}"}
    return nudge.model_copy(update={**update, **changes})


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def everything(client: redis.Redis) -> Iterator[tuple[str, str]]:
    """Every key in Redis with all it holds (name, fields, values, members, stream entries)."""
    for raw in client.scan_iter(count=1000):
        kind = _text(client.type(raw))
        parts: list[Any]
        if kind == "string":
            parts = [client.get(raw)]
        elif kind == "hash":
            parts = [x for pair in client.hgetall(raw).items() for x in pair]
        elif kind == "list":
            parts = list(client.lrange(raw, 0, -1))
        elif kind == "set":
            parts = list(client.smembers(raw))
        elif kind == "zset":
            parts = [m for m, _ in client.zrange(raw, 0, -1, withscores=True)]
        elif kind == "stream":
            parts = [f"{_text(k)}={_text(v)}" for _, e in client.xrange(raw) for k, v in e.items()]
        else:
            parts = [kind]
        yield _text(raw), "\n".join(_text(p) for p in [raw, *parts] if p is not None)


def naming(client: redis.Redis, *needles: str) -> list[str]:
    """The keys whose name or content contains any of ``needles``."""
    return sorted(key for key, text in everything(client) if any(n in text for n in needles))


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def cli_json(pipeline: Pipeline, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(pipeline.cli(*args))
    return found


def test_erasure_leaves_nothing_about_the_student_but_a_tombstone_and_a_receipt(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    gone, other = f"S-ERASE-{secrets.token_hex(4)}", f"S-OTHER-{secrets.token_hex(4)}"
    roster = [
        {"student_id": s, "personal_tutor": "T001", "modules": ["PH1030"]} for s in (gone, other)
    ]
    pipeline.cli("reference", "roster", str(jsonl(tmp_path / "roster.jsonl", roster)))
    identity = [{"actor": f"lms-{gone.lower()}", "student_id": gone}]
    pipeline.cli("reference", "identity", str(jsonl(tmp_path / "identity.jsonl", identity)))
    placement = {"exemption_id": "EX-1", "student_id": gone, "kind": "placement",
                 "starts_on": "2026-11-01", "ends_on": "2026-11-30"}  # fmt: skip
    pipeline.cli("reference", "exemptions", str(jsonl(tmp_path / "ex.jsonl", [placement])))
    pipeline.start("receiver", "receiver")
    pipeline.start("worker", "worker")
    pipeline.start("notifier", "notifier")
    events = [vle(n, s, TERM + timedelta(hours=n)) for n in range(3) for s in (gone, other)]
    pipeline.publish(Source.VLE, events)
    for who in (gone, other):
        wait_for(f"{who}'s events", lambda w=who: pipeline.counts(w).get("vle") == 3 or None)
    keys = Keys(pipeline.prefix)
    wait_for("the reference data", lambda: pipeline.redis.exists(
        keys.exemptions(pipeline.pseudonym(gone)), keys.actors()) == 2 or None)  # fmt: skip

    invite = {"tier": Tier.INVITATION, "route": Route.PERSONAL_TUTOR, "channels": ()}
    invitation = nudge_for(pipeline, gone, **invite)
    pipeline.publish_nudges([nudge_for(pipeline, gone), invitation, nudge_for(pipeline, other)])
    wait_for("the records", lambda: len(pipeline.records(gone)) == 2 or None)
    wait_for("the other's record", lambda: len(pipeline.records(other)) == 1 or None)
    pipeline.cli("prefs", "set", gone, "--opt-out", "sms")

    async def audit() -> None:
        client = aioredis.Redis.from_url(pipeline.stack.redis_url)
        try:
            log = AuditLog(client, pipeline.prefix, retention_days=30)
            await log.record(who="T001", role="tutor", pseudonym=pipeline.pseudonym(gone),
                             action="GET /v1/students/x", now=datetime.now(UTC))  # fmt: skip
        finally:
            await client.aclose()

    asyncio.run(audit())
    names = (pipeline.pseudonym(gone), gone)
    before = naming(pipeline.redis, *names)
    families = {key.split(":")[1] for key in before}
    assert {"s", "id", "roster", "ex", "exwho", "actors", "iv", "prefs", "review", "members",
            "audit"} <= families, before  # fmt: skip
    queue = keys.review_queue("tutor:T001")
    assert pipeline.redis.zscore(queue, invitation.nudge_id) is not None
    other_keys = naming(pipeline.redis, pipeline.pseudonym(other))

    erased = cli_json(pipeline, "erase", "--student", gone, "--reason", "erasure request 2026-114")

    assert naming(pipeline.redis, *names) == []
    assert naming(pipeline.redis, pipeline.pseudonym(other)) == other_keys  # nobody else's
    assert naming(pipeline.redis, invitation.nudge_id) == []  # out of the tutor's queue too
    assert len(pipeline.records(other)) == 1
    assert erased["keys_deleted"] >= 8 and erased["entries_removed"] >= 4, erased
    receipt = cli_json(pipeline, "erase", "--student", gone, "--receipt")
    assert receipt["erased"] is True
    assert receipt["erased_at"] == erased["erased_at"]
    assert receipt["reason"] == "erasure request 2026-114"
    assert cli_json(pipeline, "erase", "--student", other, "--receipt") == {"erased": False}

    log = pipeline.topic(pipeline.settings.topics.interventions, expected=4)
    tombstones = [m for m in log if m.get("kind") == "erasure"]
    assert len(tombstones) == 1, log
    (tombstone,) = tombstones
    assert tombstone["tombstone_id"] == erased["tombstone_id"]
    assert tombstone["erased_at"] == erased["erased_at"]
    assert not any(n.casefold() in json.dumps(tombstone).casefold() for n in names)

    again = cli_json(pipeline, "erase", "--student", gone, "--reason", "erasure request 2026-114")
    assert again["erased_at"] == erased["erased_at"]
    assert again["tombstone_id"] == erased["tombstone_id"]
    assert again["keys_deleted"] == 0
    assert naming(pipeline.redis, *names) == []


def test_the_retention_run_erases_the_withdrawn_past_grace_and_expires_by_class(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    tag = secrets.token_hex(4)
    withdrawn, recent, kept = f"S-WD-{tag}", f"S-RECENT-{tag}", f"S-KEEP-{tag}"
    today = datetime.now(UTC).astimezone(pipeline.settings.zone).date()
    roster = [{"student_id": s, "personal_tutor": "T001"} for s in (withdrawn, recent, kept)]
    pipeline.cli("reference", "roster", str(jsonl(tmp_path / "roster.jsonl", roster)))
    exemptions = [
        {"exemption_id": f"WD-{tag}", "student_id": withdrawn, "kind": "withdrawn",
         "starts_on": (today - timedelta(days=40)).isoformat()},
        {"exemption_id": f"WR-{tag}", "student_id": recent, "kind": "withdrawn",
         "starts_on": (today - timedelta(days=5)).isoformat()},
    ]  # fmt: skip
    pipeline.cli("reference", "exemptions", str(jsonl(tmp_path / "ex.jsonl", exemptions)))
    pipeline.start("worker", "worker")
    keys = Keys(pipeline.prefix)
    wait_for("the withdrawals", lambda: pipeline.redis.exists(
        keys.exemptions(pipeline.pseudonym(withdrawn)),
        keys.exemptions(pipeline.pseudonym(recent))) == 2 or None)  # fmt: skip

    now = datetime.now(UTC)
    old, new = now - timedelta(days=90), now - timedelta(days=1)
    invite = {"tier": Tier.INVITATION, "route": Route.PERSONAL_TUTOR, "channels": ()}
    old_item, new_item, open_item = (nudge_for(pipeline, kept, **invite) for _ in range(3))
    prompt = nudge_for(pipeline, kept)

    async def fill() -> None:
        client = aioredis.Redis.from_url(pipeline.stack.redis_url)
        try:
            log = InterventionLog(client, pipeline.prefix)
            queue = ReviewQueue(client, pipeline.prefix, load_teams(), log.append)
            for who in (withdrawn, recent):
                await log.append(new_record(nudge_for(pipeline, who), "s", Stage.NOTIFIER,
                                            Outcome.SUPPRESSED, "opted_out", "d", new))  # fmt: skip
            await log.append(new_record(prompt, "s", Stage.NOTIFIER, Outcome.SUPPRESSED,
                                        "opted_out", "d", old))  # fmt: skip
            for item, at in ((old_item, old), (new_item, new), (open_item, old)):
                await queue.enqueue(item, "tutor:T001", at)
            for item, at in ((old_item, old), (new_item, new)):
                await queue.decide(item.nudge_id, "T001", StaffAction.NO_ACTION,
                                   reason="seen in class", referred_to=None, now=at)  # fmt: skip
            history = keys.preference_history(pipeline.pseudonym(kept))
            for at in (old, new):
                entry = PreferenceHistoryEntry(
                    change_id=secrets.token_hex(8), changed_at=at, applied_at=at, source="cli",
                    opt_out_all=None, opt_out=frozenset(), opt_in=frozenset(),
                    result=Preferences(),
                )  # fmt: skip
                await client.rpush(history, entry.model_dump_json())
        finally:
            await client.aclose()

    asyncio.run(fill())
    me = pipeline.pseudonym(kept)
    records_before = pipeline.redis.llen(keys.interventions(me))
    assert records_before == 3  # the old prompt's record and two staff decisions
    pipeline.env.update({
        "ENGAGEMENT_RETAIN_INTERVENTIONS_DAYS": "30", "ENGAGEMENT_RETAIN_REVIEW_DAYS": "30",
        "ENGAGEMENT_RETAIN_PREFERENCES_DAYS": "30", "ENGAGEMENT_ERASURE_GRACE_DAYS": "30",
    })  # fmt: skip

    dry = pipeline.cli("retention", "run", "--dry-run").splitlines()
    assert "withdrawn past the grace period: would erase 1 student(s)" in dry
    assert "review: would expire 1 (older than 30 days)" in dry
    assert pipeline.redis.llen(keys.interventions(me)) == records_before  # nothing removed
    assert naming(pipeline.redis, pipeline.pseudonym(withdrawn))

    done = pipeline.cli("retention", "run").splitlines()
    assert "withdrawn past the grace period: erased 1 student(s)" in done
    assert "interventions: expired 2 (older than 30 days)" in done, done
    assert "review: expired 1 (older than 30 days)" in done, done
    assert "preferences: expired 1 (older than 30 days)" in done, done
    assert not any(withdrawn in line for line in done)

    assert naming(pipeline.redis, pipeline.pseudonym(withdrawn), withdrawn) == []
    receipt = cli_json(pipeline, "erase", "--student", withdrawn, "--receipt")
    assert receipt["erased"] and receipt["reason"] == "withdrawn past the erasure grace period"
    assert pipeline.redis.exists(keys.exemptions(pipeline.pseudonym(recent)))
    assert pipeline.redis.llen(keys.interventions(pipeline.pseudonym(recent))) == 1
    assert cli_json(pipeline, "erase", "--student", recent, "--receipt") == {"erased": False}

    rows = [json.loads(r) for r in pipeline.redis.lrange(keys.interventions(me), 0, -1)]
    assert [r["nudge_id"] for r in rows] == [new_item.nudge_id]
    assert not pipeline.redis.exists(keys.review_item(old_item.nudge_id))
    assert pipeline.redis.exists(keys.review_item(new_item.nudge_id))
    assert pipeline.redis.exists(keys.review_item(open_item.nudge_id))  # undecided: kept
    waiting = {_text(m) for m in pipeline.redis.zrange(keys.review_queue("tutor:T001"), 0, -1)}
    assert waiting == {open_item.nudge_id}
    history = pipeline.redis.lrange(keys.preference_history(me), 0, -1)
    assert [PreferenceHistoryEntry.model_validate_json(h).applied_at for h in history] == [new]

    again = pipeline.cli("retention", "run").splitlines()
    assert "withdrawn past the grace period: erased 0 student(s)" in again
    assert "interventions: expired 0 (older than 30 days)" in again


def test_the_notifier_runs_the_retention_job_on_its_schedule(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    tag = secrets.token_hex(4)
    withdrawn, recent = f"S-WD-{tag}", f"S-RECENT-{tag}"
    today = datetime.now(UTC).astimezone(pipeline.settings.zone).date()
    roster = [{"student_id": s} for s in (withdrawn, recent)]
    pipeline.cli("reference", "roster", str(jsonl(tmp_path / "roster.jsonl", roster)))
    exemptions = [
        {"exemption_id": f"WD-{tag}", "student_id": withdrawn, "kind": "withdrawn",
         "starts_on": (today - timedelta(days=40)).isoformat()},
        {"exemption_id": f"WR-{tag}", "student_id": recent, "kind": "withdrawn",
         "starts_on": (today - timedelta(days=5)).isoformat()},
    ]  # fmt: skip
    pipeline.cli("reference", "exemptions", str(jsonl(tmp_path / "ex.jsonl", exemptions)))
    pipeline.env["ENGAGEMENT_RETENTION_INTERVAL_S"] = "2"  # a day, in a test
    pipeline.start("worker", "worker")
    pipeline.start("notifier", "notifier")

    def erased() -> dict[str, Any] | None:
        found = cli_json(pipeline, "erase", "--student", withdrawn, "--receipt")
        return found if found["erased"] else None

    receipt = wait_for("the scheduled erasure", erased, 90)
    assert receipt["reason"] == "withdrawn past the erasure grace period"
    assert naming(pipeline.redis, pipeline.pseudonym(withdrawn), withdrawn) == []
    keys = Keys(pipeline.prefix)
    assert pipeline.redis.exists(keys.exemptions(pipeline.pseudonym(recent)))
    # The run is taken by one notifier per interval: its key lives for the interval (2 s
    # here), then the next look takes it again.
    run_key = keys.retention_run()

    def taken() -> int | None:
        left = int(pipeline.redis.pttl(run_key))  # -2 between two runs
        return left if left > 0 else None

    assert wait_for("the next run taken", taken, 30) <= 2_000
    (tombstone,) = pipeline.topic(pipeline.settings.topics.interventions, expected=1)
    assert tombstone["kind"] == "erasure"
    assert tombstone["tombstone_id"] == receipt["tombstone_id"]


def test_a_long_list_is_trimmed_batch_by_batch_and_a_dry_run_counts_it_all(
    stack: Endpoints, prefix: str
) -> None:
    from sinks.retention.expire import HEAD_BATCH, expire
    from sinks.retention.plan import periods

    now = datetime.now(UTC)
    key = Keys(prefix).audit_student("p_" + "c" * 32)
    ages = [timedelta(days=50, seconds=n) for n in range(HEAD_BATCH + 120)]
    old = [json.dumps({"at": (now - age).isoformat()}) for age in ages]
    new = [json.dumps({"at": (now - timedelta(days=1)).isoformat()}) for _ in range(5)]

    async def go() -> tuple[int, int, list[Any]]:
        client = aioredis.Redis.from_url(stack.redis_url)
        try:
            await client.rpush(key, *old[::-1], *new)  # oldest first, as the store appends
            by_class = periods(audit=30)
            counted = (await expire(client, prefix, by_class, now, dry_run=True))[Retention.AUDIT]
            removed = (await expire(client, prefix, by_class, now, dry_run=False))[Retention.AUDIT]
            return counted, removed, await client.lrange(key, 0, -1)
        finally:
            await client.aclose()

    counted, removed, left = asyncio.run(go())
    assert counted == removed == HEAD_BATCH + 120
    assert [_text(row) for row in left] == new
