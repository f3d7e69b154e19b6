"""``engagement check``: ask a running worker or notifier whether it is ready (container health).

The answer names the process that gave it (its role and process id), and ``--role`` refuses an
answer from the wrong one: with a worker and a notifier on one host, a check of the worker must
not pass because the notifier answered on the worker's port.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from schemas.settings import ENV, WEB_PORTS
from stream.cli.helptext import add_command


def default_url(role: str | None) -> str:
    """``/readyz`` on loopback at ENGAGEMENT_WEB_PORT, or the role's default port (the
    worker's when no role is given)."""
    port = os.environ.get(ENV["web_port"]) or str(WEB_PORTS[role or "worker"])
    return f"http://127.0.0.1:{port}/readyz"


def _who(report: dict[str, Any]) -> str:
    role, pid = report.get("role"), report.get("pid")
    if not role:
        return "a process that does not say what it is"
    return f"the {role}" + (f" (pid {pid})" if pid else "")


def cmd_check(args: argparse.Namespace) -> int:
    """Ask a running worker or notifier whether it is ready: exit 0 if so, 1 if not."""
    from stream.probes import http_get

    url = args.url or default_url(args.role)
    status, body = http_get(url, timeout=args.timeout)
    wanted = f"the {args.role}" if args.role else "a worker or the notifier"
    if status == 0:
        print(f"not ready: nothing answers at {url} (is {wanted} running?)", file=sys.stderr)
        return 1
    try:
        report = json.loads(body)
    except ValueError:
        report = None
    if not isinstance(report, dict):
        print(f"not ready: {url} answered {status} without a readiness report", file=sys.stderr)
        return 1
    who = _who(report)
    if args.role and report.get("role") != args.role:
        print(
            f"not ready: {who} answered at {url}, not the {args.role}; is the {args.role} "
            f"running, and on which port ({ENV['web_port']})?",
            file=sys.stderr,
        )
        return 1
    ready = status == 200 and report.get("ready") is True
    checks = report.get("checks", {})
    lines = [f"  {name}: {value}" for name, value in sorted(checks.items())]
    lines += [f"  stuck: {item}" for item in report.get("stuck_partitions", [])]
    print(f"{'ready' if ready else 'not ready'}: {who} at {url}")
    if lines:
        print("\n".join(lines))
    return 0 if ready else 1


def add_parsers(sub: Any) -> None:
    """Register check on the ``engagement`` parser."""
    check = add_command(
        sub,
        "check",
        "is the worker or notifier ready? (exit 0 if so)",
        [
            "engagement check                     # the worker on this host (port 6066)",
            "engagement check --role notifier     # the notifier (port 6067)",
            "engagement check --role worker --url http://worker-1:6066/readyz",
        ],
        details="Ready means Redis and the broker answer, every topic the process needs "
        "exists, partitions are assigned and none is stuck. With --role, an answer from "
        "another kind of process is not ready. The port is ENGAGEMENT_WEB_PORT when set, "
        "else the role's default (worker 6066, notifier 6067).",
    )
    check.add_argument(
        "--role",
        choices=sorted(WEB_PORTS),
        help="the process that must answer (default: whichever answers on the worker's port)",
    )
    check.add_argument(
        "--url", help="default: http://127.0.0.1:$ENGAGEMENT_WEB_PORT (or the role's)/readyz"
    )
    check.add_argument("--timeout", type=float, default=4.0, help="seconds (default 4)")
    check.set_defaults(func=cmd_check)
