"""``engagement retention run`` and ``engagement erase``: expiry by class, erasure of one student.

Both work on Redis directly and publish erasure tombstones to the interventions topic with
their own idempotent producer; neither needs the notifier running (which also runs the
retention job once a day). Output is counts only: it never names a student.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from stream.cli.helptext import add_command
from stream.runtime import Runtime, load_runtime, with_redis


def _producer(runtime: Runtime) -> Any:
    from sinks.channels.producer import RecordProducer

    return RecordProducer(
        runtime.kafka_bootstrap,
        client_id="engagement-retention",
        client_options=runtime.settings.kafka_client_options(),
    )


def cmd_retention(args: argparse.Namespace) -> int:
    """Erase the withdrawn past their grace, expire every class past its period; print counts."""
    from sinks.retention import publisher, run_with_settings

    runtime = load_runtime()
    settings = runtime.settings

    async def work(client: aioredis.Redis) -> list[str]:
        producer = None if args.dry_run else _producer(runtime)
        try:
            publish = (
                None if producer is None else publisher(producer, settings.topics.interventions)
            )
            report, by_class = await run_with_settings(
                client, settings, datetime.now(UTC), publish, dry_run=args.dry_run
            )
        finally:
            if producer is not None:
                producer.close()
        return report.lines(by_class)

    for line in with_redis(runtime, work):
        print(line)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    """Erase one student on a compliance request, or show whether and when they were erased."""
    from agents.model.pseudonym import Pseudonymiser
    from sinks.retention import erase, publisher, read_receipt

    runtime = load_runtime()
    settings = runtime.settings
    pseudonym = Pseudonymiser(settings.pseudonym_key)(args.student)

    async def show(client: aioredis.Redis) -> dict[str, Any] | None:
        found = await read_receipt(client, settings.key_prefix, settings.pseudonym_key, pseudonym)
        return None if found is None else found.model_dump(mode="json")

    if args.receipt:
        receipt = with_redis(runtime, show)
        print(json.dumps({"erased": False} if receipt is None else {"erased": True, **receipt}))
        return 0
    if not args.reason:
        from schemas.errors import ConfigError

        msg = "say why: --reason TEXT (kept with the erasure; it must not name the student)"
        raise ConfigError(msg)

    async def work(client: aioredis.Redis) -> dict[str, Any]:
        producer = _producer(runtime)
        try:
            done = await erase(
                client,
                settings.key_prefix,
                settings.pseudonym_key,
                pseudonym,
                reason=args.reason,
                now=datetime.now(UTC),
                student_id=args.student,
                publish=publisher(producer, settings.topics.interventions),
            )
        finally:
            producer.close()
        return {
            **done.receipt.model_dump(mode="json"),
            "keys_deleted": done.keys_deleted,
            "entries_removed": done.entries_removed,
            "kept": sorted(set(done.kept)),
        }

    print(json.dumps(with_redis(runtime, work), sort_keys=True))
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``retention`` (run) and ``erase`` on the ``engagement`` parser."""
    retention = add_command(
        sub,
        "retention",
        "expire stored data by class, erase the withdrawn",
        ["engagement retention run --dry-run", "engagement retention run"],
        details="Removes intervention records, decided review items, preference history and "
        "audit entries older than their class's period (ENGAGEMENT_RETAIN_*_DAYS), and erases "
        "students withdrawn for longer than ENGAGEMENT_ERASURE_GRACE_DAYS. The notifier runs "
        "it once a day. Prints counts per class, never a student (docs/retention.md).",
    )
    retention.add_argument("action", choices=["run"], help="what to do")
    retention.add_argument(
        "--dry-run", action="store_true", help="count what would go; remove nothing"
    )
    retention.set_defaults(func=cmd_retention)

    erase = add_command(
        sub,
        "erase",
        "erase all data about one student, on request",
        [
            "engagement erase --student S1234567 --reason 'erasure request 2026-114'",
            "engagement erase --student S1234567 --receipt",
        ],
        details="Deletes every key and entry about the student (the key register says which), "
        "keeps their UKVI attendance record for its own period, writes a tombstone that names "
        "nobody to the interventions topic and a receipt that answers 'erased, when and why' "
        "(docs/retention.md).",
    )
    erase.add_argument("--student", required=True, metavar="ID", help="the student's id")
    erase.add_argument("--reason", metavar="TEXT", help="why (kept; must not name the student)")
    erase.add_argument(
        "--receipt", action="store_true", help="only show whether and when they were erased"
    )
    erase.set_defaults(func=cmd_erase)
