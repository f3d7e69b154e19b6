"""`engagement replay`: settings, Redis and files for a replay; prints and writes the report.

The replay machinery (``stream.offline``, the rules) is imported inside the command, so that
building the ``engagement`` parser does not load the agents.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from schemas.errors import ConfigError
from schemas.settings import ENV, Settings, load_settings
from schemas.sources import SOURCES
from stream.cli.helptext import add_command
from stream.endpoints import load_endpoints
from stream.runtime import dev_key

if TYPE_CHECKING:
    from stream.offline.replay import ReplayInput, ReplayResult


def _settings() -> Settings:
    overrides: dict[str, object] = {}
    if ENV["pseudonym_key"] not in os.environ:
        state_dir = Path(os.environ.get(ENV["state_dir"], ".engagement"))
        overrides["pseudonym_key"] = dev_key(state_dir, create=True)
    return load_settings(**overrides)


@contextlib.contextmanager
def _redis_url(settings: Settings) -> Iterator[str]:
    """Redis to replay in: REDIS_URL, the running local stack, or one started for the replay."""
    if settings.redis_url:
        yield settings.redis_url_with_password(settings.redis_url)
        return
    recorded = load_endpoints(settings.state_dir)
    if recorded is not None:
        yield recorded.redis_url
        return
    from stream.cli.dev import scratch_redis  # a development stack, only when none is given

    with scratch_redis() as url:
        yield url


def _from_sim_dir(spec: ReplayInput, base: Path, args: argparse.Namespace) -> None:
    for source in SOURCES:
        path = base / f"{source}.jsonl"
        if path.exists():
            spec.events.append((source, path))
    for kind in ("roster", "timetable"):
        if (base / f"{kind}.jsonl").exists():
            spec.reference[kind] = base / f"{kind}.jsonl"
    if args.truth is None and (base / "truth.json").exists():
        args.truth = str(base / "truth.json")


def spec_from_args(args: argparse.Namespace) -> ReplayInput:
    """What to replay, from the command line."""
    from stream.offline.replay import ReplayInput

    spec = ReplayInput()
    if args.sim_dir:
        _from_sim_dir(spec, Path(args.sim_dir), args)
    for source in SOURCES:
        spec.events.extend((source, Path(f)) for f in getattr(args, str(source)))
    if args.oulad_vle:
        spec.oulad_vle = Path(args.oulad_vle)
        spec.oulad_start = date.fromisoformat(args.oulad_start)
        spec.oulad_sites = Path(args.oulad_sites) if args.oulad_sites else None
    for kind in ("roster", "timetable", "exemptions"):
        if getattr(args, kind):
            spec.reference[kind] = Path(getattr(args, kind))
    if args.outcomes:
        spec.outcomes = Path(args.outcomes)
        spec.outcome_course = args.outcome_course
    if not spec.events and spec.oulad_vle is None:
        feeds = "/".join(f"--{source}" for source in SOURCES)
        msg = f"nothing to replay: give --sim-dir, {feeds} FILE or --oulad-vle"
        raise ConfigError(msg)
    return spec


async def _run(url: str, spec: ReplayInput, settings: Settings, rules: Any) -> ReplayResult:
    from stream.offline.replay import replay

    client = aioredis.from_url(url)
    try:
        return await replay(spec, settings, client, rules)
    finally:
        await client.aclose()


def run_replay(args: argparse.Namespace) -> int:
    """The command: replay, write the nudges and the report, print the report."""
    from agents.model.pseudonym import Pseudonymiser
    from schemas.rules import RulesFileError, load_rules
    from stream.offline.backtest import render_report
    from stream.offline.replay import truth_summary

    settings = _settings()
    try:
        rules = load_rules(Path(args.rules) if args.rules else settings.rules_file)
    except RulesFileError as exc:
        raise ConfigError(str(exc)) from None
    spec = spec_from_args(args)
    with _redis_url(settings) as url:
        result = asyncio.run(_run(url, spec, settings, rules))
    report = result.report
    if args.truth:
        truth = json.loads(Path(args.truth).read_text(encoding="utf-8"))
        last = date.fromisoformat(report["period"]["last_day"])
        pseudonymise = Pseudonymiser(settings.pseudonym_key)
        report["ground_truth"] = truth_summary(truth, result.nudges, pseudonymise, last)
    Path(args.report).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    with Path(args.nudges).open("w", encoding="utf-8") as out:
        for nudge in result.nudges:
            out.write(nudge.model_dump_json() + "\n")
    print(render_report(report))
    if "ground_truth" in report:
        print("Against the simulation's ground truth:")
        for persona, row in sorted(report["ground_truth"].items()):
            after = row["median_days_after_disengaging"]
            when = f", a median of {after:g} days after disengaging" if after is not None else ""
            print(f"  {persona}: reached {row['reached']} of {row['students']}{when}")
    print(
        f"Replayed {result.events} events in {result.seconds:.1f} s "
        f"({result.events_per_second:,.0f} events/s); {result.too_late} too late, "
        f"{result.duplicates} duplicates, {sum(result.refused.values())} refused."
    )
    print(f"Report: {args.report}; decisions: {args.nudges}")
    if args.publish:
        print(f"Filed for the insights role: {publish(report, settings.state_dir)}")
    return 0


def publish(report: dict[str, Any], state_dir: Path) -> Path:
    """File the report's aggregate part under ``state_dir/reports`` for the insights role
    (``GET /v1/insights/backtests``); refused if it names a pseudonym."""
    from datetime import UTC, datetime

    from stream.offline.backtest import REPORTS_DIR, aggregate_part, pseudonyms_in, report_name

    shared = aggregate_part(report)
    if pseudonyms_in(shared):
        msg = "the report names a pseudonym: it is not filed for the insights role"
        raise ConfigError(msg)
    folder = state_dir / REPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{report_name(datetime.now(UTC))}.json"
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(json.dumps(shared, indent=1) + "\n")
    except FileExistsError:
        msg = f"{path} exists already: file the report again in a second"
        raise ConfigError(msg) from None
    return path


def add_parsers(sub: Any) -> None:
    """Register replay on the ``engagement`` parser."""
    replay = add_command(
        sub,
        "replay",
        "backtest the rules on historical files",
        [
            "engagement replay --sim-dir sim --truth sim/truth.json",
            "engagement replay --vle vle.jsonl --attendance registers.csv --rules my-rules.toml",
            "engagement replay --oulad-vle studentVle.csv --oulad-sites vle.csv "
            "--outcomes studentInfo.csv --outcome-course AAA-2013J",
        ],
        details="Nothing is sent and no broker is needed; see docs/replay.md.",
    )
    for source in SOURCES:
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
    replay.add_argument(
        "--publish",
        action="store_true",
        help="also file the report (counts only) in ENGAGEMENT_STATE_DIR/reports, where the "
        "insights role reads it (GET /v1/insights/backtests, the Insights page)",
    )
    replay.set_defaults(func=run_replay)
