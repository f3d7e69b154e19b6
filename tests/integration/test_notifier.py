"""The notifier in-process against real parts: Redis, the broker's interventions topic, a real
local HTTP notification service (checking signature and idempotency key) and a real SMTP
server. The clock is the only thing the tests set, so quiet hours need no waiting."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiohttp import web
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, TopicPartition
from pydantic import SecretStr

from agents.context import Context
from agents.model.pseudonym import Pseudonymiser
from agents.store.reference import ReferenceStore
from agents.store.state import EngagementStore
from ops.metrics import create_metrics
from schemas.interventions import Outcome, StaffAction, Stage
from schemas.nudges import Channel, Nudge, Route, Tier
from schemas.preferences import PreferenceChange
from schemas.quiet import QuietHours
from schemas.reference import RosterEntry
from schemas.review import DEFAULT_TEAMS, load_teams
from schemas.rules import load_rules
from schemas.settings import load_settings
from sinks.channels.breaker import CircuitBreaker
from sinks.channels.outbound import Transport
from sinks.channels.producer import RecordProducer
from sinks.channels.smtp import SmtpChannel
from sinks.channels.webhook import WebhookChannel, verify
from sinks.messages import load_messages
from sinks.notifier import Notifier
from sinks.stores.cooldown import PromptCooldown
from sinks.stores.deferred import DeferredPrompts
from sinks.stores.interventions import InterventionLog
from sinks.stores.preferences import PreferenceStore
from sinks.stores.review import ReviewQueue
from stream.dev.processes import free_port
from stream.dev.stack import Endpoints
from stream.topics import ensure_topics
from tests.unit.build import days, only, run, student

pytestmark = pytest.mark.integration

SECRET = "notifier-test-secret-0123456789"  # noqa: S105  # a test's shared secret
KEY = "k" * 20  # the key tests/unit/build.py pseudonymises with
STUDENT = "S7654321"
END = date(2026, 10, 25).toordinal()
LONDON = ZoneInfo("Europe/London")
NOON = datetime(2026, 11, 23, 12, 0, tzinfo=LONDON)


def vle_prompt() -> Nudge:
    """A prompt on email, then app: no VLE activity for 7 days."""
    who = student(days(END - 20, END - 8, vle=3), END - 20)
    (nudge,) = run(only("no_vle_activity_7d"), who, END - 20, END)
    return nudge


@dataclass
class Message:
    """What the notifier reads from a Kafka message."""

    value: bytes
    topic: str = "nudges"
    partition: int = 0
    offset: int = 0


def message(nudge: Nudge) -> Message:
    return Message(nudge.model_dump_json().encode())


class DeadLetters:
    """The dead-letter topic's ``send``, kept in a list (this test has no Faust app)."""

    def __init__(self) -> None:
        self.letters: list[bytes] = []

    async def send(self, *, value: bytes, force: bool) -> Any:
        self.letters.append(value)

        async def sent() -> None:
            return None

        return sent()


def numbered(nudge: Nudge, n: int, **changes: Any) -> Nudge:
    return nudge.model_copy(update={"nudge_id": f"{nudge.nudge_id}-{n}", **changes})


# -- a real notification service -----------------------------------------------------------------


@dataclass
class Service:
    """A local HTTP notification service with a script of answers."""

    port: int = 0
    script: list[int | float] = field(default_factory=list)  # status, or seconds to stall
    requests: list[dict[str, Any]] = field(default_factory=list)
    delivered: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_signatures: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(SECRET, body, request.headers):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        key = request.headers["Idempotency-Key"]
        payload = json.loads(body)
        self.requests.append({"key": key, "payload": payload})
        step = self.script.pop(0) if self.script else 200
        if isinstance(step, float):
            await asyncio.sleep(step)
            step = 200
        if step != 200:
            return web.json_response({"error": "scripted"}, status=step)
        self.delivered.setdefault(key, payload)  # a repeated key is the same message
        return web.json_response({"status": "accepted"})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"


async def serve(svc: Service) -> web.AppRunner:
    """Start ``svc`` on a free loopback port; the caller cleans the runner up."""
    app = web.Application()
    app.router.add_post("/notify", svc.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    svc.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # bound
    return runner


@pytest_asyncio.fixture
async def service() -> AsyncIterator[Service]:
    svc = Service()
    runner = await serve(svc)
    try:
        yield svc
    finally:
        await runner.cleanup()


# -- the notifier's parts ----------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


@dataclass
class Parts:
    notifier: Notifier
    log: InterventionLog
    prefs: PreferenceStore
    review: ReviewQueue
    clock: Clock
    topic: str
    redis: aioredis.Redis
    stack: Endpoints
    prefix: str

    producer: RecordProducer | None = None

    async def close(self) -> None:
        for transport in set(self.notifier.transports.values()):
            await transport.close()
        await self.redis.aclose()
        if self.producer is not None:
            self.producer.close()

    async def records(self, pseudonym: str) -> list[Any]:
        return await self.log.for_student(pseudonym)

    def on_topic(self, expected: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Every record on the interventions topic, once at least ``expected`` are there
        and no more arrive for a second."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.stack.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        consumer.assign([TopicPartition(self.topic, p) for p in range(4)])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        try:
            while time.monotonic() < deadline:
                batch = [r for rs in consumer.poll(timeout_ms=200).values() for r in rs]
                out.extend(json.loads(r.value) for r in batch)
                if batch:
                    quiet_since = time.monotonic()
                elif len(out) >= expected and time.monotonic() - quiet_since > 1.0:
                    break
        finally:
            consumer.close()
        return out

    def counter(self, name: str, **labels: str) -> float:
        value = self.notifier.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


async def build(*args: Any, **kwargs: Any) -> Parts:
    parts = await _build(*args, **kwargs)
    BUILT.append(parts)
    return parts


async def _build(
    stack: Endpoints,
    prefix: str,
    transports: dict[Channel, Transport],
    *,
    quiet: str = "off",
    teams_path: Path | None = None,
    now: datetime = NOON,
    cooldown_hours: float = 0,
) -> Parts:
    config = load_settings(
        pseudonym_key=KEY,
        key_prefix=prefix,
        topic_prefix=f"{prefix}.",
        redis_retry_s=0.1,
        quiet_hours=quiet,
    )
    ensure_topics(stack.kafka_bootstrap, config.topics, config.partitions)
    rules = load_rules()
    ctx = Context(
        settings=config,
        kafka_bootstrap=stack.kafka_bootstrap,
        redis_url=stack.redis_url,
        rules=rules,
        metrics=create_metrics(),
    )
    client = ctx.redis
    producer = RecordProducer(stack.kafka_bootstrap, client_id="test-notifier")
    log = InterventionLog(client, prefix, producer=producer, topic=config.topics.interventions)
    pseudonymise = Pseudonymiser(SecretStr(KEY))
    await client.set(f"{prefix}:id:{pseudonymise(STUDENT)}", STUDENT)
    references = ReferenceStore(client, prefix, pseudonymise, config.zone)
    await references.put_roster(RosterEntry(student_id=STUDENT, personal_tutor="T001"))
    teams = load_teams(teams_path or DEFAULT_TEAMS)
    review = ReviewQueue(client, prefix, teams, log.append, recorded_key=log.recorded_key)
    prefs = PreferenceStore(client, prefix)
    clock = Clock(now)
    notifier = Notifier(
        ctx,
        preferences=prefs,
        interventions=log,
        identities=EngagementStore(
            client, prefix=prefix, group="g", dedup_ttl_s=60, state_ttl_s=60
        ),
        references=references,
        review=review,
        deferred=DeferredPrompts(client, prefix),
        transports=transports,
        messages=load_messages(None, rules),
        quiet=QuietHours.parse(quiet, "Europe/London"),
        cooldown=PromptCooldown(client, prefix, cooldown_hours),
        dead_topic=DeadLetters(),
        clock=clock,
    )
    return Parts(
        notifier,
        log,
        prefs,
        review,
        clock,
        config.topics.interventions,
        client,
        stack,
        prefix,
        producer,
    )


BUILT: list[Parts] = []


@pytest_asyncio.fixture(autouse=True)
async def _close_parts() -> AsyncIterator[None]:
    """Close every notifier a test built (HTTP sessions, Redis, the producer)."""
    yield
    while BUILT:
        await BUILT.pop().close()


def webhook(service: Service, *, attempts: int = 3, breaker: CircuitBreaker | None = None) -> Any:
    return WebhookChannel(
        service.url,
        SECRET,
        timeout_s=0.3,
        attempts=attempts,
        backoff_s=0.01,
        breaker=breaker or CircuitBreaker(failure_threshold=50),
    )


def every_channel(transport: Transport) -> dict[Channel, Transport]:
    return dict.fromkeys(Channel, transport)


# -- webhook ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_prompt_is_delivered_signed_once_and_recorded_once_on_the_topic(
    stack: Endpoints, prefix: str, service: Service
) -> None:
    parts = await build(stack, prefix, every_channel(webhook(service)))
    nudge = vle_prompt()
    await parts.notifier.decide(nudge)
    await parts.notifier.decide(nudge)  # redelivered by Kafka: decided already

    assert service.bad_signatures == 0
    ((key, payload),) = service.delivered.items()
    assert key == nudge.nudge_id
    assert payload["student_id"] == STUDENT
    assert payload["channel"] == "email"  # the rule's first channel
    assert nudge.pseudonym not in json.dumps(payload)
    (record,) = await parts.records(nudge.pseudonym)
    assert record.outcome is Outcome.DELIVERED
    assert record.channels == (Channel.EMAIL,)
    assert record.message is not None
    assert record.message.body == payload["message"]["body"]
    assert nudge.explanation.summary in record.message.body
    assert parts.counter("engagement_duplicates_total") == 1
    on_topic = parts.on_topic(1)
    assert [r["record_id"] for r in on_topic] == [record.record_id]
    assert await parts.log.pending() == 0


@pytest.mark.asyncio
async def test_a_service_that_recovers_within_the_retries_gets_the_message(
    stack: Endpoints, prefix: str, service: Service
) -> None:
    parts = await build(stack, prefix, every_channel(webhook(service)))
    service.script = [500, 503]
    nudge = vle_prompt()
    await parts.notifier.decide(nudge)
    (record,) = await parts.records(nudge.pseudonym)
    assert (record.outcome, record.attempts) == (Outcome.DELIVERED, 3)
    assert {r["key"] for r in service.requests} == {nudge.nudge_id}


@pytest.mark.asyncio
@pytest.mark.parametrize(("script", "reason"), [([500] * 3, "http_500"), ([1.0] * 3, "timeout")])
async def test_500s_and_timeouts_are_retried_then_a_failed_record_is_written(
    stack: Endpoints, prefix: str, service: Service, script: list[int | float], reason: str
) -> None:
    parts = await build(stack, prefix, every_channel(webhook(service)))
    service.script = list(script)
    nudge = vle_prompt()
    await parts.notifier.decide(nudge)
    (record,) = await parts.records(nudge.pseudonym)
    assert (record.outcome, record.reason, record.attempts) == (Outcome.FAILED, reason, 3)
    assert "failed after 3 attempts" in record.detail
    assert len(service.requests) == 3
    assert service.delivered == {}
    assert parts.counter("engagement_deliveries_total", channel="email", result="failed") == 1


@pytest.mark.asyncio
async def test_an_open_breaker_holds_prompts_until_the_service_is_back(
    stack: Endpoints, prefix: str, service: Service
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=0.5)
    parts = await build(stack, prefix, every_channel(webhook(service, attempts=1, breaker=breaker)))
    service.script = [500]
    first, second = numbered(vle_prompt(), 1), numbered(vle_prompt(), 2)
    await parts.notifier.handle(message(first))  # fails and opens the breaker
    assert breaker.state == "open"
    started = time.monotonic()
    await parts.notifier.handle(message(second))  # waits for the trial, which succeeds
    assert time.monotonic() - started >= 0.3
    outcomes = {r.nudge_id: r.outcome for r in await parts.records(first.pseudonym)}
    assert outcomes == {first.nudge_id: Outcome.FAILED, second.nudge_id: Outcome.DELIVERED}
    assert list(service.delivered) == [second.nudge_id]
    assert parts.counter("engagement_deliveries_total", channel="email", result="circuit_open")


@pytest.mark.asyncio
async def test_a_prompt_held_by_the_breaker_reads_preferences_again_before_it_is_sent(
    stack: Endpoints, prefix: str, service: Service
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=1.0)
    parts = await build(stack, prefix, every_channel(webhook(service, attempts=1, breaker=breaker)))
    service.script = [500]
    first, held = numbered(vle_prompt(), 1), numbered(vle_prompt(), 2, channels=(Channel.EMAIL,))
    await parts.notifier.handle(message(first))
    waiting = asyncio.create_task(parts.notifier.handle(message(held)))
    await asyncio.sleep(0.3)  # held: the breaker is open
    assert not waiting.done()
    await parts.prefs.apply(held.pseudonym, change(1, opt_out=frozenset({Channel.EMAIL})))
    await asyncio.wait_for(waiting, 10)
    records = {r.nudge_id: r for r in await parts.records(held.pseudonym)}
    assert (records[held.nudge_id].outcome, records[held.nudge_id].reason) == (
        Outcome.SUPPRESSED,
        "opted_out",
    )
    assert service.delivered == {}


@pytest.mark.asyncio
async def test_a_delivery_begun_before_a_crash_is_finished_on_the_same_channel(
    stack: Endpoints, prefix: str, service: Service
) -> None:
    parts = await build(stack, prefix, every_channel(webhook(service)))
    nudge = vle_prompt()  # email first, then app
    await parts.log.mark_sending(nudge.nudge_id, Stage.NOTIFIER, Channel.APP)  # then killed
    await parts.notifier.decide(nudge)
    assert [p["channel"] for p in service.delivered.values()] == ["app"]
    (record,) = await parts.records(nudge.pseudonym)
    assert (record.outcome, record.channels) == (Outcome.DELIVERED, (Channel.APP,))


@pytest.mark.asyncio
async def test_a_prompt_deferred_before_its_record_was_lost_is_recorded_not_sent(
    stack: Endpoints, prefix: str, service: Service
) -> None:
    parts = await build(stack, prefix, every_channel(webhook(service)), quiet="21:00-08:00")
    nudge = vle_prompt()
    due = datetime(2026, 11, 24, 8, 0, tzinfo=LONDON)
    await parts.notifier.deferred.add(nudge, due)  # the notifier stopped right after this
    await parts.notifier.decide(nudge)  # at noon, after quiet hours: still deferred, once
    assert service.requests == []
    (record,) = await parts.records(nudge.pseudonym)
    assert (record.outcome, record.deferred_until) == (Outcome.DEFERRED, due)


@pytest.mark.asyncio
async def test_a_nudge_twice_in_one_batch_is_decided_once_and_a_bad_one_is_dead_lettered(
    stack: Endpoints, prefix: str, service: Service
) -> None:
    parts = await build(stack, prefix, every_channel(webhook(service)))
    nudge = vle_prompt()
    broken = Message(b'{"nudge_id": 1}')
    await parts.notifier.handle_many([message(nudge), message(nudge), broken])
    assert len(service.requests) == 1
    assert parts.counter("engagement_duplicates_total") == 1
    assert parts.counter("engagement_deadlettered_total", reason="invalid_value") == 1


@pytest.mark.asyncio
async def test_a_student_gets_at_most_one_prompt_in_the_cooling_off_period(
    stack: Endpoints, prefix: str, service: Service
) -> None:
    parts = await build(stack, prefix, every_channel(webhook(service)), cooldown_hours=72)
    service.script = [500] * 3  # the first prompt fails: it does not use up the period
    failed, first, second = (numbered(vle_prompt(), n) for n in (1, 2, 3))
    await parts.notifier.decide(failed)
    await asyncio.gather(parts.notifier.decide(first), parts.notifier.decide(second))
    parts.clock.now = NOON + timedelta(hours=73)
    third = numbered(vle_prompt(), 4)
    await parts.notifier.decide(third)
    outcomes = {r.nudge_id: (r.outcome, r.reason) for r in await parts.records(first.pseudonym)}
    assert outcomes[failed.nudge_id] == (Outcome.FAILED, "http_500")
    assert sorted(outcomes[n.nudge_id] for n in (first, second)) == [
        (Outcome.DELIVERED, "delivered"),
        (Outcome.SUPPRESSED, "cooldown"),
    ]
    assert outcomes[third.nudge_id] == (Outcome.DELIVERED, "delivered")  # the period is over
    assert len(service.delivered) == 2
    held = next(r for r in await parts.records(first.pseudonym) if r.reason == "cooldown")
    assert "at most one every 72 hours" in held.detail


# -- SMTP ------------------------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.mark.asyncio
async def test_a_real_smtp_server_receives_the_rendered_email(
    stack: Endpoints, prefix: str, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    smtp = SmtpChannel(
        "127.0.0.1",
        port,
        sender="student-support@example.ac.uk",
        starttls=False,
        username=None,
        password=None,
        timeout_s=5,
        attempts=2,
    )
    parts = await build(stack, prefix, {Channel.EMAIL: smtp})
    nudge = vle_prompt()
    await parts.notifier.decide(nudge)
    (envelope,) = box.messages
    assert envelope.rcpt_tos == [f"{STUDENT}@student.example.ac.uk"]
    text = envelope.content.decode()
    (record,) = await parts.records(nudge.pseudonym)
    assert record.outcome is Outcome.DELIVERED
    assert record.message is not None
    assert record.message.subject is not None
    assert f"Subject: {record.message.subject}" in text
    assert f"Message-ID: <{nudge.nudge_id}@engagement-stream>" in text
    assert "how we use" in text.lower() or "preferences" in text.lower()


# -- preferences -----------------------------------------------------------------------------


def change(n: int, **fields: Any) -> PreferenceChange:
    return PreferenceChange(
        change_id=f"c{n}",
        student_id=STUDENT,
        changed_at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=n),
        source="student-app",
        **fields,
    )


@pytest.mark.asyncio
async def test_an_opt_out_moves_the_prompt_to_the_next_channel_or_suppresses_it(
    stack: Endpoints, prefix: str, service: Service
) -> None:
    parts = await build(stack, prefix, every_channel(webhook(service)))
    nudge = vle_prompt()  # email, then app
    await parts.prefs.apply(nudge.pseudonym, change(1, opt_out=frozenset({Channel.EMAIL})))
    await parts.notifier.decide(numbered(nudge, 1))
    assert [p["channel"] for p in service.delivered.values()] == ["app"]
    await parts.prefs.apply(nudge.pseudonym, change(2, opt_out_all=True))
    await parts.prefs.apply(nudge.pseudonym, change(2, opt_out_all=True))  # redelivered: once
    await parts.notifier.decide(numbered(nudge, 2))
    assert len(service.delivered) == 1
    records = await parts.records(nudge.pseudonym)
    assert [(r.outcome, r.reason) for r in records] == [
        (Outcome.DELIVERED, "delivered"),
        (Outcome.SUPPRESSED, "opted_out"),
    ]
    history = await parts.prefs.history(nudge.pseudonym)
    assert [(h.change_id, h.source) for h in history] == [
        ("c1", "student-app"),
        ("c2", "student-app"),
    ]
    assert history[-1].result.opt_out_all


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("out"), st.sampled_from([*Channel, "all"])),
        st.tuples(st.just("in"), st.sampled_from([*Channel, "all"])),
        st.tuples(st.just("nudge"), st.permutations(list(Channel)).map(tuple)),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_no_prompt_ever_reaches_a_channel_the_student_opted_out_of(
    stack: Endpoints, ops: list[tuple[str, Any]]
) -> None:
    asyncio.run(_interleave(stack, ops))


async def _interleave(stack: Endpoints, ops: list[tuple[str, Any]]) -> None:
    import uuid

    service = Service()
    runner = await serve(service)
    parts = await build(stack, f"p{uuid.uuid4().hex[:10]}", every_channel(webhook(service)))
    try:
        base = vle_prompt()
        out_all, out = False, set[Channel]()
        expected: dict[str, Channel | None] = {}
        for n, (kind, what) in enumerate(ops):
            if kind == "nudge":
                nudge = numbered(base, n, channels=what)
                await parts.notifier.decide(nudge)
                allowed = [c for c in what if not out_all and c not in out]
                expected[nudge.nudge_id] = allowed[0] if allowed else None
                continue
            opt = kind == "out"
            fields: dict[str, Any] = (
                {"opt_out_all": opt}
                if what == "all"
                else {("opt_out" if opt else "opt_in"): frozenset({what})}
            )
            await parts.prefs.apply(base.pseudonym, change(n, **fields))
            if what == "all":
                out_all = opt
            elif opt:
                out.add(what)
            else:
                out.discard(what)
        sent = {key: Channel(p["channel"]) for key, p in service.delivered.items()}
        assert sent == {k: c for k, c in expected.items() if c is not None}
        records = {r.nudge_id: r for r in await parts.records(base.pseudonym)}
        for nudge_id, channel in expected.items():
            outcome = Outcome.DELIVERED if channel else Outcome.SUPPRESSED
            assert records[nudge_id].outcome is outcome
    finally:
        BUILT.remove(parts)
        await parts.close()
        await runner.cleanup()


# -- quiet hours -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_quiet_hours_defer_a_prompt_and_deliver_it_when_they_end(
    stack: Endpoints, prefix: str, service: Service
) -> None:
    evening = datetime(2026, 11, 23, 22, 15, tzinfo=LONDON)
    parts = await build(
        stack, prefix, every_channel(webhook(service)), quiet="21:00-08:00", now=evening
    )
    kept, dropped = numbered(vle_prompt(), 1), numbered(vle_prompt(), 2, channels=(Channel.SMS,))
    await parts.notifier.decide(kept)
    await parts.notifier.decide(dropped)
    await parts.notifier.tick()
    assert service.requests == []  # nothing at night
    deferred = await parts.records(kept.pseudonym)
    assert [r.outcome for r in deferred] == [Outcome.DEFERRED, Outcome.DEFERRED]
    assert deferred[0].deferred_until == datetime(2026, 11, 24, 8, 0, tzinfo=LONDON)
    assert "quiet hours" in deferred[0].detail
    # The student opts out of SMS overnight: that prompt is never sent.
    await parts.prefs.apply(kept.pseudonym, change(1, opt_out=frozenset({Channel.SMS})))

    parts.clock.now = datetime(2026, 11, 24, 7, 59, tzinfo=LONDON)
    await parts.notifier.tick()
    assert service.requests == []
    parts.clock.now = datetime(2026, 11, 24, 8, 0, 5, tzinfo=LONDON)
    await parts.notifier.tick()
    await parts.notifier.tick()  # a second tick finds nothing left
    assert list(service.delivered) == [kept.nudge_id]
    later = {(r.nudge_id, r.stage, r.outcome) for r in await parts.records(kept.pseudonym)}
    assert (kept.nudge_id, Stage.DEFERRED_DELIVERY, Outcome.DELIVERED) in later
    assert (dropped.nudge_id, Stage.DEFERRED_DELIVERY, Outcome.SUPPRESSED) in later
    assert len(later) == 4
    assert await parts.notifier.deferred.waiting() == 0


# -- review queue ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_invitation_waits_for_its_tutor_and_untouched_items_escalate(
    stack: Endpoints, prefix: str, service: Service, tmp_path: Path
) -> None:
    teams = tmp_path / "teams.toml"
    teams.write_text(
        DEFAULT_TEAMS.read_text(encoding="utf-8").replace(
            "escalate_after_hours = 72", "escalate_after_hours = 1"
        )
    )
    parts = await build(stack, prefix, every_channel(webhook(service)), teams_path=teams)
    prompt = vle_prompt()
    invite = numbered(
        prompt,
        1,
        tier=Tier.INVITATION,
        route=Route.PERSONAL_TUTOR,
        channels=(),
        rule_id="no_activity_14d",
    )
    other = numbered(
        prompt,
        2,
        tier=Tier.INVITATION,
        route=Route.PERSONAL_TUTOR,
        channels=(),
        rule_id="no_activity_14d",
    )
    await parts.notifier.decide(invite)
    await parts.notifier.decide(other)
    assert service.requests == []  # never sent to the student
    (queued, _) = await parts.records(prompt.pseudonym)
    assert (queued.outcome, queued.queue) == (Outcome.QUEUED_FOR_REVIEW, "tutor:T001")
    assert "personal tutor T001" in queued.detail

    assert {i.nudge_id for i in await parts.review.visible_to("T001")} == {
        invite.nudge_id,
        other.nudge_id,
    }
    assert await parts.review.visible_to("T002") == []
    decision = await parts.review.decide(
        invite.nudge_id, "T001", StaffAction.CONTACTED, reason=None, referred_to=None, now=NOON
    )
    assert (decision.outcome, decision.staff_id) == (Outcome.STAFF_DECISION, "T001")

    parts.clock.now = NOON + timedelta(hours=2)
    await parts.notifier.tick()
    lead = await parts.review.visible_to("ST-SENIOR-TUTOR")
    assert [i.nudge_id for i in lead] == [other.nudge_id]
    kinds = [(r.nudge_id, r.outcome) for r in await parts.records(prompt.pseudonym)]
    assert kinds == [
        (invite.nudge_id, Outcome.QUEUED_FOR_REVIEW),
        (other.nudge_id, Outcome.QUEUED_FOR_REVIEW),
        (invite.nudge_id, Outcome.STAFF_DECISION),
        (other.nudge_id, Outcome.ESCALATED),
    ]
    on_topic = parts.on_topic(4)
    assert sorted(r["outcome"] for r in on_topic) == sorted(o.value for _, o in kinds)
