"""The ``engagement`` command and its sub-commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from schemas.errors import EngagementError
from schemas.settings import ENV
from stream.cli.notify import add_parsers


def _state_dir() -> Path:
    return Path(os.environ.get(ENV["state_dir"], ".engagement"))


def cmd_stack(args: argparse.Namespace) -> int:
    """Start, stop or describe the local broker and Redis."""
    from stream.dev import stack  # keeps `engagement --help` fast
    from stream.runtime import dev_key

    state_dir = _state_dir()
    if args.action == "up":
        endpoints = stack.up(
            state_dir,
            kafka_bootstrap=os.environ.get(ENV["kafka_bootstrap_servers"]),
            redis_url=os.environ.get(ENV["redis_url"]),
        )
        dev_key(state_dir, create=True)
        kafka_kind = "embedded" if endpoints.embedded_kafka else "external"
        redis_kind = "embedded" if endpoints.embedded_redis else "external"
        print(f"broker  {endpoints.kafka_bootstrap}  ({kafka_kind})")
        print(f"redis   {endpoints.redis_url}  ({redis_kind})")
        print(f"state   {state_dir / 'stack.json'}")
    elif args.action == "down":
        print("stopped" if stack.down(state_dir) else "nothing was running")
    else:
        print(json.dumps(stack.status(state_dir), indent=2, default=str))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the worker or the notifier in the foreground."""
    from stream.compose import run
    from stream.runtime import load_runtime

    run(load_runtime(), args.command)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Validate and publish a JSONL/CSV/TSV file of events."""
    from stream.publisher import Publisher, ensure_topics, publish_file
    from stream.runtime import load_runtime

    runtime = load_runtime()
    topics = runtime.settings.topics
    ensure_topics(runtime.kafka_bootstrap, topics, runtime.settings.partitions)
    with Publisher(
        runtime.kafka_bootstrap, topics=topics, envelope_size=args.envelope_size
    ) as publisher:
        report = publish_file(Path(args.file), args.source, publisher)
    print(report.summary())
    return 0 if report.sent else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    """Generate a cohort, write its ground truth, and publish it (unless --no-publish)."""
    from stream.dev.simulate import SimConfig, publish_simulation, simulate
    from stream.publisher import Publisher, ensure_topics
    from stream.runtime import load_runtime

    config = SimConfig(
        students=args.students,
        weeks=args.weeks,
        seed=args.seed,
        start=date.fromisoformat(args.start),
    )
    sim = simulate(config)
    sim.truth.write(Path(args.truth))
    print(f"simulated {len(sim.events)} events and {len(sim.malformed)} malformed inputs")
    print(f"ground truth written to {args.truth}")
    if args.out:
        paths = sim.write(Path(args.out))
        print(f"events, roster and timetable written to {args.out} ({len(paths)} files)")
    if args.no_publish:
        return 0
    runtime = load_runtime()
    ensure_topics(runtime.kafka_bootstrap, runtime.settings.topics, runtime.settings.partitions)
    with Publisher(
        runtime.kafka_bootstrap, topics=runtime.settings.topics, envelope_size=args.envelope_size
    ) as publisher:
        report = publish_simulation(sim, publisher)
    print(report.summary())
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Ask a running worker or notifier whether it is ready: exit 0 if so, 1 if not."""
    from stream.dev.processes import http_get

    url = args.url
    if url is None:
        port = int(os.environ.get(ENV["web_port"], "6066"))
        url = f"http://127.0.0.1:{port}/readyz"
    status, body = http_get(url, timeout=args.timeout)
    if status == 0:
        print(f"not ready: nothing answers at {url}", file=sys.stderr)
        return 1
    try:
        report = json.loads(body)
    except ValueError:
        print(f"not ready: {url} answered {status} without a readiness report", file=sys.stderr)
        return 1
    checks = report.get("checks", {})
    lines = [f"  {name}: {value}" for name, value in sorted(checks.items())]
    lines += [f"  stuck: {item}" for item in report.get("stuck_partitions", [])]
    print(("ready" if report.get("ready") else "not ready") + f" ({url})")
    print("\n".join(lines))
    return 0 if status == 200 and report.get("ready") else 1


def cmd_receiver(args: argparse.Namespace) -> int:
    """Run the local notification-service stand-in."""
    from stream.dev.receiver import serve

    serve(
        args.host, args.port, Path(args.out), args.secret or os.environ.get(ENV["webhook_secret"])
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole product on the embedded stack and print a report."""
    from stream.dev.demo import run_demo

    return run_demo(students=args.students, weeks=args.weeks, seed=args.seed)


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure throughput, latency and memory of one worker."""
    from stream.dev.bench import run_bench

    return run_bench(
        events=args.events,
        envelope_size=args.envelope_size,
        rate=args.rate,
        latency_seconds=args.latency_seconds,
        out=Path(args.out) if args.out else None,
        part=args.part,
        nudges=args.nudges,
        metrics=args.metrics,
    )


def cmd_reference(args: argparse.Namespace) -> int:
    """Validate and publish roster, timetable or exemption records."""
    from stream.publisher import ensure_topics
    from stream.reference import publish_reference
    from stream.runtime import load_runtime

    runtime = load_runtime()
    topics = runtime.settings.topics
    ensure_topics(runtime.kafka_bootstrap, topics, runtime.settings.partitions)
    report = publish_reference(runtime.kafka_bootstrap, topics, args.kind, Path(args.file))
    print(report.summary())
    return 0 if not report.refused else 1


def cmd_rules(args: argparse.Namespace) -> int:
    """Validate a rules file and print its rules in words."""
    from agents.model.rules import describe
    from schemas.rules import RulesFileError, load_rules

    try:
        rules = load_rules(Path(args.file) if args.file else None)
    except RulesFileError as exc:
        print(f"engagement: {exc}", file=sys.stderr)
        return 2
    print(describe(rules), end="")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay historical files through the agents' code and write a backtest report."""
    from stream.cli.replay import run_replay

    return run_replay(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(
        prog="engagement",
        description="Real-time engagement signals and respectful nudges for universities.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="local broker and Redis: up, down, status")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.set_defaults(func=cmd_stack)

    sub.add_parser("worker", help="run ingest and engagement agents").set_defaults(func=cmd_run)
    sub.add_parser("notifier", help="run the notifier").set_defaults(func=cmd_run)

    publish = sub.add_parser("publish", help="publish a JSONL, CSV or TSV file of events")
    publish.add_argument("file")
    publish.add_argument("--source", required=True, choices=["swipe", "attendance", "vle"])
    publish.add_argument("--envelope-size", type=int, default=500)
    publish.set_defaults(func=cmd_publish)

    simulate = sub.add_parser("simulate", help="generate and publish a realistic cohort")
    simulate.add_argument("--students", type=int, default=500)
    simulate.add_argument("--weeks", type=int, default=4)
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--start", default="2026-09-28", help="a Monday, YYYY-MM-DD")
    simulate.add_argument("--truth", default="ground-truth.json")
    simulate.add_argument("--envelope-size", type=int, default=500)
    simulate.add_argument("--no-publish", action="store_true")
    simulate.add_argument("--out", help="also write events, roster, timetable and truth here")
    simulate.set_defaults(func=cmd_simulate)

    add_parsers(sub)

    check = sub.add_parser(
        "check", help="exit 0 when the local worker or notifier is ready (container health)"
    )
    check.add_argument("--url", help="default: http://127.0.0.1:$ENGAGEMENT_WEB_PORT/readyz")
    check.add_argument("--timeout", type=float, default=4.0)
    check.set_defaults(func=cmd_check)

    receiver = sub.add_parser("receiver", help="a local stand-in for the notification service")
    receiver.add_argument("--host", default="127.0.0.1")
    receiver.add_argument("--port", type=int, default=8080)
    receiver.add_argument("--out", default="received.jsonl")
    receiver.add_argument(
        "--secret", help="verify X-Engagement-Signature (default: ENGAGEMENT_WEBHOOK_SECRET)"
    )
    receiver.set_defaults(func=cmd_receiver)

    reference = sub.add_parser(
        "reference", help="publish roster, timetable or exemption records (JSONL)"
    )
    reference.add_argument("kind", choices=["roster", "timetable", "exemptions"])
    reference.add_argument("file", help='one record per line; {"delete": "<id>"} removes one')
    reference.set_defaults(func=cmd_reference)

    rules = sub.add_parser("rules", help="validate a rules file and print it in words")
    rules.add_argument("action", choices=["check"])
    rules.add_argument("file", nargs="?", help="default: the shipped rules")
    rules.set_defaults(func=cmd_rules)

    replay = sub.add_parser("replay", help="run the rules over historical files; backtest report")
    for source in ("swipe", "attendance", "vle"):
        replay.add_argument(f"--{source}", action="append", default=[], metavar="FILE")
    replay.add_argument("--sim-dir", help="a directory written by `engagement simulate --out`")
    replay.add_argument("--oulad-vle", metavar="studentVle.csv")
    replay.add_argument("--oulad-sites", metavar="vle.csv")
    replay.add_argument("--oulad-start", default="2013-10-07", help="date of day 0, YYYY-MM-DD")
    for kind in ("roster", "timetable", "exemptions"):
        replay.add_argument(f"--{kind}", metavar="FILE.jsonl")
    replay.add_argument("--outcomes", help="CSV: student_id,outcome or OULAD studentOutcome.csv")
    replay.add_argument("--outcome-course", help="OULAD presentation, e.g. AAA-2013J")
    replay.add_argument("--truth", help="a simulation's truth.json, to check who was reached")
    replay.add_argument("--rules", help="rules file (default: ENGAGEMENT_RULES_FILE or shipped)")
    replay.add_argument("--report", default="replay-report.json")
    replay.add_argument("--nudges", default="replay-nudges.jsonl")
    replay.set_defaults(func=cmd_replay)

    demo = sub.add_parser("demo", help="the whole product on the embedded stack, with a report")
    demo.add_argument("--students", type=int, default=500)
    demo.add_argument("--weeks", type=int, default=4)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="throughput, latency percentiles and memory")
    bench.add_argument("--events", type=int, default=200_000)
    bench.add_argument("--envelope-size", type=int, default=500)
    bench.add_argument("--rate", type=int, default=2000, help="events/s for the latency phase")
    bench.add_argument("--latency-seconds", type=int, default=20)
    bench.add_argument("--out", help="also write the figures as JSON here")
    bench.add_argument("--part", choices=["all", "worker", "notifier"], default="all")
    bench.add_argument("--nudges", type=int, default=5000, help="prompts for the notifier run")
    bench.add_argument(
        "--metrics",
        choices=["full", "minimal", "both"],
        default="full",
        help="both: run the throughput runs with and without the metric set, to see its cost",
    )
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a sub-command; a known error prints its message, not a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except EngagementError as exc:
        print(f"engagement: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
