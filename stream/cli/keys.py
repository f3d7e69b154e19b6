"""``engagement keys``: the key register — every Redis key the product writes, and why."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_keys(args: argparse.Namespace) -> int:
    """Print the key register as a Markdown table."""
    from schemas.keys import register_table

    print(register_table(), end="")
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``keys`` on the ``engagement`` parser."""
    keys = sub.add_parser(
        "keys",
        help="list every Redis key family: what it holds, about whom, how long it is kept",
        description="Print the key register (docs/keys.md) as a Markdown table.",
        epilog="example: engagement keys > keys.md",
    )
    keys.set_defaults(func=cmd_keys)
