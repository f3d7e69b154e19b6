"""``engagement publish`` (event files) and ``engagement reference`` (roster, timetable,
exemptions): validate records and put them on their topics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from schemas.sources import SOURCES
from schemas.topics import REFERENCE_KINDS
from stream.cli.helptext import add_command


def cmd_publish(args: argparse.Namespace) -> int:
    """Validate and publish a JSONL/CSV/TSV file of events."""
    from stream.publisher import Publisher, publish_file, read_file
    from stream.runtime import load_runtime
    from stream.topics import ensure_topics

    read_file(Path(args.file))  # a missing file or an unknown type stops here, before connecting
    runtime = load_runtime()
    topics = runtime.settings.topics
    login = runtime.settings.kafka_client_options()
    ensure_topics(runtime.kafka_bootstrap, topics, runtime.settings.partitions, login)
    with Publisher(
        runtime.kafka_bootstrap,
        topics=topics,
        envelope_size=args.envelope_size,
        client_options=login,
        max_event_bytes=runtime.settings.max_event_bytes,  # the worker's limits
        max_message_bytes=runtime.settings.max_message_bytes,
    ) as publisher:
        report = publish_file(Path(args.file), args.source, publisher)
    print(report.summary())
    return 0 if report.sent and report.adds_up else 1


def cmd_reference(args: argparse.Namespace) -> int:
    """Validate and publish roster, timetable or exemption records."""
    from stream.reference import publish_reference
    from stream.runtime import load_runtime
    from stream.topics import ensure_topics

    runtime = load_runtime()
    topics = runtime.settings.topics
    login = runtime.settings.kafka_client_options()
    ensure_topics(runtime.kafka_bootstrap, topics, runtime.settings.partitions, login)
    report = publish_reference(
        runtime.kafka_bootstrap, topics, args.kind, Path(args.file), client_options=login
    )
    print(report.summary())
    return 0 if not report.refused else 1


def add_publish(sub: Any) -> None:
    """Register publish on the ``engagement`` parser."""
    publish = add_command(
        sub,
        "publish",
        "validate and publish a file of events",
        [
            "engagement publish sim/vle.jsonl --source vle",
            "engagement publish swipes.csv --source swipe --envelope-size 1",
        ],
        details="A line that is not a valid event is refused and reported with its number; "
        "the rest is sent; the summary adds up every line read (sent + refused + skipped). Exits 1 "
        "when nothing was sent, or when the lines do not add up.",
    )
    publish.add_argument("file", help="one event per line (JSONL), or CSV/TSV with a header")
    publish.add_argument("--source", required=True, choices=[str(s) for s in SOURCES])
    publish.add_argument(
        "--envelope-size", type=int, default=500, help="events per message (1: one each)"
    )
    publish.set_defaults(func=cmd_publish)


def add_reference(sub: Any) -> None:
    """Register reference on the ``engagement`` parser."""
    reference = add_command(
        sub,
        "reference",
        "publish roster, timetable or exemption records",
        [
            "engagement reference roster sim/roster.jsonl",
            "engagement reference timetable sim/timetable.jsonl",
            "engagement reference exemptions exemptions.jsonl",
            "engagement reference identity identity-map.jsonl   # LMS accounts -> student ids",
        ],
        details="One JSON record per line, validated first; a refused line is reported with its "
        "number.",
    )
    reference.add_argument("kind", choices=list(REFERENCE_KINDS), help="which records")
    reference.add_argument("file", help='one record per line; {"delete": "<id>"} removes one')
    reference.set_defaults(func=cmd_reference)
