"""``engagement prefs``, ``engagement interventions`` and ``engagement review``.

Each opens its own Redis connection and, where it writes records, its own idempotent
producer; none needs the notifier to be running, except that a preference change is applied
by the notifier (the CLI publishes it on the preferences topic, like the student app does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis

from schemas.errors import ConfigError
from schemas.keys import Keys
from stream.cli.helptext import add_command
from stream.runtime import Runtime, load_runtime, with_redis

T = TypeVar("T")
APPLY_WAIT_S = 10.0
TOKEN_ENV = "ENGAGEMENT_TOKEN"  # noqa: S105  # the variable's name, not a secret


def _pseudonym(runtime: Runtime, student_id: str) -> str:
    from agents.model.pseudonym import Pseudonymiser

    return Pseudonymiser(runtime.settings.pseudonym_key)(student_id)


# -- prefs --------------------------------------------------------------------------------------


def cmd_prefs(args: argparse.Namespace) -> int:
    """Show a student's opt-outs and their history, or publish a change."""
    from schemas.nudges import Channel
    from schemas.preferences import PreferenceChange
    from sinks.stores.preferences import PreferenceStore

    runtime = load_runtime()
    pseudonym = _pseudonym(runtime, args.student_id)
    prefix = runtime.settings.key_prefix

    async def show(client: aioredis.Redis) -> dict[str, Any]:
        store = PreferenceStore(client, prefix)
        current = await store.get(pseudonym)
        history = await store.history(pseudonym)
        return {
            "preferences": current.model_dump(mode="json"),
            "history": [entry.model_dump(mode="json") for entry in history],
        }

    if args.action in ("show", "history"):
        print(json.dumps(with_redis(runtime, show), indent=2, sort_keys=True))
        return 0
    opt_out = set(args.opt_out or [])
    opt_in = set(args.opt_in or [])
    if not opt_out and not opt_in:
        msg = "say what changes: --opt-out CHANNEL... and/or --opt-in CHANNEL... (or all)"
        raise ConfigError(msg)
    change = PreferenceChange(
        change_id=f"cli-{uuid.uuid4().hex}",
        student_id=args.student_id,
        opt_out_all=True if "all" in opt_out else (False if "all" in opt_in else None),
        opt_out=frozenset(Channel(c) for c in opt_out - {"all"}),
        opt_in=frozenset(
            Channel(c) for c in (set(Channel) if "all" in opt_in else opt_in - {"all"})
        ),
        changed_at=datetime.now(UTC),
        source=args.source,
    )
    _publish(
        runtime, runtime.settings.topics.preferences, args.student_id, change.model_dump_json()
    )
    print(f"published change {change.change_id} on {runtime.settings.topics.preferences}")
    if args.no_wait:
        return 0

    async def wait(client: aioredis.Redis) -> bool:
        deadline = time.monotonic() + APPLY_WAIT_S
        key = Keys(prefix).preference_applied(change.change_id)
        while time.monotonic() < deadline:
            if await client.exists(key):
                return True
            await asyncio.sleep(0.2)
        return False

    if with_redis(runtime, wait):
        print("applied:")
        print(json.dumps(with_redis(runtime, show)["preferences"], indent=2, sort_keys=True))
    else:
        print("not applied yet: the notifier applies it when it runs (nothing is lost)")
    return 0


def _publish(runtime: Runtime, topic: str, key: str, value: str) -> None:
    from sinks.channels.producer import RecordProducer

    async def go() -> None:
        producer = RecordProducer(
            runtime.kafka_bootstrap,
            client_id="engagement-cli",
            client_options=runtime.settings.kafka_client_options(),
        )
        try:
            await producer.send_many(topic, [(key.encode(), value.encode())])
        finally:
            producer.close()

    asyncio.run(go())


# -- interventions ----------------------------------------------------------------------------


def cmd_interventions(args: argparse.Namespace) -> int:
    """A student's records, or the export of every record for the student-records system."""
    from sinks.stores.interventions import InterventionLog

    runtime = load_runtime()
    prefix = runtime.settings.key_prefix
    if args.action == "show":
        if not args.student_id:
            msg = "engagement interventions show STUDENT_ID"
            raise ConfigError(msg)
        pseudonym = _pseudonym(runtime, args.student_id)

        async def show(client: aioredis.Redis) -> list[str]:
            records = await InterventionLog(client, prefix).for_student(pseudonym)
            return [r.model_dump_json() for r in records]

        for line in with_redis(runtime, show):
            print(line)
        return 0
    return _export(runtime, args)


def _aware(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{flag} {text!r} is not an ISO date or time, e.g. 2026-11-01 or 2026-11-01T09:00Z"
        raise ConfigError(msg) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _export(runtime: Runtime, args: argparse.Namespace) -> int:
    from sinks.export.records import write_exports
    from sinks.stores.interventions import InterventionLog

    if not args.jsonl and not args.xapi:
        msg = "say where to write: --jsonl FILE and/or --xapi FILE"
        raise ConfigError(msg)
    since, until = _aware(args.since, "--since"), _aware(args.until, "--until")
    prefix = runtime.settings.key_prefix

    async def gather(client: aioredis.Redis) -> tuple[list[Any], dict[str, str]]:
        records = await InterventionLog(client, prefix).all_records()
        pseudonyms = sorted({r.pseudonym for r in records})
        identities: dict[str, str] = {}
        for start in range(0, len(pseudonyms), 1000):
            chunk = pseudonyms[start : start + 1000]
            values = await client.mget([Keys(prefix).identity(p) for p in chunk])
            for pseudonym, value in zip(chunk, values, strict=True):
                if value is not None:
                    identities[pseudonym] = (
                        value.decode() if isinstance(value, bytes) else str(value)
                    )
        return records, identities

    records, identities = with_redis(runtime, gather)
    report = write_exports(
        records,
        identities,
        jsonl=Path(args.jsonl) if args.jsonl else None,
        xapi=Path(args.xapi) if args.xapi else None,
        homepage=args.homepage,
        since=since,
        until=until,
    )
    print(report.summary())
    return 0


# -- review -----------------------------------------------------------------------------------


def cmd_review(args: argparse.Namespace) -> int:
    """The review queue: list what a member of staff may act on, show one item, decide it."""
    from schemas.interventions import StaffAction
    from schemas.review import load_teams
    from schemas.rules import load_rules
    from sinks.channels.producer import RecordProducer
    from sinks.config import staff_routes
    from sinks.stores.interventions import InterventionLog
    from sinks.stores.review import ReviewQueue

    runtime = load_runtime()
    settings = runtime.settings
    teams = load_teams(settings.teams_file, routes=staff_routes(load_rules(settings.rules_file)))
    args.staff = _signed_in_staff(args, settings)

    async def work(client: aioredis.Redis) -> int:
        producer = (
            RecordProducer(
                runtime.kafka_bootstrap,
                client_id="engagement-review",
                client_options=settings.kafka_client_options(),
            )
            if args.action == "decide"
            else None
        )
        log = InterventionLog(
            client, settings.key_prefix, producer=producer, topic=settings.topics.interventions
        )
        queue = ReviewQueue(
            client,
            settings.key_prefix,
            teams,
            log.append,
            recorded_key=log.recorded_key,
            audit_retention_days=settings.audit_retention_days,
        )
        now = datetime.now(UTC)
        try:
            if args.action == "list":
                items = await queue.visible_to(args.staff, now=now)  # audited: it shows people
                _print_items(items, now)
                return 0
            if not args.nudge_id:
                msg = f"engagement review {args.action} NUDGE_ID"
                raise ConfigError(msg)
            if args.action == "show":
                item = await queue.show(args.nudge_id, args.staff, now)
                identity = await client.get(Keys(settings.key_prefix).identity(item.pseudonym))
                shown = item.model_dump(mode="json")
                shown["student_id"] = identity.decode() if isinstance(identity, bytes) else identity
                print(json.dumps(shown, indent=2, sort_keys=True))
                return 0
            if args.action_taken is None:
                msg = "say what you did: --action contacted|meeting_booked|no_action|referred"
                raise ConfigError(msg)
            record = await queue.decide(
                args.nudge_id,
                args.staff,
                StaffAction(args.action_taken),
                reason=args.reason,
                referred_to=args.service,
                now=now,
            )
            print(record.detail)
            print(f"recorded as {record.record_id}")
            return 0
        finally:
            if producer is not None:
                producer.close()

    return with_redis(runtime, work)


def _signed_in_staff(args: argparse.Namespace, settings: Any) -> str:
    """Who is acting: the subject of ``--token`` (or ENGAGEMENT_TOKEN), validated as the API
    validates it; or ``--staff`` as typed, taken only where no identity provider is configured
    (ENGAGEMENT_OIDC_ISSUER unset) or ENGAGEMENT_LOCAL_SETUP=yes says this is a local setup."""
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        if args.staff and (settings.oidc_issuer is None or settings.local_setup):
            return str(args.staff)
        msg = (
            f"sign in: --token TOKEN or {TOKEN_ENV} (an access token from your identity "
            "provider); --staff alone is taken only in a local setup (ENGAGEMENT_LOCAL_SETUP=yes)"
            if args.staff
            else f"say who you are: --token TOKEN or {TOKEN_ENV} (or --staff ID, local setups)"
        )
        raise ConfigError(msg)
    from schemas.access import Role
    from stream.api.auth import AuthError, build_authenticator

    async def check() -> Any:
        authenticator = await build_authenticator(settings)
        return await authenticator.principal(token.strip())

    try:
        who = asyncio.run(check())
    except AuthError as exc:
        msg = f"the token is refused ({exc.reason}): get a new one"
        raise ConfigError(msg) from None
    if not who.roles & {Role.TUTOR, Role.SUPPORT, Role.COMPLIANCE}:
        msg = "the token's roles do not include tutor, support or compliance: no review queue"
        raise ConfigError(msg)
    if args.staff and args.staff != who.subject:
        msg = f"--staff {args.staff} is not the token's subject: leave --staff out"
        raise ConfigError(msg)
    return str(who.subject)


def _print_items(items: list[Any], now: datetime) -> None:
    if not items:
        print("nothing waiting for you")
        return
    print(f"{'age':>6}  {'tier':<10} {'queue':<24} {'nudge':<34} rule")
    for item in items:
        hours = (now - item.queued_at).total_seconds() / 3600
        age = f"{hours:.0f}h" if hours < 48 else f"{hours / 24:.0f}d"
        escalated = "  (escalated)" if item.escalated_to else ""
        print(
            f"{age:>6}  {item.tier.value:<10} {item.queue:<24} {item.nudge_id:<34} "
            f"{item.rule_id}{escalated}"
        )
        print(f"        {item.summary}")


def add_parsers(sub: Any) -> None:
    """Register prefs, interventions and review on the ``engagement`` parser."""
    prefs = add_command(
        sub,
        "prefs",
        "show or change a student's opt-outs",
        [
            "engagement prefs show S1234567",
            "engagement prefs set S1234567 --opt-out sms --source helpdesk",
            "engagement prefs set S1234567 --opt-in all",
        ],
        details="A change is published on the preferences topic, as the student app does, and "
        "applied by the notifier; `set` waits up to 10 s to show it applied.",
    )
    prefs.add_argument("action", choices=["show", "history", "set"], help="what to do")
    prefs.add_argument("student_id", help="the student's institutional id")
    channels = ["all", "email", "sms", "app"]
    prefs.add_argument("--opt-out", nargs="+", choices=channels)
    prefs.add_argument("--opt-in", nargs="+", choices=channels)
    prefs.add_argument("--source", default="cli", help="who made the change, for the history")
    prefs.add_argument("--no-wait", action="store_true", help="do not wait for it to apply")
    prefs.set_defaults(func=cmd_prefs)

    interventions = add_command(
        sub,
        "interventions",
        "a student's intervention records, or export all",
        [
            "engagement interventions show S1234567",
            "engagement interventions export --jsonl records.jsonl --xapi statements.jsonl "
            "--since 2026-09-01",
        ],
    )
    interventions.add_argument("action", choices=["show", "export"], help="what to do")
    interventions.add_argument("student_id", nargs="?", help="the student (show)")
    interventions.add_argument("--jsonl", help="write every record here, one JSON per line")
    interventions.add_argument("--xapi", help="write Jisc xAPI case statements here (JSONL)")
    interventions.add_argument("--since", help="only records decided at or after (ISO time)")
    interventions.add_argument("--until", help="only records decided before (ISO time)")
    interventions.add_argument(
        "--homepage",
        default="https://example.ac.uk",
        help="the institution's account homePage for xAPI actors",
    )
    interventions.set_defaults(func=cmd_interventions)

    review = add_command(
        sub,
        "review",
        "the staff review queue: list, show, decide",
        [
            "ENGAGEMENT_TOKEN=... engagement review list",
            "engagement review show NUDGE_ID --token TOKEN",
            "engagement review decide NUDGE_ID --action contacted",
            'engagement review decide NUDGE_ID --action no_action --reason "spoke"',
            "engagement review list --staff T001   # local setups only",
        ],
        details="You are the subject of your access token (--token or ENGAGEMENT_TOKEN), "
        "checked as the API checks it; --staff ID is taken only where no identity provider is "
        "configured or ENGAGEMENT_LOCAL_SETUP=yes. Every listing and view is audited. Teams "
        "come from ENGAGEMENT_TEAMS_FILE.",
    )
    review.add_argument("action", choices=["list", "show", "decide"], help="what to do")
    review.add_argument("nudge_id", nargs="?", help="the item (show, decide), from `list`")
    review.add_argument("--token", help="your access token (default: ENGAGEMENT_TOKEN)")
    review.add_argument("--staff", help="your staff id, unauthenticated (local setups only)")
    review.add_argument(
        "--action",
        dest="action_taken",
        choices=["contacted", "meeting_booked", "no_action", "referred"],
        help="what you did (decide)",
    )
    review.add_argument("--reason", help="why no action is needed, or a note")
    review.add_argument("--service", help="the service you referred the student to")
    review.set_defaults(func=cmd_review)
