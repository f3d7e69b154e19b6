"""Drive the product as a user does: real processes, real broker, real Redis, real HTTP."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import redis
from kafka import KafkaProducer

from agents.model.pseudonym import Pseudonymiser
from agents.redact import Redactor
from agents.router import signal_partition
from schemas.common import Source
from schemas.feeds import VleActivity
from schemas.nudges import Nudge
from schemas.settings import Settings, load_settings
from stream.dev.processes import Child, free_port, scrape, total
from stream.dev.reach import read_topic
from stream.dev.stack import Endpoints
from stream.publisher import Publisher
from stream.topics import ensure_topics

T = TypeVar("T")
TERM = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)  # a Monday


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    msg = f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})"
    raise AssertionError(msg)


def vle(n: int, student: str, when: datetime, **extra: Any) -> dict[str, Any]:
    """A valid VLE event."""
    return {
        "event_id": f"v-{student}-{n}",
        "student_id": student,
        "occurred_at": when.isoformat(),
        "platform": "moodle",
        "course": "CS101",
        "action": "viewed",
        **extra,
    }


def swipe(n: int, student: str, when: datetime, building: str = "Library") -> dict[str, Any]:
    """A valid card swipe at a building's door (the library gate by default)."""
    return {
        "event_id": f"s-{student}-{n}",
        "student_id": student,
        "occurred_at": when.isoformat(),
        "reader_id": "LIB-1" if building == "Library" else f"{building[:3].upper()}-DOOR-1",
        "building": building,
        "direction": "in",
    }


def mark(n: int, student: str, when: datetime, status: str) -> dict[str, Any]:
    """A valid attendance mark."""
    return {
        "event_id": f"a-{student}-{n}",
        "student_id": student,
        "occurred_at": when.isoformat(),
        "session_id": f"CS101-{n}",
        "module": "CS101",
        "expected_start": when.isoformat(),
        "expected_end": (when + timedelta(hours=1)).isoformat(),
        "status": status,
        "capture_method": "card",
    }


WEBHOOK_SECRET = "integration-webhook-secret-0123456789"  # noqa: S105  # test secret
INGEST_TOKEN = "integration-lms-token-0123456789"  # noqa: S105  # test secret
SCANNER_TOKEN = "integration-scanner-token-0123456789"  # noqa: S105  # test secret


class Pipeline:
    """One isolated deployment (own topics, keys and key) on the session's stack."""

    def __init__(self, stack: Endpoints, prefix: str, workdir: Path) -> None:
        self.stack = stack
        self.prefix = prefix
        self.workdir = workdir
        self.key = secrets.token_urlsafe(24)
        self.settings: Settings = load_settings(
            pseudonym_key=self.key, topic_prefix=f"{prefix}.", key_prefix=prefix
        )
        self.pseudonym = Pseudonymiser(self.settings.pseudonym_key)
        self.receiver_port = free_port()
        self.received_path = workdir / "received.jsonl"
        self.env = {
            **stack.as_env(),
            "ENGAGEMENT_PSEUDONYM_KEY": self.key,
            "ENGAGEMENT_TOPIC_PREFIX": f"{prefix}.",
            "ENGAGEMENT_KEY_PREFIX": prefix,
            "ENGAGEMENT_WEBHOOK_URL": f"http://127.0.0.1:{self.receiver_port}/notify",
            "ENGAGEMENT_WEBHOOK_ATTEMPTS": "2",
            "ENGAGEMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            # Tests run at any hour; the ones about quiet hours set their own.
            "ENGAGEMENT_QUIET_HOURS": "off",
            "ENGAGEMENT_NOTIFIER_TICK_S": "0.5",
            "ENGAGEMENT_STATE_DIR": str(workdir),
            "ENGAGEMENT_REDIS_RETRY_S": "0.2",
            "ENGAGEMENT_BATCH_WITHIN_S": "0.02",
            "ENGAGEMENT_FEED_IDLE_S": "2",
            "ENGAGEMENT_SWEEP_INTERVAL_S": "0.5",
        }
        self.children: list[Child] = []
        self.ports: dict[str, int] = {}
        self.redis = redis.Redis.from_url(stack.redis_url, socket_timeout=5)
        ensure_topics(stack.kafka_bootstrap, self.settings.topics, self.settings.partitions)

    # processes -------------------------------------------------------------------------
    def start(self, name: str, command: str, *, wait: bool = True) -> Child:
        """Start ``engagement <command>`` as a named child with its own web port."""
        port = free_port()
        args = [command]
        env = {**self.env, "ENGAGEMENT_WEB_PORT": str(port)}
        if command == "receiver":
            port = self.receiver_port
            args = ["receiver", "--port", str(port), "--out", str(self.received_path)]
            args += ["--secret", WEBHOOK_SECRET]
        elif command == "ingest":  # its health, readiness and metrics are on its own port
            env["ENGAGEMENT_INGEST_PORT"] = str(port)
            env.setdefault(
                "ENGAGEMENT_INGEST_TOKENS", f"lms={INGEST_TOKEN},scanners={SCANNER_TOKEN}"
            )
        child = Child(name, args, env, self.workdir).start()
        self.children.append(child)
        self.ports[name] = port
        if wait:
            child.wait_http(port)
        return child

    def stop(self) -> None:
        """Stop every child this pipeline started."""
        for child in reversed(self.children):
            child.stop()
        self.redis.close()

    def metrics(self, name: str = "worker") -> dict[str, float]:
        """A child's current metric samples."""
        return scrape(self.ports[name])

    def metric(self, metric: str, name: str = "worker") -> float:
        """Sum of one metric's samples on a child."""
        return total(self.metrics(name), metric)

    # input -------------------------------------------------------------------------------
    def publish(
        self, source: Source, events: Iterable[Mapping[str, object]], size: int = 50
    ) -> None:
        """Validate and publish events (envelopes of ``size``; 1 sends each alone)."""
        with Publisher(
            self.stack.kafka_bootstrap, topics=self.settings.topics, envelope_size=size
        ) as publisher:
            report = publisher.publish(source, list(events))
            publisher.flush()
        assert report.refused == 0, report.summary()

    def publish_all(
        self, events: Mapping[Source, Iterable[Mapping[str, object]]], size: int = 50
    ) -> None:
        """Publish several feeds together, hour by hour of event time, as live feeds arrive.

        Feeds published one after another would be days apart in event time, and a feed more
        than the grace period behind the others is too late; live feeds move together.
        """
        hours: dict[str, dict[Source, list[Mapping[str, object]]]] = {}
        for source, batch in events.items():
            for event in batch:
                hour = datetime.fromisoformat(str(event["occurred_at"])).astimezone(UTC)
                bucket = hours.setdefault(f"{hour:%Y%m%d%H}", {})
                bucket.setdefault(source, []).append(event)
        with Publisher(
            self.stack.kafka_bootstrap, topics=self.settings.topics, envelope_size=size
        ) as publisher:
            for hour in sorted(hours):
                for source, batch in hours[hour].items():
                    report = publisher.publish(source, batch)
                    assert report.refused == 0, report.summary()
                publisher.flush()  # an hour's events are in the broker before the next hour's

    def publish_nudges(self, nudges: Iterable[Nudge]) -> None:
        """Put nudges on this deployment's nudges topic, as the worker's detector does."""
        producer = KafkaProducer(bootstrap_servers=self.stack.kafka_bootstrap, acks="all")
        for nudge in nudges:
            producer.send(
                self.settings.topics.nudges,
                key=nudge.pseudonym.encode(),
                value=nudge.model_dump_json().encode(),
            )
        producer.flush()
        producer.close()

    def publish_raw(self, source: Source, payloads: Iterable[bytes]) -> None:
        """Publish bytes exactly as given (no validation)."""
        with Publisher(self.stack.kafka_bootstrap, topics=self.settings.topics) as publisher:
            for payload in payloads:
                publisher.publish_raw(source, payload)
            publisher.flush()

    def cli(self, *args: str) -> str:
        """Run an ``engagement`` sub-command against this deployment; return its stdout."""
        done = subprocess.run(  # our own interpreter and module
            [sys.executable, "-m", "stream.cli", *args],
            env={**self.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def barrier(self, tag: str, when: datetime = TERM) -> None:
        """Return once every signals partition has applied everything published before now.

        One fresh event is sent for a student on each signals partition; partitions are
        applied in order, so when all of them are counted, nothing earlier is still in flight.
        """
        partitions = self.settings.partitions
        students: dict[int, str] = {}
        n = 0
        while len(students) < partitions:
            candidate = f"S-BARRIER-{tag}-{n}"
            students.setdefault(signal_partition(self.pseudonym(candidate), partitions), candidate)
            n += 1
        self.publish(Source.VLE, [vle(0, s, when) for s in students.values()], size=1)
        for student in students.values():
            wait_for(f"barrier {student}", lambda s=student: self.counts(s) == {"vle": 1}, 120)

    # output ------------------------------------------------------------------------------
    def state(self, student_id: str) -> dict[str, str]:
        """The raw state hash of one student."""
        raw = self.redis.hgetall(f"{self.prefix}:s:{self.pseudonym(student_id)}")
        return {k.decode(): v.decode() for k, v in raw.items()}

    def watermark(self) -> int:
        """The lowest signals-partition watermark (ms; 0 until every partition has one)."""
        group = f"{self.prefix}.engagement-worker"
        raw = self.redis.hgetall(f"{self.prefix}:wm:{group}")
        if len(raw) < self.settings.partitions:
            return 0
        return min(int(v) for v in raw.values())

    def decided_through(self) -> int:
        """The lowest last-decided day over the signals partitions (0 before any)."""
        group = f"{self.prefix}.engagement-worker"
        raw = self.redis.hgetall(f"{self.prefix}:decided:{group}")
        if len(raw) < self.settings.partitions:
            return 0
        return min(int(v) for v in raw.values())

    def seen_id(self, event_id: str, student_id: str) -> str:
        """The event id as the worker sees it: itself, or the keyed hash a dead letter shows
        when it holds the student's id (no topic after ingest carries one)."""
        seen = Redactor(VleActivity, self.pseudonym).event_id(event_id, (student_id.casefold(),))
        assert seen is not None
        return seen

    def counts(self, student_id: str) -> dict[str, int]:
        """Events counted per source for one student, over all days."""
        out: dict[str, int] = {}
        for field, value in self.state(student_id).items():
            parts = field.split(":")
            if parts[0] == "d" and len(parts) == 3:
                out[parts[2]] = out.get(parts[2], 0) + int(value)
        return out

    def records(self, student_id: str) -> list[dict[str, Any]]:
        """Intervention records of one student, as `engagement interventions show` prints them."""
        text = self.cli("interventions", "show", student_id)
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def received(self) -> list[dict[str, Any]]:
        """Every request the local notification service received."""
        if not self.received_path.exists():
            return []
        lines = self.received_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def topic(self, name: str, expected: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Read at least ``expected`` JSON messages from one of this deployment's topics."""
        return read_topic(
            self.stack.kafka_bootstrap, name, self.settings.partitions, expected, timeout
        )
