"""``engagement worker`` and ``engagement notifier``: run one process in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

from stream.cli.helptext import add_command


def cmd_run(args: argparse.Namespace) -> int:
    """Run the worker or the notifier in the foreground."""
    from stream.compose import run
    from stream.runtime import load_runtime

    run(load_runtime(), args.command)
    return 0


def add_parsers(sub: Any) -> None:
    """Register worker and notifier on the ``engagement`` parser."""
    add_command(
        sub,
        "worker",
        "run the ingest and engagement agents",
        [
            "engagement worker",
            "ENGAGEMENT_WEB_PORT=6070 engagement worker   # a second worker on the same host",
        ],
        details="Runs until stopped (Ctrl-C or SIGTERM), serving /healthz, /readyz, /metrics and "
        "/status on ENGAGEMENT_WEB_PORT (default 6066). Without KAFKA_BOOTSTRAP_SERVERS and "
        "REDIS_URL it uses the stack started by `engagement stack up`.",
    ).set_defaults(func=cmd_run)
    add_command(
        sub,
        "notifier",
        "run the notifier: prompts, review queue, records",
        [
            "engagement notifier   # with ENGAGEMENT_WEBHOOK_URL and _SECRET set",
            "ENGAGEMENT_WEB_PORT=6077 engagement notifier",
        ],
        details="Runs until stopped, serving /healthz, /readyz, /metrics and /status on "
        "ENGAGEMENT_WEB_PORT (default 6067, so that it runs beside a worker). It refuses to "
        "start, naming the variable to fix, when a channel's transport is not configured "
        "(ENGAGEMENT_WEBHOOK_URL and _SECRET for the default webhook).",
    ).set_defaults(func=cmd_run)
