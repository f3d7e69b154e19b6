"""``engagement demo``: the whole product on the embedded stack, ending with a readable report."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from kafka import KafkaProducer
from pydantic import SecretStr

from agents.model.eventtime import day_start_ms, local_day
from agents.model.pseudonym import Pseudonymiser
from agents.store.register import StudentKeys, student_keys
from schemas.keys import REVIEW_QUEUE, Keys, family_of
from schemas.preferences import PreferenceChange
from schemas.settings import load_settings
from stream.dev.demo_people import first_nudged, show_people, start_api
from stream.dev.processes import Child, ProcessError, free_port, scrape, total
from stream.dev.reach import reach_report
from stream.dev.simulate import DISENGAGING, SimConfig, Simulation, publish_simulation, simulate
from stream.dev.stack import LocalStack
from stream.publisher import Publisher
from stream.reference import publish_reference
from stream.topics import ensure_topics

OPT_OUT_SHARE = 0.15
SETTLE_TIMEOUT_S = 120.0


def _say(text: str = "") -> None:
    print(text, flush=True)


def _opt_out_some(sim: Simulation, bootstrap: str, topic: str) -> set[str]:
    """A deterministic share of students opt out of all automated prompts, through the
    preferences topic as the student app would."""
    chosen = sorted(sim.truth.students)[:: int(1 / OPT_OUT_SHARE)]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    for n, student_id in enumerate(chosen):
        change = PreferenceChange(
            change_id=f"demo-{n}",
            student_id=student_id,
            opt_out_all=True,
            changed_at=datetime.now(UTC),
            source="student-app",
        )
        producer.send(topic, key=student_id.encode(), value=change.model_dump_json().encode())
    producer.flush()
    producer.close()
    return set(chosen)


def _engagement(env: dict[str, str], *args: str) -> str:
    """Run an ``engagement`` sub-command the way a member of staff would; return its output."""
    done = subprocess.run(  # noqa: S603  # our own interpreter and module
        [sys.executable, "-m", "stream.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        msg = f"engagement {' '.join(args)} failed:\n{done.stderr}"
        raise ProcessError(msg)
    return done.stdout


def _review_demo(env: dict[str, str], client: redis.Redis, prefix: str) -> None:
    """Show the review queue as staff see it, and record one staff decision."""
    open_items = client.zcard(Keys(prefix).review_open())
    _say(f"\nReview queue: {open_items} invitations and referrals wait for staff; none was sent")
    _say("to a student automatically. The busiest personal tutor's queue (`engagement review")
    tutors: Counter[str] = Counter()
    for key in client.scan_iter(match=REVIEW_QUEUE.glob(prefix, queue="tutor:*")):
        tutors[key.decode().rsplit(":", 1)[1]] = int(client.zcard(key))
    if not tutors:
        _say("list`): empty")
        return
    tutor, _ = tutors.most_common(1)[0]
    _say(f"list --staff {tutor}`), first lines:")
    listing = _engagement(env, "review", "list", "--staff", tutor).splitlines()
    for line in listing[:7]:
        _say("  " + line)
    first = next(line.split()[3] for line in listing[1:] if line.strip() and "n_" in line)
    _say(f"\n{tutor} gets in touch with the student and records it (`engagement review decide")
    _say(f"{first} --staff {tutor} --action contacted`):")
    decided = _engagement(env, "review", "decide", first, "--staff", tutor, "--action", "contacted")
    for line in decided.splitlines():
        _say("  " + line)


def _wait_settled(
    worker: Child,
    worker_port: int,
    notifier: Child,
    notifier_port: int,
    expected_signals: int,
    expected_dead: int,
    closed_by_s: float,
) -> tuple[dict[str, float], dict[str, float]]:
    """Poll both processes' metrics until every event is applied, the last day closed (its
    start after ``closed_by_s``) and every nudge decided."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    stable_since: float | None = None
    last: tuple[float, float] = (-1.0, -1.0)
    applied = dead = nudges = decided = 0.0
    while time.monotonic() < deadline:
        for child in (worker, notifier):
            if not child.alive():
                msg = f"{child.name} stopped unexpectedly:\n{child.tail()}"
                raise ProcessError(msg)
        w, n = scrape(worker_port), scrape(notifier_port)
        applied = total(w, "engagement_signals_applied_total")
        dead = total(w, "engagement_deadlettered_total")
        nudges = total(w, "engagement_nudges_total")
        decided = total(n, "engagement_interventions_total") + total(
            n, "engagement_duplicates_total"
        )
        closed = total(w, "engagement_closed_day_timestamp_seconds") >= closed_by_s
        if applied >= expected_signals and dead >= expected_dead and closed and decided >= nudges:
            if last == (nudges, decided) and stable_since and time.monotonic() - stable_since > 3:
                return w, n
            if last != (nudges, decided):
                stable_since = time.monotonic()
            last = (nudges, decided)
        time.sleep(0.25)
    msg = (
        f"the pipeline did not settle in {SETTLE_TIMEOUT_S:.0f}s: signals applied "
        f"{applied:.0f}/{expected_signals}, dead letters {dead:.0f}/{expected_dead}, nudges "
        f"{nudges:.0f}, decided {decided:.0f}; logs are in .engagement/demo"
    )
    raise ProcessError(msg)


def _by_label(samples: dict[str, float], name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in samples.items():
        if key.startswith(name + "{"):
            out[key[len(name) + 1 : -1]] = value
    return out


def _student_outcomes(
    sim: Simulation,
    client: redis.Redis,
    prefix: str,
    pseudonymise: Pseudonymiser,
    opted_out: set[str],
) -> tuple[Counter[str], Counter[str]]:
    """Report suppressions and opt-outs from the students' own records; return who was
    reached and how many there were, by persona."""
    reached: Counter[str] = Counter()
    people: Counter[str] = Counter()
    why_not: Counter[str] = Counter()
    to_opted_out: Counter[str] = Counter()
    for student_id, truth in sim.truth.students.items():
        people[truth.persona.value] += 1
        rows = [
            json.loads(r)
            for r in client.lrange(Keys(prefix).interventions(pseudonymise(student_id)), 0, -1)
        ]
        if rows:
            reached[truth.persona.value] += 1
        why_not.update(r["reason"] for r in rows if r["outcome"] == "suppressed")
        if student_id in opted_out:
            to_opted_out.update(r["outcome"] for r in rows if r["tier"] == "prompt")
    _say("\nSuppressed, by reason:")
    for reason, count in sorted(why_not.items()):
        _say(f"  {reason:<20} {count:>4}")
    if "cooldown" in why_not:
        _say(
            "  (cooldown: a student is sent at most one automated prompt every "
            "ENGAGEMENT_PROMPT_COOLDOWN_HOURS, 72 by default; the demo plays four weeks in "
            "seconds, so a second prompt within the term lands inside that period)"
        )
    _say(
        f"\n{len(opted_out)} students had opted out of automated prompts (through the "
        f"preferences topic); prompts about them: {to_opted_out['suppressed']} suppressed, "
        f"{to_opted_out['delivered']} delivered."
    )
    return reached, people


def _report(
    sim: Simulation,
    w: dict[str, float],
    n: dict[str, float],
    client: redis.Redis,
    prefix: str,
    pseudonymise: Pseudonymiser,
    opted_out: set[str],
    received: Path,
    elapsed: float,
) -> None:
    _say("\n=== engagement-stream demo report ===")
    _say(
        f"cohort: {len(sim.truth.students)} students, {sim.config.weeks} weeks from "
        f"{sim.config.start:%d %b %Y} (Europe/London), processed in {elapsed:.1f}s"
    )
    _say("\nEvents in, per source:")
    for label, value in sorted(_by_label(w, "engagement_events_received_total").items()):
        _say(f"  {label.split('=')[1]:<12} {int(value):>8}")
    _say(f"  duplicates counted once: {int(total(w, 'engagement_duplicates_total'))}")
    _say("\nDead-lettered, by reason:")
    for label, value in sorted(_by_label(w, "engagement_deadlettered_total").items()):
        _say(f"  {label.split('=')[1]:<24} {int(value):>4}")
    _say("\nNudges, by rule:")
    for label, value in sorted(_by_label(w, "engagement_nudges_total").items()):
        _say(f"  {label:<60} {int(value):>4}")
    _say("\nData gaps found (source health), by source and reason:")
    gaps = _by_label(w, "engagement_source_gaps_total")
    for label, value in sorted(gaps.items()):
        _say(f"  {label:<60} {int(value):>4}")
    if not gaps:
        _say("  none: every feed, door and register behaved as usual")
    _say("\nDecisions (intervention records), by outcome:")
    for label, value in sorted(_by_label(n, "engagement_interventions_total").items()):
        _say(f"  {label.split('=')[1]:<20} {int(value):>4}")
    reached, people = _student_outcomes(sim, client, prefix, pseudonymise, opted_out)
    _say("\nSimulated disengaging students who were nudged:")
    for persona in DISENGAGING:
        _say(f"  {persona.value:<20} {reached[persona.value]:>3} of {people[persona.value]:>3}")
    engaged_reached = reached["engaged"]
    _say(f"  (engaged students nudged: {engaged_reached} of {people['engaged']})")
    lines = received.read_text(encoding="utf-8").splitlines() if received.exists() else []
    if lines:
        payload: dict[str, Any] = json.loads(lines[0])["payload"]
        _say("\nOne prompt as the notification service received it (signed, idempotency key):")
        _say(
            f"  nudge {payload['nudge_id']}  rule {payload['rule_id']} "
            f"v{payload['rule_version']}  tier {payload['tier']}  channel {payload['channel']}"
        )
        _say(f"  subject: {payload['message']['subject']}")
        _say("  message:\n    " + payload["message"]["body"].replace("\n", "\n    "))


def _stored_data(
    client: redis.Redis, redis_url: str, prefix: str, student: tuple[str, str]
) -> None:
    """What Redis holds now, family by family, checked against the key register."""
    families: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    undeclared = []
    names = [k.decode() for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    for name in names:
        family = family_of(name, prefix)
        if family is None:
            undeclared.append(name)
            continue
        families[family.name] += 1
        classes[family.retention.value] += 1
    _say(
        f"\nStored data (the key register: docs/keys.md, `engagement keys`): {len(names)} keys "
        f"in {len(families)} families; undeclared keys: {len(undeclared)}"
    )
    _say("  by retention class: " + ", ".join(f"{c} {n}" for c, n in sorted(classes.items())))

    async def about(pseudonym: str) -> StudentKeys:
        async_client = aioredis.Redis.from_url(redis_url)
        try:
            return await student_keys(async_client, prefix, pseudonym)
        finally:
            await async_client.aclose()

    student_id, pseudonym = student
    found = asyncio.run(about(pseudonym))
    named = {name for name in names if pseudonym in name}
    _say(
        f"  everything about student {student_id}: {len(found.own)} keys of their own and "
        f"{len(found.shared)} shared keys with entries about them; keys naming them that "
        f"the register missed: {len(named - set(found.own))}"
    )


def run_demo(*, students: int, weeks: int, seed: int) -> int:
    """Start everything, simulate a cohort, report, and stop everything that was started."""
    workdir = Path(".engagement") / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    key = secrets.token_urlsafe(32)
    prefix = f"demo{secrets.token_hex(3)}"
    started = time.monotonic()
    _say("starting the embedded broker and Redis ...")
    with LocalStack(workdir / "stack") as stack:
        endpoints = stack.endpoints
        worker_port, notifier_port, receiver_port = free_port(), free_port(), free_port()
        received = workdir / "received.jsonl"
        env = {
            **endpoints.as_env(),
            "ENGAGEMENT_PSEUDONYM_KEY": key,
            "ENGAGEMENT_TOPIC_PREFIX": f"{prefix}.",
            "ENGAGEMENT_KEY_PREFIX": prefix,
            "ENGAGEMENT_WEBHOOK_URL": f"http://127.0.0.1:{receiver_port}/notify",
            "ENGAGEMENT_WEBHOOK_SECRET": secrets.token_hex(24),
            # The demo compresses a term into seconds; quiet hours (21:00-08:00 by default)
            # would hold every prompt if it ran in the evening. See the README on quiet hours.
            "ENGAGEMENT_QUIET_HOURS": "off",
            "ENGAGEMENT_NOTIFIER_TICK_S": "1",
            "ENGAGEMENT_STATE_DIR": str(workdir),
            # The simulated feeds stop when the term ends; count them idle after a few seconds
            # (not the default minute) so the last days close and are decided promptly.
            "ENGAGEMENT_FEED_IDLE_S": "3",
        }
        settings = load_settings(pseudonym_key=key, topic_prefix=f"{prefix}.")
        ensure_topics(endpoints.kafka_bootstrap, settings.topics, settings.partitions)
        receiver = Child(
            "receiver",
            ["receiver", "--port", str(receiver_port), "--out", str(received)],
            env,
            workdir,
        ).start()
        worker = Child(
            "worker", ["worker"], {**env, "ENGAGEMENT_WEB_PORT": str(worker_port)}, workdir
        ).start()
        notifier = Child(
            "notifier", ["notifier"], {**env, "ENGAGEMENT_WEB_PORT": str(notifier_port)}, workdir
        ).start()
        client = redis.Redis.from_url(endpoints.redis_url)
        people = None
        try:
            _say("simulating the cohort ...")
            sim = simulate(SimConfig(students=students, weeks=weeks, seed=seed))
            files = sim.write(workdir / "simulation")
            for kind in ("roster", "timetable"):
                loaded = publish_reference(
                    endpoints.kafka_bootstrap, settings.topics, kind, files[kind]
                )
                _say(f"{kind}: {loaded.summary().splitlines()[0]}")
            pseudonymise = Pseudonymiser(SecretStr(key))
            receiver.wait_http(receiver_port)
            worker.wait_http(worker_port)
            notifier.wait_http(notifier_port)
            people = start_api(env, workdir)
            opted_out = _opt_out_some(sim, endpoints.kafka_bootstrap, settings.topics.preferences)
            _say(f"publishing {len(sim.events)} events and {len(sim.malformed)} bad inputs ...")
            t0 = time.monotonic()
            with Publisher(endpoints.kafka_bootstrap, topics=settings.topics) as publisher:
                report = publish_simulation(sim, publisher)
            _say(report.summary().splitlines()[0])
            last_event = max(datetime.fromisoformat(str(e["occurred_at"])) for _, e in sim.events)
            grace = timedelta(hours=settings.late_grace_hours)
            closed_by = local_day(
                last_event - grace, settings.zone
            )  # the day after the last closed
            w, n = _wait_settled(
                worker,
                worker_port,
                notifier,
                notifier_port,
                sum(sim.truth.totals.values()),
                len(sim.malformed),
                day_start_ms(closed_by, settings.zone) / 1000,
            )
            _report(
                sim,
                w,
                n,
                client,
                prefix,
                pseudonymise,
                opted_out,
                received,
                time.monotonic() - t0,
            )
            _say(reach_report(sim, w, endpoints.kafka_bootstrap, settings, pseudonymise))
            _review_demo(env, client, prefix)
            nudged = first_nudged(client, prefix, sim, pseudonymise)
            _stored_data(client, endpoints.redis_url, prefix, nudged)
            tutors = {r["student_id"]: r.get("personal_tutor") for r in sim.roster}
            show_people(people, nudged[0], str(tutors.get(nudged[0]) or "") or None, _say)
        finally:
            client.close()
            for child in (notifier, worker, receiver, *([people.api] if people else [])):
                child.stop()
    _say(
        f"\nall stopped; the demo took {time.monotonic() - started:.0f}s "
        f"(logs, ground truth, roster and timetable in {workdir})"
    )
    return 0
