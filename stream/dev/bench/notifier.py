"""``engagement bench --part notifier``: delivered prompts per second through the webhook.

A notifier and the local notification service (``engagement receiver``, which checks every
signature) run as separate processes on the embedded stack. A backlog of prompt nudges, one
per student, is published; the time from the notifier's start of work to the last
``delivered`` record is measured from its own metrics. Every prompt goes the whole way:
decided-already check, preferences, identity, rendering, a signed POST, and the intervention
record in Redis and on the topic.
"""

from __future__ import annotations

import os
import secrets
import time
from datetime import date
from pathlib import Path
from typing import Any

import redis
from kafka import KafkaProducer
from pydantic import SecretStr

from agents.model.pseudonym import Pseudonymiser
from agents.model.rules import evaluate_day
from agents.model.score import DayFacts
from agents.model.student import Student
from schemas.keys import Keys
from schemas.nudges import Nudge
from schemas.rules import load_rules
from schemas.settings import load_settings
from stream.dev.processes import Child, ProcessError, free_port, scrape, total
from stream.endpoints import Endpoints
from stream.topics import ensure_topics

DRAIN_TIMEOUT_S = 600.0


def _prompt_template() -> Nudge:
    """A real prompt from the default rules: no VLE activity for seven days."""
    first = date(2026, 10, 5).toordinal()
    who = Student("p_" + "0" * 32, first, {first: DayFacts(vle=1)})
    rules = load_rules()
    return next(
        nudge
        for day in range(first, first + 9)
        for nudge in evaluate_day(rules, who, day, load_settings(pseudonym_key="x" * 16).zone)
        if nudge.tier.value == "prompt"
    )


def notifier_bench(endpoints: Endpoints, workdir: Path, count: int) -> dict[str, Any]:
    """Deliver ``count`` prompts through the webhook and return the figures."""
    key = secrets.token_urlsafe(24)
    prefix = f"nb{secrets.token_hex(3)}"
    settings = load_settings(pseudonym_key=key, topic_prefix=f"{prefix}.", key_prefix=prefix)
    ensure_topics(endpoints.kafka_bootstrap, settings.topics, settings.partitions)
    secret = secrets.token_hex(24)
    receiver_port, notifier_port = free_port(), free_port()
    env = {
        **endpoints.as_env(),
        "ENGAGEMENT_PSEUDONYM_KEY": key,
        "ENGAGEMENT_TOPIC_PREFIX": f"{prefix}.",
        "ENGAGEMENT_KEY_PREFIX": prefix,
        "ENGAGEMENT_WEBHOOK_URL": f"http://127.0.0.1:{receiver_port}/notify",
        "ENGAGEMENT_WEBHOOK_SECRET": secret,
        "ENGAGEMENT_QUIET_HOURS": "off",
        "ENGAGEMENT_WEB_PORT": str(notifier_port),
        "ENGAGEMENT_LOG_LEVEL": os.environ.get("ENGAGEMENT_LOG_LEVEL", "WARNING"),
    }
    received = workdir / f"{prefix}-received.jsonl"
    receiver = Child(
        "bench-receiver",
        ["receiver", "--port", str(receiver_port), "--out", str(received), "--secret", secret],
        env,
        workdir,
    ).start()
    notifier = Child("bench-notifier", ["notifier"], env, workdir).start()
    pseudonymise = Pseudonymiser(SecretStr(key))
    template = _prompt_template()
    client = redis.Redis.from_url(endpoints.redis_url)
    try:
        nudges: list[Nudge] = []
        identities: dict[str, str] = {}
        for n in range(count):
            student_id = f"SB{n:07d}"
            pseudonym = pseudonymise(student_id)
            identities[Keys(prefix).identity(pseudonym)] = student_id
            nudges.append(
                template.model_copy(update={"pseudonym": pseudonym, "nudge_id": f"nb-{n:07d}"})
            )
        client.mset(identities)
        receiver.wait_http(receiver_port)
        notifier.wait_http(notifier_port)
        producer = KafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap, linger_ms=5)
        for nudge in nudges:
            producer.send(
                settings.topics.nudges,
                key=nudge.pseudonym.encode(),
                value=nudge.model_dump_json().encode(),
            )
        producer.flush()
        producer.close()
        started: float | None = None
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        delivered = 0.0
        while time.monotonic() < deadline:
            if not notifier.alive():
                msg = f"the notifier stopped:\n{notifier.tail()}"
                raise ProcessError(msg)
            samples = scrape(notifier_port)
            decided = total(samples, "engagement_interventions_total")
            delivered = samples.get("engagement_interventions_total{outcome=delivered}", 0.0)
            if started is None and decided > 0:
                started = time.monotonic()
            if decided >= count:
                break
            time.sleep(0.25)  # reading /metrics is not free for the process measured
        else:
            msg = f"only {delivered:.0f} of {count} prompts were delivered in time"
            raise ProcessError(msg)
        assert started is not None  # noqa: S101  # set before the loop can break
        elapsed = time.monotonic() - started
        lines = received.read_text(encoding="utf-8").splitlines()
        return {
            "nudges": count,
            "delivered": int(delivered),
            "received_by_service": len(lines),
            "seconds": round(elapsed, 2),
            "delivered_per_second": round(delivered / elapsed, 1) if elapsed else 0.0,
            "notifier_peak_rss_mib": notifier.peak_rss_mib(),
        }
    finally:
        client.close()
        notifier.stop()
        receiver.stop()
