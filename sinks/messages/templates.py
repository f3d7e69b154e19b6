"""Student-facing message templates as the notifier uses them: pure rendering of one nudge.

Rendering is pure: the same nudge always gives the same words, so a redelivery after a crash
sends exactly what the first attempt would have sent. Reading and checking the file that holds
the wording is :mod:`sinks.messages.loader`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from schemas.interventions import RenderedMessage
from schemas.nudges import Channel, Nudge, Tier

# Two SMS segments, as the product promises; a longer text costs more and may arrive in pieces.
SMS_MAX_CHARS: Final = 320
NOT_KNOWN: Final = "not yet known"
INSTITUTION_FIELDS: Final = ("name", "help_url", "data_url", "preferences_url", "tutor_phrase")
METRIC_PREFIX: Final = "metric_"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# A larger number is not a plausible count or rate; it is treated like a missing metric.
_LARGEST = 10**12
_EXAMPLE = re.compile(r"\bexample\b", re.IGNORECASE)


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
