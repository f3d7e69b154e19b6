"""``engagement check``: ask a running worker or notifier whether it is ready (container health)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from schemas.settings import ENV


def cmd_check(args: argparse.Namespace) -> int:
    """Ask a running worker or notifier whether it is ready: exit 0 if so, 1 if not."""
    from stream.probes import http_get

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


def add_parsers(sub: Any) -> None:
    """Register check on the ``engagement`` parser."""
    check = sub.add_parser(
        "check", help="exit 0 when the local worker or notifier is ready (container health)"
    )
    check.add_argument("--url", help="default: http://127.0.0.1:$ENGAGEMENT_WEB_PORT/readyz")
    check.add_argument("--timeout", type=float, default=4.0)
    check.set_defaults(func=cmd_check)
