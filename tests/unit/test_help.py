"""`engagement --help` tells a newcomer what each command does and shows how to call it.

Walks the whole argument parser: every sub-command has a one-line summary (on its own line of
`engagement --help`), a description, and examples, and every example parses as written.
"""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from stream.cli.main import build_parser

ENV_ASSIGNMENT = re.compile(r"^[A-Z][A-Z0-9_]*=\S*$")


def _commands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """Every sub-command: name → (its summary in the listing, its parser)."""
    found: dict[str, tuple[str, argparse.ArgumentParser]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found[name] = (summaries.get(name, ""), sub)
    return found


def _examples(sub: argparse.ArgumentParser) -> list[str]:
    epilog = sub.epilog or ""
    heading, _, body = epilog.partition("\n")
    assert heading in {"example:", "examples:"}, f"{sub.prog}: epilog starts {heading!r}"
    return [line.strip() for line in body.splitlines() if line.strip()]


def _argv(example: str) -> list[str]:
    """The arguments after `engagement` in an example: leading VAR=value assignments, a
    trailing comment and an output redirection are shell, not arguments."""
    words = shlex.split(example, comments=True)
    while words and ENV_ASSIGNMENT.match(words[0]):
        words.pop(0)
    assert words[:1] == ["engagement"], example
    if ">" in words:
        words = words[: words.index(">")]
    return words[1:]


COMMANDS = _commands(build_parser())


def test_the_walk_finds_every_command() -> None:
    assert {"worker", "notifier", "check", "publish", "review", "replay", "stack"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_one_line_summary_and_a_description(name: str) -> None:
    summary, sub = COMMANDS[name]
    assert summary.strip(), f"`engagement {name}` has no summary in `engagement --help`"
    assert "\n" not in summary
    assert sub.description, f"`engagement {name} --help` has no description"
    assert sub.description.startswith(summary)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_shows_examples_that_parse_as_written(name: str) -> None:
    _, sub = COMMANDS[name]
    examples = _examples(sub)
    assert examples, f"`engagement {name} --help` shows no example"
    for example in examples:
        argv = _argv(example)
        assert argv[:1] == [name], f"an example of {name} runs another command: {example}"
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse exits on a usage error
            pytest.fail(f"example does not parse ({exc.code}): {example}")
        assert args.command == name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_positional_argument_is_explained(name: str) -> None:
    _, sub = COMMANDS[name]
    for action in sub._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            assert action.help, f"`engagement {name}`: argument {action.dest} has no help"


def test_the_listing_keeps_each_summary_on_its_commands_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = build_parser().format_help()
    for name, (summary, _) in COMMANDS.items():
        line = next((line for line in text.splitlines() if line.split()[:1] == [name]), "")
        assert line.split(None, 1)[1:] == [summary], f"{name}: {line!r}"


def test_the_top_level_help_says_how_to_start() -> None:
    text = build_parser().format_help()
    assert "engagement COMMAND --help" in text
    assert "engagement stack up" in text
