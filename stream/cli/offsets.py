"""``engagement offsets``: the signals offsets stored with the state, shown and reset by hand.

The state stores, per signals partition, the last offset it applied, and skips any message at
or below it. A worker notices by itself when a partition's log is behind that offset (the
broker lost its log, or the topic was created again; ``agents/offsets.py``); ``show`` puts the
stored offsets beside the log ends the broker reports now, and ``reset`` forgets them, so that
the next message a worker reads on each partition is applied, whatever its offset.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, TypeVar

import redis.asyncio as aioredis

from schemas.errors import ConfigError
from stream.cli.helptext import add_command
from stream.runtime import Runtime, load_runtime, with_redis

if TYPE_CHECKING:
    from agents.store.state import EngagementStore

T = TypeVar("T")


def _store(runtime: Runtime, client: aioredis.Redis, group: str) -> EngagementStore:
    from agents.store.state import EngagementStore

    settings = runtime.settings
    return EngagementStore(
        client,
        prefix=settings.key_prefix,
        group=group,
        dedup_ttl_s=settings.dedup_ttl_days * 86_400,
        state_ttl_s=settings.state_ttl_days * 86_400,
    )


def _stored(runtime: Runtime, group: str | None) -> dict[str, dict[int, int]]:
    """Applied offsets by group: the one named, or every group found under the key prefix."""
    from agents.offsets import stored_groups

    async def read(client: aioredis.Redis) -> dict[str, dict[int, int]]:
        groups = [group] if group else await stored_groups(client, runtime.settings.key_prefix)
        return {g: await _store(runtime, client, g).applied_offsets() for g in groups}

    return with_redis(runtime, read)


def describe(partition: int, applied: int | None, end: int | None) -> str:
    """One partition's line: what the state applied beside where the log ends now."""
    done = "nothing applied" if applied is None else f"applied up to offset {applied}"
    if end is None:
        return f"  partition {partition}: {done}; log end unknown"
    line = f"  partition {partition}: {done}; the log ends at {end}"
    if applied is not None and end <= applied:
        line += (
            f" (AHEAD of the log by {applied - end + 1}: the broker lost its log or the topic "
            "was created again)"
        )
    return line


def cmd_show(args: argparse.Namespace, runtime: Runtime) -> int:
    """Print each group's stored offsets beside the signals log ends."""
    from stream.topics import log_ends

    settings = runtime.settings
    topic = settings.topics.signals
    stored = _stored(runtime, args.group)
    if not stored:
        print(f"no stored offsets under key prefix {settings.key_prefix!r}: nothing applied yet")
        return 0
    ends = log_ends(runtime.kafka_bootstrap, topic, settings.kafka_client_options())
    ahead = False
    for group, applied in stored.items():
        print(f"group {group}, against {topic}:")
        if ends is None:
            print(f"  the topic {topic} does not exist on the broker")
        partitions = sorted(set(applied) | set(ends or {}))
        if args.partition:
            partitions = [p for p in partitions if p in args.partition]
        if not partitions:
            print("  nothing applied yet")
        for partition in partitions:
            line = describe(partition, applied.get(partition), (ends or {}).get(partition))
            ahead = ahead or "AHEAD" in line
            print(line)
    if ahead:
        print(
            "A running worker resumes such a partition by itself when it next reads it "
            "(ENGAGEMENT_OFFSET_REGRESSION); to do it now: "
            "engagement offsets reset --group GROUP --yes"
        )
    return 0


def _confirmed(args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        return False
    answer = input("Forget these stored offsets? Type yes to go ahead: ")
    return answer.strip().lower() == "yes"


def cmd_reset(args: argparse.Namespace, runtime: Runtime) -> int:
    """Forget a group's stored offsets (all, or the partitions named)."""
    if not args.group:
        known = ", ".join(_stored(runtime, None)) or "none stored"
        msg = f"say which consumer group: --group GROUP (groups with stored offsets: {known})"
        raise ConfigError(msg)
    applied = _stored(runtime, args.group)[args.group]
    partitions = sorted(set(args.partition) if args.partition else set(applied))
    if not partitions:
        print(f"group {args.group} has no stored offsets: nothing to reset")
        return 0
    print(f"group {args.group}:")
    for partition in partitions:
        was = applied.get(partition)
        print(f"  partition {partition}: {'nothing stored' if was is None else was} → forgotten")
    if not _confirmed(args):
        print("nothing changed: run again with --yes to reset", file=sys.stderr)
        return 1

    async def forget(client: aioredis.Redis) -> None:
        store = _store(runtime, client, args.group)
        await store.set_applied_offsets(dict.fromkeys(partitions))

    with_redis(runtime, forget)
    print(
        "reset: on each of these partitions a worker applies the next message it reads, "
        "whatever its offset (no restart needed)"
    )
    return 0


def cmd_offsets(args: argparse.Namespace) -> int:
    """Show or reset the offsets stored with the state."""
    runtime = load_runtime()
    if args.action == "reset":
        return cmd_reset(args, runtime)
    return cmd_show(args, runtime)


def add_parsers(sub: Any) -> None:
    """Register ``offsets`` on the ``engagement`` parser."""
    offsets = add_command(
        sub,
        "offsets",
        "show or reset the signals offsets stored with the state",
        [
            "engagement offsets show",
            "engagement offsets reset --group engagement-worker --yes",
            "engagement offsets reset --group engagement-worker --partition 2 --yes",
        ],
        details="The state skips signals at or below the offset it stored for their "
        "partition. After the broker lost its log (or the signals topic was created again) "
        "those offsets are ahead of the new log: `show` puts them beside the log ends, and "
        "`reset` forgets them, so that the next message on each partition is applied. A "
        "running worker also notices it by itself (ENGAGEMENT_OFFSET_REGRESSION).",
    )
    offsets.add_argument("action", choices=["show", "reset"], help="what to do")
    offsets.add_argument(
        "--group",
        help="the worker's consumer group: ENGAGEMENT_TOPIC_PREFIX + engagement-worker "
        "(show: default every group found)",
    )
    offsets.add_argument(
        "--partition",
        type=int,
        action="append",
        help="only this partition (repeat for more; default: every one)",
    )
    offsets.add_argument("--yes", action="store_true", help="reset without asking")
    offsets.set_defaults(func=cmd_offsets)
