"""``engagement publish`` (event files) and ``engagement reference`` (roster, timetable,
exemptions): validate records and put them on their topics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from schemas.sources import SOURCES


def cmd_publish(args: argparse.Namespace) -> int:
    """Validate and publish a JSONL/CSV/TSV file of events."""
    from stream.publisher import Publisher, publish_file
    from stream.runtime import load_runtime
    from stream.topics import ensure_topics

    runtime = load_runtime()
    topics = runtime.settings.topics
    ensure_topics(runtime.kafka_bootstrap, topics, runtime.settings.partitions)
    with Publisher(
        runtime.kafka_bootstrap, topics=topics, envelope_size=args.envelope_size
    ) as publisher:
        report = publish_file(Path(args.file), args.source, publisher)
    print(report.summary())
    return 0 if report.sent else 1


def cmd_reference(args: argparse.Namespace) -> int:
    """Validate and publish roster, timetable or exemption records."""
    from stream.reference import publish_reference
    from stream.runtime import load_runtime
    from stream.topics import ensure_topics

    runtime = load_runtime()
    topics = runtime.settings.topics
    ensure_topics(runtime.kafka_bootstrap, topics, runtime.settings.partitions)
    report = publish_reference(runtime.kafka_bootstrap, topics, args.kind, Path(args.file))
    print(report.summary())
    return 0 if not report.refused else 1


def add_publish(sub: Any) -> None:
    """Register publish on the ``engagement`` parser."""
    publish = sub.add_parser("publish", help="publish a JSONL, CSV or TSV file of events")
    publish.add_argument("file")
    publish.add_argument("--source", required=True, choices=[str(s) for s in SOURCES])
    publish.add_argument("--envelope-size", type=int, default=500)
    publish.set_defaults(func=cmd_publish)


def add_reference(sub: Any) -> None:
    """Register reference on the ``engagement`` parser."""
    reference = sub.add_parser(
        "reference", help="publish roster, timetable or exemption records (JSONL)"
    )
    reference.add_argument("kind", choices=["roster", "timetable", "exemptions"])
    reference.add_argument("file", help='one record per line; {"delete": "<id>"} removes one')
    reference.set_defaults(func=cmd_reference)
