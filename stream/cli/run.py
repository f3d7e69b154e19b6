"""``engagement worker`` and ``engagement notifier``: run one process in the foreground."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_run(args: argparse.Namespace) -> int:
    """Run the worker or the notifier in the foreground."""
    from stream.compose import run
    from stream.runtime import load_runtime

    run(load_runtime(), args.command)
    return 0


def add_parsers(sub: Any) -> None:
    """Register worker and notifier on the ``engagement`` parser."""
    sub.add_parser("worker", help="run ingest and engagement agents").set_defaults(func=cmd_run)
    sub.add_parser("notifier", help="run the notifier").set_defaults(func=cmd_run)
