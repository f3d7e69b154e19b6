"""The notifier as a process: killed mid-delivery, driven by the review CLI, misconfigured."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from schemas.nudges import Nudge, Route, Tier
from schemas.review import DEFAULT_TEAMS
from sinks.channels.webhook import SIGNATURE_HEADER, verify
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
                if not verify(WEBHOOK_SECRET, body, self.headers.get(SIGNATURE_HEADER, "")):
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
