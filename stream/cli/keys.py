"""``engagement keys``: the key register — every Redis key the product writes, and why."""

from __future__ import annotations

import argparse
from typing import Any

from stream.cli.helptext import add_command


def cmd_keys(args: argparse.Namespace) -> int:
    """Print the key register as a Markdown table."""
    from schemas.keys import register_table

    print(register_table(), end="")
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``keys`` on the ``engagement`` parser."""
    keys = add_command(
        sub,
        "keys",
        "every Redis key: what it holds, about whom, how long",
        ["engagement keys > keys.md"],
        details="Prints the key register (docs/keys.md) as a Markdown table.",
    )
    keys.set_defaults(func=cmd_keys)
