"""The messages file: read the TOML, check every table, build the templates (schema v1).

The wording lives in a TOML file (the shipped ``sinks/messages.default.toml`` or the
deployment's copy) that is validated at start-up, so a template that cannot render, or that
forgets to say how to stop these messages, never reaches a student.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from schemas.errors import ConfigError
from schemas.nudges import Channel, Tier
from schemas.rules import Rule, RuleSet
from sinks.messages.checks import CHANNEL_KEYS, KIND_METRICS, TemplateChecker
from sinks.messages.templates import INSTITUTION_FIELDS, Institution, MessageTemplates, Template

DEFAULT_MESSAGES: Final = Path(__file__).parents[1] / "messages.default.toml"
SCHEMA_VERSION: Final = 1


class MessagesFileError(ConfigError):
    """The messages file cannot be used; the message names the file, the table and the fix."""


def load_messages(path: Path | None, rules: RuleSet) -> MessageTemplates:
    """Read and validate a messages file against ``rules`` (the shipped file when None)."""
    source = path or DEFAULT_MESSAGES
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"cannot read messages file {source}: {exc.strerror}"
        raise MessagesFileError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"messages file {source} is not valid TOML: {exc}"
        raise MessagesFileError(msg) from None
    if data.get("schema_version") != SCHEMA_VERSION:
        msg = (
            f"messages file {source}: schema_version is {data.get('schema_version')!r}; this "
            f"worker reads version {SCHEMA_VERSION}: set schema_version = {SCHEMA_VERSION} and "
            f"compare the file with {DEFAULT_MESSAGES.name}"
        )
        raise MessagesFileError(msg)
    problems: list[str] = []
    for key in sorted(set(data) - {"schema_version", "institution", "channels", "rules"}):
        problems.append(
            f"[{key}]: unknown table or key; the file has schema_version, [institution], "
            "[channels.*] and [rules.*.*]: remove it"
        )
    institution = _institution(data.get("institution"), problems)
    check = TemplateChecker(problems, institution)
    defaults = _defaults(data.get("channels"), check)
    overrides = _overrides(data.get("rules", {}), rules, defaults, check)
    if problems or institution is None or len(defaults) != len(Channel):
        listed = "\n".join(f"  - {problem}" for problem in problems)
        msg = f"messages file {source} is not valid:\n{listed}"
        raise MessagesFileError(msg)
    return MessageTemplates(source, institution, defaults, overrides)


def _institution(table: object, problems: list[str]) -> Institution | None:
    if not isinstance(table, dict):
        problems.append(
            f"[institution]: missing; add it with {', '.join(INSTITUTION_FIELDS)} "
            f"(see {DEFAULT_MESSAGES.name})"
        )
        return None
    found = len(problems)
    for key in sorted(set(table) - set(INSTITUTION_FIELDS)):
        problems.append(f"[institution] {key}: unknown key; it has {', '.join(INSTITUTION_FIELDS)}")
    for key in INSTITUTION_FIELDS:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"[institution] {key}: missing or empty; give it a text value")
        elif "{" in value or "}" in value:
            problems.append(f"[institution] {key}: must not contain braces; remove them")
        elif key.endswith("_url") and not re.fullmatch(r"https://\S+", value):
            problems.append(
                f"[institution] {key}: {value!r} is not an https:// address without spaces; "
                "students are sent this link"
            )
    if len(problems) > found:
        return None
    return Institution(**{key: table[key].strip() for key in INSTITUTION_FIELDS})


def _defaults(table: object, check: TemplateChecker) -> dict[Channel, Template]:
    if not isinstance(table, dict):
        table = {}
    known = ", ".join(c.value for c in Channel)
    for name in sorted(set(table) - {c.value for c in Channel}):
        check.problems.append(f"[channels.{name}]: no such channel; the channels are {known}")
    defaults: dict[Channel, Template] = {}
    for channel in Channel:
        where = f"[channels.{channel.value}]"
        entry = table.get(channel.value)
        if not isinstance(entry, dict):
            keys = " and ".join(CHANNEL_KEYS[channel])
            check.problems.append(f"{where}: missing; every channel needs its {keys}")
            continue
        template = check.template(where, channel, entry, metrics=None, required=True)
        if template is not None:
            defaults[channel] = template
    return defaults


def _overrides(
    table: object, rules: RuleSet, defaults: Mapping[Channel, Template], check: TemplateChecker
) -> dict[tuple[str, Channel], Template]:
    if not isinstance(table, dict):
        check.problems.append("[rules]: must be tables [rules.<rule id>.<channel>]")
        return {}
    by_id = {rule.id: rule for rule in rules.rules}
    prompts = ", ".join(rule.id for rule in rules.rules if rule.tier is Tier.PROMPT)
    overrides: dict[tuple[str, Channel], Template] = {}
    for rule_id, channels in table.items():
        rule = by_id.get(rule_id)
        if rule is None or rule.tier is not Tier.PROMPT:
            what = "no rule with that id" if rule is None else f"{rule_id} is a {rule.tier.value}"
            check.problems.append(
                f"[rules.{rule_id}]: {what} in the rules set, and only prompt rules message a "
                f"student; use one of {prompts or '(none)'}, or remove the table"
            )
            continue
        if not isinstance(channels, dict):
            check.problems.append(f"[rules.{rule_id}]: must hold [rules.{rule_id}.<channel>]")
            continue
        overrides.update(_rule_overrides(rule, channels, defaults, check))
    return overrides


def _rule_overrides(
    rule: Rule,
    channels: dict[str, Any],
    defaults: Mapping[Channel, Template],
    check: TemplateChecker,
) -> dict[tuple[str, Channel], Template]:
    found: dict[tuple[str, Channel], Template] = {}
    for name, entry in channels.items():
        where = f"[rules.{rule.id}.{name}]"
        try:
            channel = Channel(name)
        except ValueError:
            known = ", ".join(c.value for c in Channel)
            check.problems.append(f"{where}: no such channel; the channels are {known}")
            continue
        if not isinstance(entry, dict) or not entry:
            keys = " and/or ".join(CHANNEL_KEYS[channel])
            check.problems.append(f"{where}: give the {keys} to use instead of the default")
            continue
        template = check.template(
            where, channel, entry, metrics=KIND_METRICS[rule.kind], base=defaults.get(channel)
        )
        if template is not None:
            found[(rule.id, channel)] = template
    return found
