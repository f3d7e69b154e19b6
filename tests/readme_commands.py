"""The README's "Using it" commands, as a newcomer would type them (shared by the unit test that
parses them and the integration test that runs them)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# Commands that run until stopped: a newcomer gives each its own terminal.
LONG_RUNNING = frozenset({"worker", "notifier", "receiver"})


def using_it_block(text: str | None = None) -> list[str]:
    """The lines of the first ``sh`` block under "## Using it", continuations joined."""
    text = README.read_text(encoding="utf-8") if text is None else text
    _, found, rest = text.partition("\n## Using it\n")
    assert found, "README.md has no '## Using it' section"
    section = rest.split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the 'Using it' section has no ```sh block"
    lines = match.group(1).replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def words(line: str) -> list[str]:
    """A command line's words, without its trailing comment."""
    return shlex.split(line, comments=True)


def command(line: str) -> str | None:
    """The sub-command a line runs (``worker``, ``check`` …), or None for a shell line."""
    found = words(line)
    return found[1] if found[:1] == ["engagement"] and len(found) > 1 else None
