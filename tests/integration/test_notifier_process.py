"""The notifier as a process: killed mid-delivery, driven by the review CLI, misconfigured."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from schemas.interventions import InterventionRecord, Outcome, Stage
from schemas.keys import Keys
from schemas.nudges import Nudge, Route, Tier
from schemas.review import DEFAULT_TEAMS
from sinks.channels.webhook import verify
from sinks.policy import MAX_BEGUN
from sinks.stores.interventions import record_id
from stream.dev.processes import free_port
from stream.dev.stack import Endpoints
from tests.integration.harness import WEBHOOK_SECRET, Pipeline, wait_for
from tests.unit.build import days, only, run, student

pytestmark = pytest.mark.integration

END = date(2026, 10, 25).toordinal()


def prompt_for(pipeline: Pipeline, student_id: str, n: int = 0, **changes: Any) -> Nudge:
    """A real prompt from the rules (no VLE activity for 7 days), about ``student_id``."""
    who = student(days(END - 20, END - 8, vle=3), END - 20)
    (nudge,) = run(only("no_vle_activity_7d"), who, END - 20, END)
    pseudonym = pipeline.pseudonym(student_id)
    pipeline.redis.set(f"{pipeline.prefix}:id:{pseudonym}", student_id)
    return nudge.model_copy(
        update={"pseudonym": pseudonym, "nudge_id": f"{nudge.nudge_id}-{n}", **changes}
    )


# -- a notification service that can hold its answer -------------------------------------------


class SlowService:
    """Accepts a message (the student has it), then answers only when released."""

    def __init__(self, *, hold_first: bool) -> None:
        self.hold_first = hold_first
        self.delivered: dict[str, int] = {}  # idempotency key -> messages handed to the student
        self.requests: list[str] = []
        self.arrived = threading.Event()
        self.answered = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not verify(WEBHOOK_SECRET, body, self.headers):
                    self.send_response(401)
                    self.end_headers()
                    return
                key = self.headers["Idempotency-Key"]
                with service.lock:
                    first = not service.requests
                    service.requests.append(key)
                    if key not in service.delivered:  # idempotent: a repeat is not re-sent
                        service.delivered[key] = 1
                service.arrived.set()
                if first and service.hold_first:
                    service.release.wait(30)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"status":"accepted"}')
                    self.wfile.flush()
                except OSError:
                    pass  # the notifier died while we held the answer
                service.answered.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/notify"

    def __enter__(self) -> SlowService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("when", ["before_the_answer", "after_the_answer"])
def test_a_notifier_killed_between_delivery_and_logging_delivers_and_logs_once(
    pipeline: Pipeline, when: str
) -> None:
    with SlowService(hold_first=when == "before_the_answer") as service:
        pipeline.env["ENGAGEMENT_WEBHOOK_URL"] = service.url
        pipeline.env["ENGAGEMENT_WEBHOOK_TIMEOUT_S"] = "60"
        notifier = pipeline.start("notifier", "notifier")
        nudge = prompt_for(pipeline, "S-CRASH")
        pipeline.publish_nudges([nudge])
        wait_for("the message to reach the service", lambda: service.arrived.is_set() or None)
        if when == "after_the_answer":
            wait_for("the service to answer", lambda: service.answered.is_set() or None)
        notifier.kill()  # SIGKILL: no chance to log what happened
        service.release.set()
        pipeline.start("notifier-again", "notifier")
        records = wait_for(
            "the decision after the restart",
            lambda: pipeline.records("S-CRASH") or None,
        )
    assert service.delivered == {nudge.nudge_id: 1}  # the student got it exactly once
    assert set(service.requests) == {nudge.nudge_id}  # any repeat carried the same key
    assert [(r["nudge_id"], r["outcome"]) for r in records] == [(nudge.nudge_id, "delivered")]
    on_topic = pipeline.topic(pipeline.settings.topics.interventions, expected=1)
    assert [(r["nudge_id"], r["outcome"]) for r in on_topic] == [(nudge.nudge_id, "delivered")]


# -- bounded repeats: a notifier killed with many deliveries in flight ---------------------------


class HoldingService:
    """A notification service that takes every message (a repeated key is the same message)
    and answers the first ``answer_first`` at once; the rest wait for ``release``. Every
    request is kept (its key, and the nudge id in its body), in order."""

    def __init__(self, *, answer_first: int, on_request: Any = None) -> None:
        self.requests: list[tuple[str, str]] = []  # (Idempotency-Key, body's nudge_id)
        self.holding = 0  # requests waiting for an answer right now
        self.release = threading.Event()
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with service.lock:
                    service.requests.append((self.headers["Idempotency-Key"], body["nudge_id"]))
                    hold = len(service.requests) > answer_first
                    service.holding += hold
                if on_request is not None:
                    on_request()
                if hold:
                    service.release.wait(120)
                    with service.lock:
                        service.holding -= 1
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"status":"accepted"}')
                except OSError:
                    pass  # the notifier died while we held the answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/notify"

    def keys(self) -> list[str]:
        with self.lock:
            return [key for key, _ in self.requests]

    def __enter__(self) -> HoldingService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def recorded(pipeline: Pipeline, nudges: list[Nudge]) -> set[str]:
    """The nudges whose notifier decision is recorded in Redis right now."""
    keys = Keys(pipeline.prefix)
    marks = [keys.recorded(record_id(n.nudge_id, Stage.NOTIFIER)) for n in nudges]
    found = pipeline.redis.mget(marks)
    return {n.nudge_id for n, mark in zip(nudges, found, strict=True) if mark is not None}


def logged(pipeline: Pipeline, nudges: list[Nudge]) -> dict[str, list[InterventionRecord]]:
    """Every record in the students' intervention logs, by nudge id."""
    keys = Keys(pipeline.prefix)
    out: dict[str, list[InterventionRecord]] = {n.nudge_id: [] for n in nudges}
    for pseudonym in {n.pseudonym for n in nudges}:
        for row in pipeline.redis.lrange(keys.interventions(pseudonym), 0, -1):
            record = InterventionRecord.model_validate_json(row)
            out.setdefault(record.nudge_id, []).append(record)
    return out


def test_a_notifier_killed_with_deliveries_in_flight_repeats_only_those_once(
    pipeline: Pipeline,
) -> None:
    """50 prompts; the service answers 4 and then holds every request, so the notifier is
    killed with all its delivery slots waiting on the service. The restarted notifier sends
    each of those again once, with the same key, and nothing else twice; each nudge ends with
    one delivered record, whose attempts count every request the service received for it."""
    slots = 16
    pipeline.env["ENGAGEMENT_NOTIFIER_CONCURRENCY"] = str(slots)
    pipeline.env["ENGAGEMENT_WEBHOOK_TIMEOUT_S"] = "60"  # no retries within one notifier
    pipeline.env["ENGAGEMENT_BATCH_WITHIN_S"] = "1"  # the 50 nudges in one batch
    nudges = [prompt_for(pipeline, f"S-KILLED-{n}", n) for n in range(50)]
    with HoldingService(answer_first=4) as service:
        pipeline.env["ENGAGEMENT_WEBHOOK_URL"] = service.url
        pipeline.publish_nudges(nudges)
        notifier = pipeline.start("notifier", "notifier")
        wait_for(
            "every delivery slot to wait on the service",
            lambda: service.holding == slots or None,
        )
        notifier.kill()  # SIGKILL with 16 deliveries in flight
        in_flight = set(service.keys()) - recorded(pipeline, nudges)  # received, not recorded
        assert len(in_flight) == slots
        service.release.set()
        pipeline.start("notifier-again", "notifier")
        wait_for(
            "every nudge to be decided",
            lambda: len(recorded(pipeline, nudges)) == len(nudges) or None,
            timeout=120,
        )
        keys = service.keys()
        bodies = list(service.requests)
    ids = {n.nudge_id for n in nudges}
    assert all(key == nudge_id for key, nudge_id in bodies)  # one key per message, always
    assert set(keys) == ids  # every student got the message
    sent = Counter(keys)
    repeated = {key for key, times in sent.items() if times > 1}
    assert sum(sent.values()) - len(sent) <= len(in_flight)  # at most one repeat each...
    assert repeated <= in_flight and max(sent.values()) == 2  # ...and only of those in flight
    records = logged(pipeline, nudges)
    assert {nudge_id: [r.outcome for r in rs] for nudge_id, rs in records.items()} == {
        nudge_id: [Outcome.DELIVERED] for nudge_id in ids
    }
    # The log of record accounts for every request the service received.
    assert {nudge_id: rs[0].attempts for nudge_id, rs in records.items()} == dict(sent)
    for nudge_id in repeated:
        assert "stopped once while delivering it" in records[nudge_id][0].detail
    on_topic = pipeline.topic(pipeline.settings.topics.interventions, expected=len(nudges))
    assert {r["record_id"]: r["nudge_id"] for r in on_topic} == {
        record_id(i, Stage.NOTIFIER): i for i in ids
    }


@pytest.mark.long  # over a minute: the notifier started and killed MAX_BEGUN + 1 times
def test_a_prompt_interrupted_by_crash_after_crash_is_not_sent_at_every_restart(
    pipeline: Pipeline,
) -> None:
    """A service that never answers and a notifier killed while it waits, again and again
    (a liveness probe restarting it, say): each restart sends the prompt once more, up to
    MAX_BEGUN times; then it is recorded as failed, and not sent again."""
    pipeline.env["ENGAGEMENT_WEBHOOK_TIMEOUT_S"] = "60"
    nudge = prompt_for(pipeline, "S-LOOP")
    with HoldingService(answer_first=0) as service:
        pipeline.env["ENGAGEMENT_WEBHOOK_URL"] = service.url
        pipeline.publish_nudges([nudge])
        for n in range(1, MAX_BEGUN + 1):
            notifier = pipeline.start(f"notifier-{n}", "notifier")

            def reached(count: int = n) -> bool | None:
                return len(service.keys()) == count or None

            wait_for(f"delivery {n} to reach the service", reached)
            notifier.kill()  # while the service holds the answer
        pipeline.start("notifier-last", "notifier")
        wait_for(
            "the decision, or the message sent once more",
            lambda: pipeline.records("S-LOOP") or len(service.keys()) > MAX_BEGUN or None,
        )
        assert service.keys() == [nudge.nudge_id] * MAX_BEGUN
        (record,) = pipeline.records("S-LOOP")
    assert (record["outcome"], record["reason"], record["attempts"]) == (
        "failed",
        "interrupted",
        MAX_BEGUN,
    )
    assert f"the notifier stopped {MAX_BEGUN} times while delivering it" in record["detail"]
    assert record["message"]["body"]  # what the student may have received


# -- Redis away after the service answered --------------------------------------------------------


class Relay:
    """A TCP relay in front of Redis that can be cut (every connection closed, new ones
    refused) and restored on the same port: Redis going away, as the notifier sees it."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.port = free_port()
        userinfo = parts.netloc.rpartition("@")[0]
        self.url = urlunsplit(
            parts._replace(netloc=f"{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}")
        )
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.cuts = 0

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        with self.lock:
            self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def __enter__(self) -> Relay:
        self.restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()  # closes every socket it opened

    def cut_once(self) -> None:
        """Cut, unless this relay was cut before."""
        if not self.cuts:
            self.cut()

    def cut(self) -> None:
        with self.lock:
            self.cuts += 1
            doomed, self.sockets = [*self.sockets], []
            if self.listener is not None:
                doomed.append(self.listener)
                self.listener = None
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def test_redis_away_after_the_service_answered_delays_the_record_and_sends_nothing_again(
    pipeline: Pipeline,
) -> None:
    """Redis goes away between the service's answer and the record: the notifier waits for
    Redis to record the delivery; it does not decide again and send the message a second time."""
    nudge = prompt_for(pipeline, "S-REDIS-AWAY")
    with (
        Relay(pipeline.stack.redis_url) as relay,
        HoldingService(answer_first=1, on_request=relay.cut_once) as service,
    ):
        pipeline.env["ENGAGEMENT_WEBHOOK_URL"] = service.url
        pipeline.env["REDIS_URL"] = relay.url  # for the notifier only: the test reads directly
        pipeline.start("notifier", "notifier")
        pipeline.env["REDIS_URL"] = pipeline.stack.redis_url
        pipeline.publish_nudges([nudge])
        wait_for("the message to reach the service", lambda: service.keys() or None)
        wait_for(
            "the notifier to wait for Redis",
            lambda: pipeline.metric("engagement_redis_waits_total", "notifier") or None,
        )
        relay.restore()
        (record,) = wait_for("the record", lambda: pipeline.records("S-REDIS-AWAY") or None)
        assert service.keys() == [nudge.nudge_id]  # sent once
    assert (record["outcome"], record["attempts"]) == ("delivered", 1)


# -- the review queue from the command line ------------------------------------------------------


def engagement(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "stream.cli", *args],
        env={**pipeline.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_staff_work_the_review_queue_from_the_command_line(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    teams = tmp_path / "teams.toml"
    teams.write_text(
        DEFAULT_TEAMS.read_text(encoding="utf-8").replace(
            "escalate_after_hours = 72",
            "escalate_after_hours = 0.005",  # 18 s: longer than the CLI calls below
        )
    )
    pipeline.env["ENGAGEMENT_TEAMS_FILE"] = str(teams)
    roster = tmp_path / "roster.jsonl"
    roster.write_text(
        json.dumps({"student_id": "S-REV", "personal_tutor": "T001", "modules": ["PH1030"]}) + "\n"
    )
    pipeline.cli("reference", "roster", str(roster))
    pipeline.start("worker", "worker")  # loads the roster
    wait_for(
        "the roster to load",
        lambda: (
            pipeline.redis.exists(f"{pipeline.prefix}:roster:{pipeline.pseudonym('S-REV')}") or None
        ),
    )
    pipeline.start("notifier", "notifier")
    invite = dict(tier=Tier.INVITATION, route=Route.PERSONAL_TUTOR, channels=())
    first = prompt_for(pipeline, "S-REV", 1, rule_id="no_activity_14d", **invite)
    second = prompt_for(pipeline, "S-REV", 2, rule_id="no_activity_14d", **invite)
    pipeline.publish_nudges([first, second])
    wait_for("both to be queued", lambda: len(pipeline.records("S-REV")) == 2 or None)

    mine = engagement(pipeline, "review", "list", "--staff", "T001").stdout
    assert first.nudge_id in mine and second.nudge_id in mine
    assert engagement(pipeline, "review", "list", "--staff", "T002").stdout.strip() == (
        "nothing waiting for you"
    )
    refused = engagement(pipeline, "review", "show", first.nudge_id, "--staff", "T002")
    assert refused.returncode == 2 and "T002" in refused.stderr
    shown = json.loads(
        engagement(pipeline, "review", "show", first.nudge_id, "--staff", "T001").stdout
    )
    assert shown["student_id"] == "S-REV"  # re-identified for the tutor, and audited
    audit = [json.loads(a) for a in pipeline.redis.lrange(f"{pipeline.prefix}:audit", 0, -1)]
    assert {"staff_id": "T001", "action": "show"}.items() <= audit[-1].items()

    no_reason = engagement(
        pipeline, "review", "decide", first.nudge_id, "--staff", "T001", "--action", "no_action"
    )
    assert no_reason.returncode == 2 and "reason" in no_reason.stderr
    decided = engagement(
        pipeline,
        "review",
        "decide",
        first.nudge_id,
        "--staff",
        "T001",
        "--action",
        "referred",
        "--service",
        "Student Wellbeing",
    )
    assert decided.returncode == 0, decided.stderr
    assert "Student Wellbeing" in decided.stdout

    lead = wait_for(
        "the untouched item to reach the senior tutor",
        lambda: (
            out
            if second.nudge_id
            in (out := engagement(pipeline, "review", "list", "--staff", "ST-SENIOR-TUTOR").stdout)
            else None
        ),
        timeout=90,
    )
    assert first.nudge_id not in lead and "escalated" in lead
    outcomes = {(r["nudge_id"], r["outcome"]) for r in pipeline.records("S-REV")}
    assert outcomes == {
        (first.nudge_id, "queued_for_review"),
        (second.nudge_id, "queued_for_review"),
        (first.nudge_id, "staff_decision"),
        (second.nudge_id, "escalated"),
    }
    staff = next(r for r in pipeline.records("S-REV") if r["outcome"] == "staff_decision")
    assert (staff["staff_id"], staff["action"], staff["referred_to"]) == (
        "T001",
        "referred",
        "Student Wellbeing",
    )
    on_topic = pipeline.topic(pipeline.settings.topics.interventions, expected=4)
    assert {(r["nudge_id"], r["outcome"]) for r in on_topic} == outcomes

    exported = tmp_path / "out.jsonl"
    xapi = tmp_path / "xapi.jsonl"
    pipeline.cli("interventions", "export", "--jsonl", str(exported), "--xapi", str(xapi))
    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(rows) == 4 and {r["student_id"] for r in rows} == {"S-REV"}
    statements = [json.loads(line) for line in xapi.read_text().splitlines()]
    assert any(s["actor"]["account"]["name"] == "T001" for s in statements)


# -- configuration -----------------------------------------------------------------------------


@pytest.fixture
def env(stack: Endpoints, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {
        **stack.as_env(),
        "ENGAGEMENT_PSEUDONYM_KEY": "x" * 24,
        "ENGAGEMENT_STATE_DIR": str(tmp_path),
        "ENGAGEMENT_WEBHOOK_URL": "http://127.0.0.1:9/notify",
    }


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({}, "ENGAGEMENT_WEBHOOK_SECRET"),
        (
            {"ENGAGEMENT_WEBHOOK_SECRET": "s" * 20, "ENGAGEMENT_CHANNELS": "email=smtp"},
            "ENGAGEMENT_SMTP_HOST",
        ),
        (
            {"ENGAGEMENT_WEBHOOK_SECRET": "s" * 20, "ENGAGEMENT_CHANNELS": "email=pigeon"},
            "ENGAGEMENT_CHANNELS",
        ),
        (
            {"ENGAGEMENT_WEBHOOK_SECRET": "s" * 20, "ENGAGEMENT_CHANNELS": "sms=webhook"},
            "none of which ENGAGEMENT_CHANNELS configures",
        ),
        (
            {"ENGAGEMENT_WEBHOOK_SECRET": "s" * 20, "ENGAGEMENT_QUIET_HOURS": "late"},
            "ENGAGEMENT_QUIET_HOURS",
        ),
    ],
)
def test_a_misconfigured_channel_stops_the_notifier_with_what_to_fix(
    env: dict[str, str], extra: dict[str, str], named: str
) -> None:
    done = subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "stream.cli", "notifier"],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert named in done.stderr
    assert "Traceback" not in done.stderr
