"""Checks on one channel's wording: placeholders it may use, links it must give, SMS fit.

A ``TemplateChecker`` collects every problem rather than stopping at the first, so the
start-up message lists everything to fix in the messages file at once.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any, Final

from schemas.nudges import Channel
from schemas.rules import Kind
from sinks.messages.templates import (
    INSTITUTION_FIELDS,
    METRIC_PREFIX,
    NOT_KNOWN,
    SMS_MAX_CHARS,
    Institution,
    Template,
)

# The keys each kind of rule puts in explanation.metrics (the finders in
# agents/model/findings.py); tests/unit/test_messages.py checks them against real nudges.
KIND_METRICS: Final[Mapping[Kind, frozenset[str]]] = {
    Kind.INACTIVITY: frozenset({"days_without_activity"}),
    Kind.ATTENDANCE_RATE: frozenset({"sessions_attended", "sessions_expected", "attendance_rate"}),
    Kind.LOW_SCORE: frozenset({"days_at_or_below_threshold"}),
    Kind.SCORE_DROP: frozenset({"baseline_score", "score_drop"}),
    Kind.NO_CONTACT: frozenset({"days_without_contact"}),
    Kind.ESCALATION: frozenset({"days_since_prompt"}),
}
PLACEHOLDERS: Final = frozenset(
    {
        "summary", "institution", "help_url", "data_url", "preferences_url", "tutor_phrase",
        "window_start", "window_end", "score", "band",
    }
)  # fmt: skip
# Every body must say where to get help, where to see the data, and how to stop the messages.
REQUIRED_LINKS: Final = ("help_url", "data_url", "preferences_url")
# The keys of each channel's table; the app calls its subject a title.
CHANNEL_KEYS: Final[Mapping[Channel, tuple[str, ...]]] = {
    Channel.EMAIL: ("subject", "body"),
    Channel.SMS: ("body",),
    Channel.APP: ("title", "body"),
}
_SUBJECT_KEY = {Channel.EMAIL: "subject", Channel.APP: "title"}
# The longest text each placeholder can take in an SMS, for the length check at load.
_WIDEST = {"window_start": "30 Sep", "window_end": "30 Sep", "score": NOT_KNOWN, "band": NOT_KNOWN}
_WIDEST_METRIC = "999.99"
# GSM 03.38 basic alphabet and extension table: anything else sends the SMS as UCS-2, 70
# characters a segment, so 320 characters would become five messages.
_GSM = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


class TemplateChecker:
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
