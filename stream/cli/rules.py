"""``engagement rules check``: validate a rules file and print its rules in words."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stream.cli.helptext import add_command


def cmd_rules(args: argparse.Namespace) -> int:
    """Validate a rules file and print its rules in words."""
    from agents.model.describe import describe
    from schemas.rules import RulesFileError, load_rules

    try:
        rules = load_rules(Path(args.file) if args.file else None)
    except RulesFileError as exc:
        print(f"engagement: {exc}", file=sys.stderr)
        return 2
    print(describe(rules), end="")
    return 0


def add_parsers(sub: Any) -> None:
    """Register rules on the ``engagement`` parser."""
    rules = add_command(
        sub,
        "rules",
        "validate a rules file and print it in words",
        [
            "engagement rules check                          # the shipped rules",
            "engagement rules check /etc/engagement/rules.toml",
        ],
        details="Exits 2 with one line per problem (line, rule and field) when the file is "
        "not valid; the worker runs the same check at start-up.",
    )
    rules.add_argument("action", choices=["check"], help="check: validate and describe")
    rules.add_argument("file", nargs="?", help="default: the shipped rules")
    rules.set_defaults(func=cmd_rules)
