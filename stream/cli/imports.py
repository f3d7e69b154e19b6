"""``engagement watch DIR --mapping NAME``, and what it shares with ``publish --mapping``: the
publisher, the reference-record producer and the Redis lookups (identity map, reader map) of
one import."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stream.cli.helptext import add_command


@contextlib.contextmanager
def import_context(mapping: Any, envelope_size: int = 500) -> Iterator[tuple[Any, Any, Any]]:
    """(publisher, send_reference, lookup) on the configured broker and Redis, closed after."""
    import redis
    from kafka import KafkaProducer

    from stream.ingest.lookups import RedisLookups
    from stream.publisher import Publisher
    from stream.runtime import load_runtime
    from stream.topics import ensure_topics

    runtime = load_runtime()
    settings = runtime.settings
    topics, login = settings.topics, settings.kafka_client_options()
    ensure_topics(runtime.kafka_bootstrap, topics, settings.partitions, login)
    client = redis.Redis.from_url(settings.redis_url_with_password(runtime.redis_url))
    lookup = RedisLookups(client, settings.key_prefix)  # identity map and reader map

    producer = KafkaProducer(bootstrap_servers=runtime.kafka_bootstrap, acks="all", **login)

    def send_reference(kind: str, key: str, value: bytes) -> None:
        producer.send(topics.reference(kind), key=key.encode(), value=value)

    publisher = Publisher(
        runtime.kafka_bootstrap,
        topics=topics,
        envelope_size=envelope_size,
        client_options=login,
        max_event_bytes=settings.max_event_bytes,
        max_message_bytes=settings.max_message_bytes,
        feed=f"import-{mapping.name}",
    )
    try:
        yield publisher, send_reference, lookup
    finally:
        publisher.close()
        producer.flush()
        producer.close()
        client.close()


def cmd_watch(args: argparse.Namespace) -> int:
    """Import every export that lands in a folder, through a mapping."""
    from schemas.errors import ConfigError
    from schemas.mappings import load_mapping
    from stream.ingest.watch import watch

    folder = Path(args.dir)
    if not folder.is_dir():
        msg = f"{folder} is not a folder: create it, or give the folder the exports land in"
        raise ConfigError(msg)
    mapping = load_mapping(args.mapping)
    with import_context(mapping) as (publisher, send_reference, lookup):

        @contextlib.contextmanager
        def same_publisher() -> Iterator[Any]:
            yield publisher

        count = watch(
            folder, mapping, same_publisher, send_reference, lookup,
            poll_s=args.poll, once=args.once,
        )  # fmt: skip
    print(f"imported {count} file(s)")
    return 0


def add_parsers(sub: Any) -> None:
    """Register watch on the ``engagement`` parser."""
    watcher = add_command(
        sub,
        "watch",
        "import each export that lands in a folder",
        [
            "engagement watch /srv/exports/celcat --mapping celcat-register",
            "engagement watch exports --mapping my-paxton.toml --once",
        ],
        details="A file is taken once it has stopped growing, imported row by row, and moved "
        "to done/ (or failed/, when it could not be read at all) with its per-row report "
        "beside it as NAME.report.json. Files named .* or *.part/*.tmp are left alone. "
        "See docs/sources/mappings.md.",
    )
    watcher.add_argument("dir", help="the folder the exports land in")
    watcher.add_argument("--mapping", required=True, help="a preset name or a mapping file")
    watcher.add_argument("--poll", type=float, default=2.0, help="seconds between looks")
    watcher.add_argument("--once", action="store_true", help="stop when the folder is empty")
    watcher.set_defaults(func=cmd_watch)
