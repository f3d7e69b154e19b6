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
    """Validate and publish a JSONL/CSV/TSV file of events, or a file of a native format."""
    from schemas.errors import ConfigError
    from stream.publisher import Publisher, publish_file, read_file
    from stream.runtime import load_runtime
    from stream.topics import ensure_topics

    if sum(x is not None for x in (args.source, args.format, args.mapping)) != 1:
        msg = (
            "give one of --source (the product's own events), --format (a native format) or "
            "--mapping (a vendor export through a source mapping)"
        )
        raise ConfigError(msg)
    if args.mapping is not None:
        return _publish_mapped(args)
    if args.format is None:
        read_file(Path(args.file))  # a missing file or unknown type stops here, before connecting
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
        if args.format is not None:
            return _publish_native(args, runtime, publisher)
        report = publish_file(Path(args.file), args.source, publisher)
    print(report.summary())
    return 0 if report.sent and report.adds_up else 1


def _publish_native(args: argparse.Namespace, runtime: Any, publisher: Any) -> int:
    """``--format``: adapters, identity step and checks, as the ingest service does."""
    import redis

    from agents.adapters.identity import Policy
    from stream.ingest.files import publish_native

    policy = Policy(args.identity or runtime.settings.identity_policy)
    client = redis.Redis.from_url(runtime.settings.redis_url_with_password(runtime.redis_url))
    actors = runtime.settings.key_prefix + ":actors"

    def lookup(keys: Any) -> dict[str, str]:
        values = client.hmget(actors, list(keys))
        return {
            k: v.decode() if isinstance(v, bytes) else str(v)
            for k, v in zip(keys, values, strict=True)
            if v is not None
        }

    try:
        report = publish_native(Path(args.file), args.format, publisher, policy, lookup)
    finally:
        client.close()
    if args.report_json:
        report.write_json(Path(args.report_json))
    print(report.summary())
    return 0 if report.tally["accepted"] or report.tally["ignored"] else 1


def _publish_mapped(args: argparse.Namespace) -> int:
    """``--mapping``: a vendor export, row by row, through a declarative mapping."""
    import sys

    from schemas.mappings import load_mapping
    from stream.cli.imports import import_context

    mapping = load_mapping(args.mapping)  # a bad mapping stops here, naming file and line
    with import_context(mapping, args.envelope_size) as (publisher, send_reference, lookup):
        from stream.ingest.watch import import_file

        report = import_file(
            Path(args.file), mapping, publisher, send_reference, lookup,
            progress=sys.stderr.isatty(),
        )  # fmt: skip
    if args.report_json:
        report.write_json(Path(args.report_json))
    print(report.summary())
    return 0 if report.tally["accepted"] or report.tally["ignored"] else 1


def cmd_reference(args: argparse.Namespace) -> int:
    """Validate and publish roster, timetable, exemption, identity-map or reader-map records."""
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
            "engagement publish statements.json --format xapi --report-json units.json",
            "engagement publish logstore.csv --format moodle-log --identity as-is",
            "engagement publish marks.csv --mapping celcat-register --report-json units.json",
        ],
        details="A line that is not a valid event is refused and reported with its number; "
        "the rest is sent; the summary adds up every line read (sent + refused + skipped). Exits 1 "
        "when nothing was sent, or when the lines do not add up.",
    )
    publish.add_argument("file", help="one event per line (JSONL), or CSV/TSV with a header")
    publish.add_argument("--source", choices=[str(s) for s in SOURCES])
    publish.add_argument(
        "--format",
        choices=["xapi", "caliper", "canvas", "moodle-log"],
        help="a native format instead of the product's own events (.json, .jsonl; "
        "moodle-log also .csv)",
    )
    publish.add_argument(
        "--mapping",
        metavar="NAME",
        help="a vendor export (CSV/TSV/JSON) through a source mapping: a preset name "
        "(celcat-register, paxton-net2-events, ...) or a mapping file (docs/sources/)",
    )
    publish.add_argument(
        "--identity",
        choices=["map", "as-is"],
        help="with --format: how actors become student ids (default ENGAGEMENT_IDENTITY_POLICY)",
    )
    publish.add_argument(
        "--report-json",
        metavar="OUT",
        help="with --format or --mapping: write every unit's outcome here",
    )
    publish.add_argument(
        "--envelope-size", type=int, default=500, help="events per message (1: one each)"
    )
    publish.set_defaults(func=cmd_publish)


def add_reference(sub: Any) -> None:
    """Register reference on the ``engagement`` parser."""
    reference = add_command(
        sub,
        "reference",
        "publish roster, timetable, exemption or lookup records",
        [
            "engagement reference roster sim/roster.jsonl",
            "engagement reference timetable sim/timetable.jsonl",
            "engagement reference exemptions exemptions.jsonl",
            "engagement reference identity identity-map.jsonl   # LMS accounts -> student ids",
            "engagement reference readers readers.jsonl   # door readers -> buildings",
        ],
        details="One JSON record per line, validated first; a refused line is reported with its "
        "number.",
    )
    reference.add_argument("kind", choices=list(REFERENCE_KINDS), help="which records")
    reference.add_argument("file", help='one record per line; {"delete": "<id>"} removes one')
    reference.set_defaults(func=cmd_reference)
