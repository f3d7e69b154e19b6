"""The notifier's configuration, checked as a whole before it starts.

Every problem is collected and reported together, each naming the environment variable or
file to fix: a channel routed to a transport that is not set up, a webhook without a usable
secret (one, or two while rotating; each long enough), SMTP without a host or sender, a
prompt rule none of whose channels is configured, and errors in the message templates or the
teams file.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from schemas.errors import ConfigError
from schemas.nudges import Channel, Route, Tier
from schemas.quiet import QuietHours
from schemas.review import TeamsConfig, load_teams
from schemas.rules import RuleSet
from schemas.settings import ENV, Settings
from sinks.channels.webhook import secret_key
from sinks.messages import MessageTemplates, load_messages

MIN_SECRET = 16
MAX_SECRETS = 2  # the current one, and the one being replaced during a rotation


@dataclass(frozen=True)
class NotifierConfig:
    """Validated parts the notifier is built from."""

    routes: dict[Channel, str]
    messages: MessageTemplates
    teams: TeamsConfig
    quiet: QuietHours | None


def _recipient_ok(template: str) -> bool:
    if "{student_id}" not in template:
        return False
    try:
        address = template.format(student_id="S0000001")
    except (KeyError, IndexError, ValueError):
        return False
    return "@" in address and not any(c.isspace() for c in address)


def staff_routes(rules: RuleSet) -> set[Route]:
    """The routes to staff that the rules in use can take (each needs a team)."""
    return {r.route for r in rules.rules if r.tier is not Tier.PROMPT and r.mode != "off"}


def _secret_problems(value: str) -> list[str]:
    """What is wrong with ENGAGEMENT_WEBHOOK_SECRET: one secret, or two (new first, then old)
    separated by a space while the notification service moves to the new one."""
    name = ENV["webhook_secret"]
    parts = value.split()
    if not parts:
        return [
            f"{name} must be set to the shared secret the notification service verifies "
            "the webhook-signature with; e.g. `openssl rand -hex 32`, or a Standard Webhooks "
            "secret whsec_<base64>"
        ]
    if len(parts) > MAX_SECRETS:
        return [
            f"{name} holds {len(parts)} secrets: give one, or two separated by a space while "
            "rotating (the notifier signs with each)"
        ]
    problems: list[str] = []
    for n, part in enumerate(parts, start=1):
        which = f"secret {n} of {len(parts)} in {name}" if len(parts) > 1 else name
        try:
            key = secret_key(part)
        except ValueError as exc:
            problems.append(f"{which}: {exc}")
            continue
        if len(key) < MIN_SECRET:
            problems.append(
                f"{which} is too short: at least {MIN_SECRET} characters (or {MIN_SECRET} "
                "bytes after whsec_); e.g. `openssl rand -hex 32`"
            )
    return problems


def _transport_problems(settings: Settings, used: set[str]) -> list[str]:
    problems: list[str] = []
    if "webhook" in used:
        if not settings.webhook_url:
            problems.append(
                f"{ENV['webhook_url']} is not set, but {ENV['channels']} sends a channel by "
                "webhook: set the notification service's URL, or route the channel elsewhere"
            )
        else:
            url = urlparse(settings.webhook_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                problems.append(
                    f"{ENV['webhook_url']} must be an http:// or https:// URL with a host"
                )
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        problems.extend(_secret_problems(secret))
    if "smtp" in used:
        if not settings.smtp_host:
            problems.append(f"{ENV['smtp_host']} is not set, but a channel is sent by SMTP")
        if not settings.smtp_sender or "@" not in settings.smtp_sender:
            problems.append(
                f"{ENV['smtp_sender']} must be the From address of the e-mails, e.g. "
                "student-support@example.ac.uk"
            )
        if not _recipient_ok(settings.smtp_recipient):
            problems.append(
                f"{ENV['smtp_recipient']} must be an address with {{student_id}} and no other "
                "placeholder, e.g. {student_id}@student.example.ac.uk"
            )
        if settings.smtp_username and not settings.smtp_password:
            problems.append(
                f"{ENV['smtp_username']} is set without {ENV['smtp_password']}: set both or neither"
            )
    return problems


def load_notifier_config(settings: Settings, rules: RuleSet) -> NotifierConfig:
    """Validate and load everything the notifier needs, or stop with every problem listed."""
    routes = {Channel(name): transport for name, transport in settings.channel_routes.items()}
    problems = _transport_problems(settings, set(routes.values()))
    for rule in rules.rules:
        if rule.tier is Tier.PROMPT and rule.mode != "off":
            if not any(Channel(c) in routes for c in rule.channels):
                problems.append(
                    f"rule {rule.id!r} sends on {', '.join(str(c) for c in rule.channels)}, "
                    f"none of which {ENV['channels']} configures"
                )
    messages: MessageTemplates | None = None
    teams: TeamsConfig | None = None
    quiet: QuietHours | None = None
    try:
        messages = load_messages(settings.messages_file, rules)
    except ConfigError as exc:
        problems.append(str(exc))
    try:
        teams = load_teams(settings.teams_file, routes=staff_routes(rules))
    except ConfigError as exc:
        problems.append(str(exc))
    try:
        quiet = QuietHours.parse(settings.quiet_hours, settings.timezone)
    except ValueError as exc:
        problems.append(f"{ENV['quiet_hours']}: {exc}")
    if problems or messages is None or teams is None:
        raise ConfigError("The notifier cannot start:\n" + "\n".join(f"  - {p}" for p in problems))
    return NotifierConfig(routes=routes, messages=messages, teams=teams, quiet=quiet)
