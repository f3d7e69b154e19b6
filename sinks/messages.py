"""Student-facing message templates: one wording per channel, optional per-rule overrides (v1).

The notifier renders a prompt nudge for the one channel it sends on. The wording lives in a
TOML file (the shipped ``messages.default.toml`` or the deployment's copy) that is validated at
start-up, so a template that cannot render, or that forgets to say how to stop these messages,
never reaches a student. Rendering is pure: the same nudge always gives the same words, so a
redelivery after a crash sends exactly what the first attempt would have sent.
"""

from __future__ import annotations

import math
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

from schemas.errors import ConfigError
from schemas.interventions import RenderedMessage
from schemas.nudges import Channel, Nudge, Tier
from schemas.rules import Kind, Rule, RuleSet

DEFAULT_MESSAGES: Final = Path(__file__).with_name("messages.default.toml")
SCHEMA_VERSION: Final = 1
# Two SMS segments, as the product promises; a longer text costs more and may arrive in pieces.
SMS_MAX_CHARS: Final = 320
NOT_KNOWN: Final = "not yet known"

# The keys each kind of rule puts in explanation.metrics (the finders in agents/model/rules.py);
# tests/unit/test_messages.py checks them against real nudges.
KIND_METRICS: Final[Mapping[Kind, frozenset[str]]] = {
    Kind.INACTIVITY: frozenset({"days_without_activity"}),
    Kind.ATTENDANCE_RATE: frozenset({"sessions_attended", "sessions_expected", "attendance_rate"}),
    Kind.LOW_SCORE: frozenset({"days_at_or_below_threshold"}),
    Kind.SCORE_DROP: frozenset({"baseline_score", "score_drop"}),
    Kind.NO_CONTACT: frozenset({"days_without_contact"}),
    Kind.ESCALATION: frozenset({"days_since_prompt"}),
}

INSTITUTION_FIELDS: Final = ("name", "help_url", "data_url", "preferences_url", "tutor_phrase")
PLACEHOLDERS: Final = frozenset(
    {
        "summary", "institution", "help_url", "data_url", "preferences_url", "tutor_phrase",
        "window_start", "window_end", "score", "band",
    }
)  # fmt: skip
METRIC_PREFIX: Final = "metric_"
# Every body must say where to get help, where to see the data, and how to stop the messages.
REQUIRED_LINKS: Final = ("help_url", "data_url", "preferences_url")
# The keys of each channel's table; the app calls its subject a title.
CHANNEL_KEYS: Final[Mapping[Channel, tuple[str, ...]]] = {
    Channel.EMAIL: ("subject", "body"),
    Channel.SMS: ("body",),
    Channel.APP: ("title", "body"),
}
_SUBJECT_KEY = {Channel.EMAIL: "subject", Channel.APP: "title"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# The longest text each placeholder can take in an SMS, for the length check at load.
_WIDEST = {"window_start": "30 Sep", "window_end": "30 Sep", "score": NOT_KNOWN, "band": NOT_KNOWN}
_WIDEST_METRIC = "999.99"
# A larger number is not a plausible count or rate; it is treated like a missing metric.
_LARGEST = 10**12
# GSM 03.38 basic alphabet and extension table: anything else sends the SMS as UCS-2, 70
# characters a segment, so 320 characters would become five messages.
_GSM = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
_EXAMPLE = re.compile(r"\bexample\b", re.IGNORECASE)


class MessagesFileError(ConfigError):
    """The messages file cannot be used; the message names the file, the table and the fix."""


def format_day(day: date) -> str:
    """A date as a message shows it, e.g. "3 Nov" (fixed English names: no locale)."""
    return f"{day.day} {_MONTHS[day.month - 1]}"


def format_number(value: float | None) -> str | None:
    """A number as a message shows it (at most two decimals); None when not finite or absurd."""
    if value is None or abs(value) >= _LARGEST:  # before isfinite: a huge int overflows it
        return None
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return None
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


@dataclass(frozen=True)
class Institution:
    """Who sends the messages and where a student gets help, sees their data, or opts out."""

    name: str
    help_url: str
    data_url: str
    preferences_url: str
    tutor_phrase: str


@dataclass(frozen=True)
class Template:
    """One channel's wording: subject (title for app; None for SMS), body, metrics it needs."""

    subject: str | None
    body: str
    metrics: frozenset[str] = frozenset()

    def render(self, channel: Channel, values: Mapping[str, str]) -> RenderedMessage:
        """Fill in the placeholders; ``values`` must hold every one the template uses."""
        subject = None if self.subject is None else self.subject.format_map(values).strip()
        return RenderedMessage(
            channel=channel, subject=subject, body=self.body.format_map(values).strip()
        )


@dataclass(frozen=True)
class Rendering:
    """A rendered message, and why the channel default replaced the rule's override, if it did.

    ``fallback`` is a sentence for the notifier's log; None when the override (or the default,
    for a rule without one) rendered as written.
    """

    message: RenderedMessage
    fallback: str | None = None


@dataclass(frozen=True)
class MessageTemplates:
    """A validated messages file: the wording of every channel, and per-rule overrides."""

    source: Path
    institution: Institution
    defaults: Mapping[Channel, Template]
    overrides: Mapping[tuple[str, Channel], Template]

    @property
    def example_fields(self) -> tuple[str, ...]:
        """Institution fields still at an example value (worth a warning at start-up)."""
        return tuple(
            name for name in INSTITUTION_FIELDS if _EXAMPLE.search(getattr(self.institution, name))
        )

    def render(self, nudge: Nudge, channel: Channel) -> RenderedMessage:
        """The message for ``nudge`` on ``channel``; see :meth:`render_checked` for the flag."""
        return self.render_checked(nudge, channel).message

    def render_checked(self, nudge: Nudge, channel: Channel) -> Rendering:
        """The message for a prompt ``nudge`` on ``channel``, and any fallback to log.

        An override that needs a metric the nudge lacks (or that is not a finite number), or an
        SMS override that comes out longer than two segments, gives way to the channel default.
        """
        if nudge.tier is not Tier.PROMPT:
            msg = f"nudge {nudge.nudge_id} is a {nudge.tier.value}: only prompts reach a student"
            raise ValueError(msg)
        values = self._values(nudge)
        default = self.defaults[channel]
        override = self.overrides.get((nudge.rule_id, channel))
        if override is None:
            return Rendering(default.render(channel, values))
        table = f"[rules.{nudge.rule_id}.{channel.value}]"
        missing = sorted(name for name in override.metrics if METRIC_PREFIX + name not in values)
        if missing:
            why = (
                f"{table} needs metric(s) {', '.join(missing)}, which nudge {nudge.nudge_id} "
                f"does not carry as a usable number; sent the default {channel.value} wording"
            )
            return Rendering(default.render(channel, values), why)
        message = override.render(channel, values)
        if channel is Channel.SMS and len(message.body) > SMS_MAX_CHARS:
            why = (
                f"{table} rendered to {len(message.body)} characters for nudge {nudge.nudge_id} "
                f"(limit {SMS_MAX_CHARS}); sent the default sms wording"
            )
            return Rendering(default.render(channel, values), why)
        return Rendering(message)

    def _values(self, nudge: Nudge) -> dict[str, str]:
        explanation = nudge.explanation
        place = self.institution
        values = {
            "summary": explanation.summary,
            "institution": place.name,
            "help_url": place.help_url,
            "data_url": place.data_url,
            "preferences_url": place.preferences_url,
            "tutor_phrase": place.tutor_phrase,
            "window_start": format_day(explanation.window_start),
            "window_end": format_day(explanation.window_end),
            "score": format_number(explanation.score) or NOT_KNOWN,
            "band": explanation.band or NOT_KNOWN,
        }
        for name, number in explanation.metrics.items():
            text = format_number(number)
            if text is not None:
                values[METRIC_PREFIX + name] = text
        return values


# -- loading -----------------------------------------------------------------------------------


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
    check = _Checker(problems, institution)
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


def _defaults(table: object, check: _Checker) -> dict[Channel, Template]:
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
    table: object, rules: RuleSet, defaults: Mapping[Channel, Template], check: _Checker
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
    rule: Rule, channels: dict[str, Any], defaults: Mapping[Channel, Template], check: _Checker
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


class _Checker:
    """Validates templates, collecting every problem rather than stopping at the first."""

    def __init__(self, problems: list[str], institution: Institution | None) -> None:
        self.problems = problems
        self.institution = institution

    def template(
        self,
        where: str,
        channel: Channel,
        entry: dict[str, Any],
        *,
        metrics: frozenset[str] | None,
        required: bool = False,
        base: Template | None = None,
    ) -> Template | None:
        """Check one channel table; ``metrics`` None: a default, which may use no metric."""
        keys = CHANNEL_KEYS[channel]
        start = len(self.problems)
        for key in sorted(set(entry) - set(keys)):
            self.problems.append(
                f"{where} {key}: unknown key; a {channel.value} table has {' and '.join(keys)}"
            )
        texts: dict[str, str] = {}
        used: set[str] = set()
        for key in keys:
            value = entry.get(key)
            if value is None and not required:
                continue
            if not isinstance(value, str) or not value.strip():
                self.problems.append(f"{where} {key}: missing or empty; give it a text value")
                continue
            if key != "body" and "\n" in value.strip():
                self.problems.append(f"{where} {key}: must be one line")
            used |= self._placeholders(f"{where} {key}", channel, value, metrics)
            texts[key] = value
        if "body" in texts:
            self._links(where, texts["body"])
        if len(self.problems) > start or (base is None and not required):
            return None  # without its default, an override is reported with the default
        subject_key = _SUBJECT_KEY.get(channel)
        subject = None
        if subject_key is not None:
            subject = texts.get(subject_key, base.subject if base else None)
        template = Template(
            subject,
            texts.get("body", base.body if base else ""),
            frozenset(name.removeprefix(METRIC_PREFIX) for name in used),
        )
        if channel is Channel.SMS:
            self._sms(where, template)
        return None if len(self.problems) > start else template

    def _placeholders(
        self, where: str, channel: Channel, text: str, metrics: frozenset[str] | None
    ) -> set[str]:
        """The metric placeholders ``text`` uses; records every placeholder it cannot fill."""
        try:
            fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(text)]
        except ValueError as exc:
            self.problems.append(
                f"{where}: not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
            )
            return set()
        used: set[str] = set()
        for name, spec, conversion in fields:
            if name is None:
                continue
            shown = "{" + name + "}"
            if spec or conversion:
                self.problems.append(
                    f"{where}: {shown[:-1]}...}} has a format or conversion; values arrive "
                    f"formatted: write {shown}"
                )
            elif name.startswith(METRIC_PREFIX) and metrics is not None:
                metric = name.removeprefix(METRIC_PREFIX)
                if metric in metrics:
                    used.add(name)
                else:
                    offered = ", ".join("{" + METRIC_PREFIX + m + "}" for m in sorted(metrics))
                    self.problems.append(
                        f"{where}: {shown} is not a metric this rule produces; it produces "
                        f"{offered}"
                    )
            elif name.startswith(METRIC_PREFIX):
                self.problems.append(
                    f"{where}: {shown}: a channel default may not use metrics (it is the "
                    "fallback when a nudge lacks one); put it in a [rules.<id>.<channel>] override"
                )
            elif name == "summary" and channel is Channel.SMS:
                self.problems.append(
                    f"{where}: {{summary}} does not fit in an SMS; write a short line with "
                    "{metric_...} placeholders in a per-rule override"
                )
            elif name not in PLACEHOLDERS:
                offered = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
                self.problems.append(
                    f"{where}: unknown placeholder {shown}; use {offered} or {{metric_<name>}}"
                )
        return used

    def _links(self, where: str, body: str) -> None:
        for link in REQUIRED_LINKS:
            if "{" + link + "}" not in body:
                why = {
                    "help_url": "where to get help",
                    "data_url": "where to see their data and the reason for the message",
                    "preferences_url": "how to stop these messages",
                }[link]
                self.problems.append(
                    f"{where} body: missing {{{link}}}; every message tells the student {why}"
                )

    def _sms(self, where: str, template: Template) -> None:
        """An SMS must fit two segments with the longest values and stay in the GSM alphabet."""
        if self.institution is None:
            return  # reported already; the length depends on its values
        values = {key: getattr(self.institution, key) for key in INSTITUTION_FIELDS}
        values = {**values, "institution": self.institution.name, **_WIDEST}
        values |= {METRIC_PREFIX + name: _WIDEST_METRIC for name in template.metrics}
        text = template.body.format_map(values).strip()
        if len(text) > SMS_MAX_CHARS:
            self.problems.append(
                f"{where} body: can reach {len(text)} characters with the institution's links "
                f"and the longest values; the limit is {SMS_MAX_CHARS} (two SMS): shorten it"
            )
        odd = sorted(set(text) - _GSM)
        if odd:
            self.problems.append(
                f"{where} body: {', '.join(repr(c) for c in odd)} would send the SMS as Unicode "
                "(70 characters a segment); use plain quotes, hyphens and letters"
            )
