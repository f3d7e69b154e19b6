"""The development commands: ``engagement stack|simulate|receiver|demo|bench``.

This is the only command module that may use the development tooling (``stream.dev``), and it
imports it inside each command, so ``engagement --help`` and the production commands never
load it. ``engagement replay`` borrows :func:`scratch_redis` from here when no Redis is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from schemas.settings import ENV
from stream.cli.helptext import add_command


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


def cmd_simulate(args: argparse.Namespace) -> int:
    """Generate a cohort, write its ground truth, and publish it (unless --no-publish)."""
    from stream.dev.simulate import SimConfig, publish_simulation, simulate
    from stream.publisher import Publisher
    from stream.runtime import load_runtime
    from stream.topics import ensure_topics

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
    settings = runtime.settings
    login = settings.kafka_client_options()
    ensure_topics(runtime.kafka_bootstrap, settings.topics, settings.partitions, login)
    with Publisher(
        runtime.kafka_bootstrap,
        topics=settings.topics,
        envelope_size=args.envelope_size,
        client_options=login,
    ) as publisher:
        report = publish_simulation(sim, publisher)
    print(report.summary())
    return 0


def cmd_receiver(args: argparse.Namespace) -> int:
    """Run the local notification-service stand-in."""
    from stream.dev.receiver import serve

    secrets = args.secret or os.environ.get(ENV["webhook_secret"], "").split()
    serve(
        args.host, args.port, Path(args.out), secrets, insecure_local_test=args.insecure_local_test
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole product on the embedded stack and print a report."""
    from stream.dev.demo import run_demo

    return run_demo(students=args.students, weeks=args.weeks, seed=args.seed)


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure throughput, latency and memory of one worker."""
    part = args.which or args.part
    if part == "api":
        from stream.dev.bench.api import run_api_bench

        return run_api_bench(
            students=args.students,
            seconds=args.seconds,
            rate=args.rate or 200,
            review_rate=args.review_rate,
            out=Path(args.out) if args.out else None,
        )
    from stream.dev.bench import run_bench

    return run_bench(
        events=args.events,
        envelope_size=args.envelope_size,
        rate=args.rate or 2000,
        latency_seconds=args.latency_seconds,
        out=Path(args.out) if args.out else None,
        part=part,
        nudges=args.nudges,
        metrics=args.metrics,
        ingest={
            "statements": args.statements,
            "batch": args.batch,
            "rate": args.ingest_rate,
            "seconds": args.ingest_seconds,
            "rows": args.rows,
            "bytes": args.bytes,
        },
    )


@contextlib.contextmanager
def scratch_redis() -> Iterator[str]:
    """A local stack started in a temporary directory for one command; yields its Redis URL
    and stops the stack afterwards."""
    from stream.dev.stack import LocalStack

    with (
        tempfile.TemporaryDirectory(prefix="engagement-replay-") as tmp,
        LocalStack(Path(tmp)) as stack,
    ):
        yield stack.endpoints.redis_url


def add_stack(sub: Any) -> None:
    """Register stack on the ``engagement`` parser."""
    stack = add_command(
        sub,
        "stack",
        "a local broker and Redis for development",
        ["engagement stack up", "engagement stack status", "engagement stack down"],
        details="The stack runs in the background with its state in ENGAGEMENT_STATE_DIR "
        "(.engagement); the other commands find it there. For development only.",
    )
    stack.add_argument("action", choices=["up", "down", "status"], help="what to do")
    stack.set_defaults(func=cmd_stack)


def add_simulate(sub: Any) -> None:
    """Register simulate on the ``engagement`` parser."""
    simulate = add_command(
        sub,
        "simulate",
        "generate a realistic cohort and publish it",
        [
            "engagement simulate --students 500 --weeks 4 --truth truth.json",
            "engagement simulate --no-publish --out sim   # files for replay and publish",
        ],
    )
    simulate.add_argument("--students", type=int, default=500)
    simulate.add_argument("--weeks", type=int, default=4)
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--start", default="2026-09-28", help="a Monday, YYYY-MM-DD")
    simulate.add_argument("--truth", default="ground-truth.json", help="who disengages, when")
    simulate.add_argument("--envelope-size", type=int, default=500)
    simulate.add_argument("--no-publish", action="store_true", help="only generate and write")
    simulate.add_argument("--out", help="also write events, roster, timetable and truth here")
    simulate.set_defaults(func=cmd_simulate)


def add_receiver(sub: Any) -> None:
    """Register receiver on the ``engagement`` parser."""
    receiver = add_command(
        sub,
        "receiver",
        "a local stand-in for the notification service",
        [
            "engagement receiver --port 8080 --out received.jsonl",
            "engagement receiver --insecure-local-test   # accepts unsigned requests: tests only",
        ],
        details="For development: it accepts webhook deliveries on /notify and appends each to "
        "the --out file. It verifies the webhook-signature with the shared secret "
        "(ENGAGEMENT_WEBHOOK_SECRET or --secret), refuses requests signed more than five "
        "minutes ago and acts on each webhook-id once; it will not start without a secret "
        "unless given --insecure-local-test. Runs until stopped.",
    )
    receiver.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback only)"
    )
    receiver.add_argument("--port", type=int, default=8080)
    receiver.add_argument("--out", default="received.jsonl")
    receiver.add_argument(
        "--secret",
        action="append",
        help="the shared secret (give it twice while rotating; default: ENGAGEMENT_WEBHOOK_SECRET)",
    )
    receiver.add_argument(
        "--insecure-local-test",
        action="store_true",
        help="start without a secret and accept unsigned requests: for a local test only",
    )
    receiver.set_defaults(func=cmd_receiver)


def add_demo(sub: Any) -> None:
    """Register demo on the ``engagement`` parser."""
    demo = add_command(
        sub,
        "demo",
        "the whole product on an embedded stack, with a report",
        ["engagement demo", "engagement demo --students 200 --weeks 6"],
    )
    demo.add_argument("--students", type=int, default=500)
    demo.add_argument("--weeks", type=int, default=4)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)


def add_bench(sub: Any) -> None:
    """Register bench on the ``engagement`` parser."""
    bench = add_command(
        sub,
        "bench",
        "speed and memory of a worker, notifier, ingest or the API",
        [
            "engagement bench --out bench-results.json   # the full run (minutes)",
            "engagement bench --part worker --events 20000 --latency-seconds 5",
            "engagement bench ingest   # xAPI over HTTP: arrays of 100, then 500 requests/s",
            "engagement bench api   # 30,000 students; GET /v1/me at 200/s, the review queue",
        ],
    )
    parts = ["all", "worker", "notifier", "ingest", "import", "api"]
    bench.add_argument("which", nargs="?", choices=parts, help="the part to run (as --part)")
    bench.add_argument("--events", type=int, default=200_000)
    bench.add_argument("--envelope-size", type=int, default=500)
    bench.add_argument(
        "--rate",
        type=int,
        help="events/s for the latency phase (2000); api: GET /v1/me requests/s (200)",
    )
    bench.add_argument("--latency-seconds", type=int, default=20)
    bench.add_argument("--out", help="also write the figures as JSON here")
    bench.add_argument("--part", choices=parts, default="all")
    bench.add_argument("--nudges", type=int, default=5000, help="prompts for the notifier run")
    bench.add_argument(
        "--metrics",
        choices=["full", "minimal", "both"],
        default="full",
        help="both: run the throughput runs with and without the metric set, to see its cost",
    )
    bench.add_argument("--statements", type=int, default=50_000, help="ingest: statements")
    bench.add_argument("--rows", type=int, default=200_000, help="import: rows of the export")
    bench.add_argument(
        "--bytes", type=int, default=None, help="import: the export's size in bytes, not --rows"
    )
    bench.add_argument("--batch", type=int, default=100, help="ingest: statements per request")
    bench.add_argument("--ingest-rate", type=int, default=500, help="ingest: single requests/s")
    bench.add_argument("--ingest-seconds", type=int, default=10, help="ingest: latency run length")
    bench.add_argument("--students", type=int, default=30_000, help="api: students in Redis")
    bench.add_argument("--seconds", type=float, default=30, help="api: length of each run")
    bench.add_argument("--review-rate", type=int, default=50, help="api: GET /v1/review per s")
    bench.set_defaults(func=cmd_bench)
