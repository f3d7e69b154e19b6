"""The ``engagement`` command: builds the parser from the command families and dispatches.

Each family module (``run``, ``publish``, ``notify``, ``check``, ``rules``, ``keys``, ``offsets``,
``replay``, ``dev``)
registers its own sub-commands and runs them; this module only decides the order in which
``engagement --help`` lists them and turns a known error into a message and an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from schemas.errors import EngagementError
from stream.cli import (
    api,
    check,
    dev,
    imports,
    ingest,
    keys,
    notify,
    offsets,
    publish,
    replay,
    reports,
    retention,
    rules,
    run,
    token,
)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps every command's summary on the command's own line in ``engagement --help``."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if action.nargs == argparse.PARSER:
            # argparse measures the commands one indent less than it prints them, and wraps
            # the longest (`interventions`) onto a line of its own.
            self._action_max_length += self._indent_increment


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(
        prog="engagement",
        description="Real-time engagement signals and respectful nudges for universities.",
        epilog="examples:\n"
        "  engagement stack up && engagement worker   # try it on a local broker and Redis\n"
        "  engagement COMMAND --help                  # what a command does, with examples",
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    # The order of `engagement --help`: families interleave, so each registers one by one.
    dev.add_stack(sub)
    run.add_parsers(sub)  # worker, notifier
    publish.add_publish(sub)
    dev.add_simulate(sub)
    notify.add_parsers(sub)  # prefs, interventions, review
    check.add_parsers(sub)
    ingest.add_parsers(sub)
    api.add_parsers(sub)
    imports.add_parsers(sub)  # watch
    dev.add_receiver(sub)
    publish.add_reference(sub)
    rules.add_parsers(sub)
    keys.add_parsers(sub)
    token.add_parsers(sub)
    offsets.add_parsers(sub)  # show, reset
    replay.add_parsers(sub)
    reports.add_parsers(sub)  # slc, ukvi
    retention.add_parsers(sub)  # retention run, erase
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
