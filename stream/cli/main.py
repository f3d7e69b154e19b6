"""The ``engagement`` command: builds the parser from the command families and dispatches.

Each family module (``run``, ``publish``, ``notify``, ``check``, ``rules``, ``keys``, ``replay``,
``dev``)
registers its own sub-commands and runs them; this module only decides the order in which
``engagement --help`` lists them and turns a known error into a message and an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from schemas.errors import EngagementError
from stream.cli import check, dev, keys, notify, publish, replay, rules, run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(
        prog="engagement",
        description="Real-time engagement signals and respectful nudges for universities.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # The order of `engagement --help`: families interleave, so each registers one by one.
    dev.add_stack(sub)
    run.add_parsers(sub)  # worker, notifier
    publish.add_publish(sub)
    dev.add_simulate(sub)
    notify.add_parsers(sub)  # prefs, interventions, review
    check.add_parsers(sub)
    dev.add_receiver(sub)
    publish.add_reference(sub)
    rules.add_parsers(sub)
    keys.add_parsers(sub)
    replay.add_parsers(sub)
    dev.add_demo(sub)
    dev.add_bench(sub)
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
