"""``engagement bench api``: the people-facing API's read path under load, over real HTTP.

The state of ``students`` students (default 30,000) is written to Redis as the worker and the
notifier leave it: a state hash of 30 to 120 days of day counts per source and attendance
marks, a roster entry, a few intervention records, and for one student in ten an invitation in
their personal tutor's review queue. Then an ``engagement api`` process (the built-in local
issuer, so tokens are minted here with the same keys) is driven open loop: ``GET /v1/me`` at
``rate`` requests per second for ``seconds``, each request as a different student, then
``GET /v1/review`` as the tutors at ``review_rate``. Each request is sent at its scheduled
time whether or not earlier ones have answered, and its latency counts from that time, so a
slow answer cannot hide the ones queued behind it. The figures: p50/p90/p99/max per endpoint,
the rate achieved, answers other than 200 by status, the API's peak RSS and the Redis memory
the students take. The bench's keys are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import rsa

from agents.model.eventtime import local_day, to_epoch_ms
from agents.model.pseudonym import Pseudonymiser
from agents.store.reference import ReferenceStore
from schemas.access import Role
from schemas.interventions import InterventionRecord, Outcome
from schemas.keys import Keys
from schemas.nudges import Channel, Explanation, Nudge, Route, Tier
from schemas.reference import RosterEntry
from schemas.review import load_teams
from schemas.rules import load_rules
from schemas.settings import Settings, load_settings
from sinks.config import staff_routes
from sinks.stores.interventions import InterventionLog
from sinks.stores.review import ReviewQueue
from stream.api.issuer import LocalIssuer, LocalKeys
from stream.dev.bench.figures import percentile
from stream.dev.processes import Child, free_port
from stream.endpoints import Endpoints

TUTEES = 30  # students per personal tutor
REVIEW_EVERY = 10  # one student in ten has an invitation waiting for their tutor
BATCH = 500  # students per pipeline while seeding
CONCURRENCY = 64  # store calls in flight while seeding
MAX_TOKENS = 6000  # distinct students signed in for /v1/me (one RS256 token each)
TARGETS_MS = {"me": 50.0, "review": 100.0}


class _KeysOnce(LocalKeys):
    """The local issuer's keys with the signing key parsed once: the bench mints thousands."""

    _signing: tuple[str, rsa.RSAPrivateKey] | None = None

    def signing_key(self) -> tuple[str, rsa.RSAPrivateKey]:
        if self._signing is None:
            self._signing = super().signing_key()
        return self._signing


@dataclass(frozen=True)
class Cohort:
    """Who was seeded: student ids and the tutors with something in their queue."""

    students: list[str]
    tutors: list[str]


def student_id(n: int) -> str:
    """The bench's n-th student."""
    return f"B{n:07d}"


def tutor_of(n: int) -> str:
    """The personal tutor of the n-th student."""
    return f"T{n // TUTEES:05d}"


def state_fields(rng: random.Random, today: int, now: datetime) -> dict[str, str]:
    """One student's state hash as the worker writes it: 30 to 120 days of records, online
    most days, on campus and at sessions on most weekdays, in the library now and then."""
    days = rng.randint(30, 120)
    fields = {"first": str(to_epoch_ms(now - timedelta(days=days)))}
    for day in range(today - days, today + 1):
        weekday = date.fromordinal(day).weekday() < 5
        if rng.random() < 0.6:
            fields[f"d:{day}:vle"] = str(rng.randint(1, 12))
        if weekday and rng.random() < 0.7:
            fields[f"d:{day}:swipe"] = str(rng.randint(1, 4))
        if rng.random() < 0.1:
            fields[f"d:{day}:library"] = "1"
        if weekday and rng.random() < 0.5:
            present, absent = rng.randint(0, 2), rng.randint(0, 1)
            fields[f"a:{day}"] = f"{present},0,{absent},0"
    return fields


def record(pseudonym: str, n: int, at: datetime) -> InterventionRecord:
    """A prompt's record: delivered, or suppressed with its reason."""
    delivered = n % 3 != 2
    return InterventionRecord(
        record_id=f"r_{secrets.token_hex(16)}",
        nudge_id=f"n_{secrets.token_hex(16)}",
        pseudonym=pseudonym,
        rule_id="no_vle_activity_7d",
        rule_version=1,
        tier=Tier.PROMPT,
        route=Route.STUDENT,
        outcome=Outcome.DELIVERED if delivered else Outcome.SUPPRESSED,
        reason="sent" if delivered else "opted_out",
        detail="Sent by e-mail." if delivered else "Not sent: you opted out of e-mail.",
        channels=(Channel.EMAIL,),
        decided_at=at - timedelta(days=7 * n + 1),
        summary="No online activity for 7 days.",
    )


def invitation(pseudonym: str, at: datetime) -> Nudge:
    """An invitation for the personal tutor, as the notifier queues one."""
    return Nudge(
        nudge_id=f"n_{secrets.token_hex(16)}",
        pseudonym=pseudonym,
        rule_id="no_activity_14d",
        rule_version=1,
        tier=Tier.INVITATION,
        channels=(),
        route=Route.PERSONAL_TUTOR,
        created_at=at - timedelta(days=1),
        explanation=Explanation(
            summary="No activity recorded for 14 days.",
            metrics={"days": 14},
            threshold="no activity for 14 days",
            window_start=(at - timedelta(days=15)).date(),
            window_end=(at - timedelta(days=1)).date(),
            sources=("swipe", "vle"),
        ),
    )


async def _bounded(jobs: Sequence[Awaitable[Any]]) -> None:
    """Await store calls CONCURRENCY at a time."""
    for i in range(0, len(jobs), CONCURRENCY):
        await asyncio.gather(*jobs[i : i + CONCURRENCY])


async def seed(settings: Settings, redis_url: str, students: int, seed_value: int = 7) -> Cohort:
    """Write the cohort's state, roster, records and review items; return who was seeded."""
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=CONCURRENCY)
    client = aioredis.Redis(connection_pool=pool)
    rng = random.Random(seed_value)  # noqa: S311  # test data, not security
    now = datetime.now(UTC)
    today = local_day(now, settings.zone)
    pseudonymise = Pseudonymiser(settings.pseudonym_key)
    keys = Keys(settings.key_prefix)
    reference = ReferenceStore(client, settings.key_prefix, pseudonymise, settings.zone)
    log = InterventionLog(client, settings.key_prefix)
    teams = load_teams(settings.teams_file, routes=staff_routes(load_rules(settings.rules_file)))
    queue = ReviewQueue(
        client, settings.key_prefix, teams, log.append, recorded_key=log.recorded_key
    )
    ids = [student_id(n) for n in range(students)]
    tutors: set[str] = set()
    try:
        for start in range(0, students, BATCH):
            chunk = range(start, min(start + BATCH, students))
            async with client.pipeline(transaction=False) as pipe:
                for n in chunk:
                    fields = state_fields(rng, today, now)
                    pipe.hset(keys.state(pseudonymise(ids[n])), mapping=fields)  # type: ignore[arg-type]  # redis-py's mapping type is invariant
                await pipe.execute()
            jobs: list[Awaitable[Any]] = []
            for n in chunk:
                who = pseudonymise(ids[n])
                entry = RosterEntry(
                    student_id=ids[n],
                    personal_tutor=tutor_of(n),
                    course=f"C{n % 40:02d}",
                    sponsored_visa=n % 20 == 0,
                )
                jobs.append(reference.put_roster(entry))
                for k in range(rng.randint(0, 3)):
                    jobs.append(log.append(record(who, k, now)))
                if n % REVIEW_EVERY == 0:
                    nudge, where = invitation(who, now), f"tutor:{tutor_of(n)}"
                    jobs.append(queue.enqueue(nudge, where, now))
                    tutors.add(tutor_of(n))
            await _bounded(jobs)
    finally:
        await client.aclose()
        await pool.disconnect()
    return Cohort(ids, sorted(tutors))


async def _used_memory(redis_url: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        info = await client.info("memory")
        return int(info["used_memory"])
    finally:
        await client.aclose()


async def _delete_prefix(redis_url: str, prefix: str) -> int:
    """Delete every key under the bench's key prefix."""
    client = aioredis.Redis.from_url(redis_url)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}:*", count=2000):
            batch.append(key)
            if len(batch) >= 2000:
                deleted += await client.unlink(*batch)
                batch = []
        if batch:
            deleted += await client.unlink(*batch)
    finally:
        await client.aclose()
    return deleted


async def drive(
    url: str, tokens: Sequence[str], rate: int, seconds: float, warmup: int = 50
) -> dict[str, Any]:
    """GET ``url`` open loop at ``rate`` requests/s for ``seconds``, cycling through
    ``tokens``; latency from each request's scheduled time."""
    samples: list[float] = []
    statuses: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(token: str, at: float | None) -> None:
            if at is not None:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
            start = at if at is not None else time.perf_counter()
            try:
                headers = {"Authorization": f"Bearer {token}"}
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            if at is not None:
                samples.append((time.perf_counter() - start) * 1000)
                statuses[status] += 1

        # Warm-up (connections, the API's key set, first-call paths), not measured.
        await asyncio.gather(*(one(tokens[n % len(tokens)], None) for n in range(warmup)))
        total = max(1, int(rate * seconds))
        begin = time.perf_counter() + 0.2
        await asyncio.gather(
            *(one(tokens[n % len(tokens)], begin + n / rate) for n in range(total))
        )
        elapsed = time.perf_counter() - begin
    ordered = sorted(samples)
    return {
        "requests": len(ordered),
        "target_rate": rate,
        "achieved_rate": round(len(ordered) / elapsed, 1),
        "distinct_users": min(len(tokens), len(ordered)),
        "statuses": dict(statuses),
        "errors": {k: v for k, v in statuses.items() if k != "200"},
        "latency_ms": {
            "p50": round(percentile(ordered, 0.50), 2),
            "p90": round(percentile(ordered, 0.90), 2),
            "p99": round(percentile(ordered, 0.99), 2),
            "max": round(ordered[-1], 2),
        },
    }


def api_bench(
    endpoints: Endpoints,
    workdir: Path,
    *,
    students: int = 30_000,
    seconds: float = 30,
    rate: int = 200,
    review_rate: int = 50,
) -> dict[str, Any]:
    """Seed, start an API process, drive both endpoints; return the figures."""
    prefix = f"ab{secrets.token_hex(3)}"
    port = free_port()
    state_dir = workdir / f"api-{prefix}"
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    overrides: dict[str, Any] = {"pseudonym_key": key, "key_prefix": prefix}
    overrides |= {"topic_prefix": f"{prefix}.", "state_dir": state_dir, "api_port": port}
    settings = load_settings(**overrides, oidc_issuer="local", local_setup=True)
    redis_url = endpoints.redis_url
    figures: dict[str, Any] = {"students": students, "key_prefix": prefix}
    try:
        before = asyncio.run(_used_memory(redis_url))
        started = time.perf_counter()
        cohort = asyncio.run(seed(settings, redis_url, students))
        figures["seed_seconds"] = round(time.perf_counter() - started, 1)
        used = asyncio.run(_used_memory(redis_url)) - before
        figures["redis_used_mib"] = round(used / 2**20, 1)
        figures["redis_kib_per_student"] = round(used / 1024 / max(1, students), 2)
        figures["review_tutors"] = len(cohort.tutors)
        named = {"PSEUDONYM_KEY": key, "KEY_PREFIX": prefix, "TOPIC_PREFIX": f"{prefix}."}
        named |= {"STATE_DIR": str(state_dir), "API_PORT": str(port), "OIDC_ISSUER": "local"}
        named |= {"LOCAL_SETUP": "yes", "LOG_LEVEL": "WARNING"}
        env = endpoints.as_env() | {f"ENGAGEMENT_{name}": value for name, value in named.items()}
        issuer = LocalIssuer.from_settings(settings)
        issuer.keys = _KeysOnce(state_dir)
        child = Child("bench-api", ["api"], env, workdir).start()
        try:
            child.wait_http(port)
            figures |= _measure(issuer, cohort, port, rate, seconds, review_rate)
            figures["api_peak_rss_mib"] = child.peak_rss_mib()
        finally:
            child.stop()
    finally:
        asyncio.run(_delete_prefix(redis_url, prefix))
    return figures


def _measure(
    issuer: LocalIssuer, cohort: Cohort, port: int, rate: int, seconds: float, review_rate: int
) -> dict[str, Any]:
    wanted = min(len(cohort.students), MAX_TOKENS, max(1, int(rate * seconds)))
    picker = random.Random(11)  # noqa: S311  # test data, not security
    chosen = picker.sample(cohort.students, wanted)
    students = [issuer.mint(s, [Role.STUDENT], seconds=3600) for s in chosen]
    tutors = [issuer.mint(t, [Role.TUTOR], seconds=3600) for t in cohort.tutors]
    base = f"http://127.0.0.1:{port}"
    out = {"me": asyncio.run(drive(f"{base}/v1/me", students, rate, seconds))}
    if tutors:
        out["review"] = asyncio.run(drive(f"{base}/v1/review", tutors, review_rate, seconds))
    return out


def run_api_bench(
    *, students: int, seconds: float, rate: int, review_rate: int, out: Path | None
) -> int:
    """``engagement bench api``: on an embedded stack (or REDIS_URL and KAFKA_BOOTSTRAP_SERVERS
    when set), print the figures and write them as JSON to ``out``; 1 if any answer was not
    a 200."""
    from stream.dev.stack import LocalStack

    workdir = Path(".engagement") / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine_cores": os.cpu_count(), "at": datetime.now(UTC).isoformat()}
    print(
        f"api: {students:,} students' state in Redis; GET /v1/me at {rate}/s and "
        f"GET /v1/review at {review_rate}/s for {seconds:g}s each ...",
        flush=True,
    )
    external = {
        "kafka_bootstrap": os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        "redis_url": os.environ.get("REDIS_URL") or None,
    }
    with LocalStack(workdir / "stack", **external) as stack:
        figures = api_bench(
            stack.endpoints, workdir, students=students, seconds=seconds, rate=rate,
            review_rate=review_rate,
        )  # fmt: skip
    results["api"] = figures
    print(
        f"  seeded in {figures['seed_seconds']:.1f}s; Redis holds {figures['redis_used_mib']:.0f} "
        f"MiB for them ({figures['redis_kib_per_student']:.1f} KiB a student); API peak RSS "
        f"{figures['api_peak_rss_mib'] or 0:.0f} MiB",
        flush=True,
    )
    failed = False
    for name, path in (("me", "GET /v1/me"), ("review", "GET /v1/review")):
        if name not in figures:
            continue
        run, lat = figures[name], figures[name]["latency_ms"]
        verdict = "meets" if lat["p99"] < TARGETS_MS[name] else "MISSES"
        print(
            f"  {path}: {run['requests']} requests at {run['achieved_rate']:.0f}/s "
            f"({run['distinct_users']} users): p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, "
            f"p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms ({verdict} p99 < "
            f"{TARGETS_MS[name]:g} ms); not 200: {run['errors'] or 'none'}",
            flush=True,
        )
        failed = failed or bool(run["errors"])
    if out is not None:
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0
