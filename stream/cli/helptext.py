"""Help for every sub-command: a one-line summary, and examples that work as written.

``engagement --help`` lists each command with its summary; ``engagement COMMAND --help`` adds
the examples. ``tests/unit/test_help.py`` walks the parser: every command has both, and every
example parses.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from typing import Any


def add_command(
    sub: Any,
    name: str,
    summary: str,
    examples: Sequence[str],
    details: str | None = None,
) -> argparse.ArgumentParser:
    """Register ``engagement NAME`` with its summary, optional details and examples."""
    lines = "\n".join(f"  {example}" for example in examples)
    heading = "example:" if len(examples) == 1 else "examples:"
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=summary if details is None else f"{summary}\n\n{textwrap.fill(details, 78)}",
        epilog=f"{heading}\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser
