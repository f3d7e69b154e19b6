"""The one settings object, read once at start-up. Every environment variable is named here."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.api_settings import API_ENV, ApiSettings
from schemas.credentials import CREDENTIALS_ENV, Credentials
from schemas.errors import ConfigError
from schemas.ingest_settings import INGEST_ENV, IngestSettings
from schemas.report_settings import REPORT_ENV, ReportSettings
from schemas.retention_settings import RETENTION_ENV, RetentionSettings
from schemas.topics import TopicNames

# The environment variables the product reads, and nothing else.
ENV = {
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "redis_url": "REDIS_URL",
    **CREDENTIALS_ENV,  # logins to Kafka and Redis: schemas/credentials.py
    **INGEST_ENV,  # the HTTP ingest service and the identity policy: schemas/ingest_settings.py
    **API_ENV,  # the people-facing API, pages and sign-in: schemas/api_settings.py
    **REPORT_ENV,  # the compliance reports (UKVI, SLC census points): schemas/report_settings.py
    **RETENTION_ENV,  # retention periods per class, erasure grace: schemas/retention_settings.py
    "state_dir": "ENGAGEMENT_STATE_DIR",
    "topic_prefix": "ENGAGEMENT_TOPIC_PREFIX",
    "key_prefix": "ENGAGEMENT_KEY_PREFIX",
    "pseudonym_key": "ENGAGEMENT_PSEUDONYM_KEY",
    "timezone": "ENGAGEMENT_TIMEZONE",
    "partitions": "ENGAGEMENT_PARTITIONS",
    "rules_file": "ENGAGEMENT_RULES_FILE",
    "webhook_url": "ENGAGEMENT_WEBHOOK_URL",
    "webhook_timeout_s": "ENGAGEMENT_WEBHOOK_TIMEOUT_S",
    "webhook_attempts": "ENGAGEMENT_WEBHOOK_ATTEMPTS",
    "webhook_secret": "ENGAGEMENT_WEBHOOK_SECRET",
    "channels": "ENGAGEMENT_CHANNELS",
    "smtp_host": "ENGAGEMENT_SMTP_HOST",
    "smtp_port": "ENGAGEMENT_SMTP_PORT",
    "smtp_starttls": "ENGAGEMENT_SMTP_STARTTLS",
    "smtp_username": "ENGAGEMENT_SMTP_USERNAME",
    "smtp_password": "ENGAGEMENT_SMTP_PASSWORD",
    "smtp_sender": "ENGAGEMENT_SMTP_SENDER",
    "smtp_recipient": "ENGAGEMENT_SMTP_RECIPIENT",
    "breaker_failures": "ENGAGEMENT_BREAKER_FAILURES",
    "breaker_reset_s": "ENGAGEMENT_BREAKER_RESET_S",
    "quiet_hours": "ENGAGEMENT_QUIET_HOURS",
    "messages_file": "ENGAGEMENT_MESSAGES_FILE",
    "teams_file": "ENGAGEMENT_TEAMS_FILE",
    "notifier_tick_s": "ENGAGEMENT_NOTIFIER_TICK_S",
    "lag_interval_s": "ENGAGEMENT_LAG_INTERVAL_S",
    "stuck_after_s": "ENGAGEMENT_STUCK_AFTER_S",
    "offset_regression": "ENGAGEMENT_OFFSET_REGRESSION",
    "prompt_cooldown_hours": "ENGAGEMENT_PROMPT_COOLDOWN_HOURS",
    "notifier_concurrency": "ENGAGEMENT_NOTIFIER_CONCURRENCY",
    "web_port": "ENGAGEMENT_WEB_PORT",
    "web_bind": "ENGAGEMENT_WEB_BIND",
    "max_message_bytes": "ENGAGEMENT_MAX_MESSAGE_BYTES",
    "max_event_bytes": "ENGAGEMENT_MAX_EVENT_BYTES",
    "dedup_ttl_days": "ENGAGEMENT_DEDUP_TTL_DAYS",
    "state_ttl_days": "ENGAGEMENT_STATE_TTL_DAYS",
    "batch_max": "ENGAGEMENT_BATCH_MAX",
    "batch_within_s": "ENGAGEMENT_BATCH_WITHIN_S",
    "sweep_interval_s": "ENGAGEMENT_SWEEP_INTERVAL_S",
    "redis_retry_s": "ENGAGEMENT_REDIS_RETRY_S",
    "late_grace_hours": "ENGAGEMENT_LATE_GRACE_HOURS",
    "max_clock_skew_s": "ENGAGEMENT_MAX_CLOCK_SKEW_S",
    "term_start": "ENGAGEMENT_TERM_START",
    "feed_idle_s": "ENGAGEMENT_FEED_IDLE_S",
    "fetch_max_wait_ms": "ENGAGEMENT_FETCH_MAX_WAIT_MS",
    "log_level": "ENGAGEMENT_LOG_LEVEL",
    "log_format": "ENGAGEMENT_LOG_FORMAT",
    "metrics": "ENGAGEMENT_METRICS",
}


def _env(field: str) -> AliasChoices:
    return AliasChoices(ENV[field])


class Settings(
    BaseSettings, Credentials, IngestSettings, ApiSettings, ReportSettings, RetentionSettings
):
    """Typed, frozen configuration. Build it with :func:`load_settings`, never at import time."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=_env("kafka_bootstrap_servers"),
        description="host:port[,host:port]; unset means the embedded local broker.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=_env("redis_url"),
        description="redis://host:port/db; unset means the embedded local Redis.",
    )
    state_dir: Path = Field(default=Path(".engagement"), validation_alias=_env("state_dir"))
    topic_prefix: str = Field(
        default="", validation_alias=_env("topic_prefix"), pattern=r"^[A-Za-z0-9._-]*$"
    )
    key_prefix: str = Field(
        default="es", validation_alias=_env("key_prefix"), pattern=r"^[A-Za-z0-9._-]+$"
    )
    pseudonym_key: SecretStr = Field(validation_alias=_env("pseudonym_key"))
    timezone: str = Field(default="Europe/London", validation_alias=_env("timezone"))
    partitions: int = Field(default=4, ge=1, le=1024, validation_alias=_env("partitions"))
    rules_file: Path | None = Field(default=None, validation_alias=_env("rules_file"))
    webhook_url: str | None = Field(default=None, validation_alias=_env("webhook_url"))
    webhook_timeout_s: float = Field(
        default=5.0, gt=0, le=120, validation_alias=_env("webhook_timeout_s")
    )
    webhook_attempts: int = Field(default=4, ge=1, le=20, validation_alias=_env("webhook_attempts"))
    webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_env("webhook_secret"),
        description="Shared secret of the webhook-signature header (Standard Webhooks: "
        "HMAC-SHA256 of id, timestamp and body); raw text or whsec_<base64>. While rotating, "
        "two separated by a space: the notifier signs with both.",
    )
    channels: str = Field(
        default="email=webhook,sms=webhook,app=webhook",
        validation_alias=_env("channels"),
        description="Which transport carries each channel: webhook, smtp or kafka.",
    )
    smtp_host: str | None = Field(default=None, validation_alias=_env("smtp_host"))
    smtp_port: int = Field(default=587, ge=1, le=65535, validation_alias=_env("smtp_port"))
    smtp_starttls: bool = Field(default=True, validation_alias=_env("smtp_starttls"))
    smtp_username: str | None = Field(default=None, validation_alias=_env("smtp_username"))
    smtp_password: SecretStr | None = Field(default=None, validation_alias=_env("smtp_password"))
    smtp_sender: str | None = Field(default=None, validation_alias=_env("smtp_sender"))
    smtp_recipient: str = Field(
        default="{student_id}@student.example.ac.uk",
        validation_alias=_env("smtp_recipient"),
        description="A student's e-mail address, from their student id.",
    )
    breaker_failures: int = Field(
        default=5, ge=1, le=1000, validation_alias=_env("breaker_failures")
    )
    breaker_reset_s: float = Field(
        default=30.0, gt=0, le=3600, validation_alias=_env("breaker_reset_s")
    )
    quiet_hours: str = Field(
        default="21:00-08:00",
        validation_alias=_env("quiet_hours"),
        description="Institution-time hours in which prompts wait (HH:MM[:SS]-HH:MM[:SS], "
        "or 'off').",
    )
    messages_file: Path | None = Field(default=None, validation_alias=_env("messages_file"))
    teams_file: Path | None = Field(default=None, validation_alias=_env("teams_file"))
    prompt_cooldown_hours: float = Field(
        default=72,
        ge=0,
        le=24 * 60,
        validation_alias=_env("prompt_cooldown_hours"),
        description="At most one automated prompt per student in this many hours (0: off).",
    )
    lag_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        validation_alias=_env("lag_interval_s"),
        description="Seconds between measurements of consumer lag and committed offsets.",
    )
    stuck_after_s: float = Field(
        default=120.0,
        gt=0,
        le=86_400,
        validation_alias=_env("stuck_after_s"),
        description="A partition with lag whose committed offset has not moved for this long "
        "makes /readyz answer not ready.",
    )
    offset_regression: Literal["earliest", "latest"] = Field(
        default="earliest",
        validation_alias=_env("offset_regression"),
        description="Where a worker resumes a signals partition whose log is behind the offsets "
        "stored with the state (the broker lost its log, or the topic was created again): "
        "`earliest`, the start of the new log; `latest`, its end as found (a log restored "
        "from a backup of what was already applied).",
    )
    notifier_concurrency: int = Field(
        default=16,
        ge=1,
        le=256,
        validation_alias=_env("notifier_concurrency"),
        description="Nudges of one batch decided and delivered at the same time.",
    )
    notifier_tick_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        validation_alias=_env("notifier_tick_s"),
        description="Seconds between the notifier's checks for due prompts and escalations.",
    )
    web_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        validation_alias=_env("web_port"),
        description="Port of /healthz, /readyz and /metrics; unset: each role's own default "
        "(WEB_PORTS), so a worker and the notifier on one host do not collide.",
    )
    web_bind: str = Field(
        default="127.0.0.1",
        validation_alias=_env("web_bind"),
        description="Address the web server of /healthz, /readyz, /metrics and /status "
        "listens on: loopback unless set (0.0.0.0 in a container, behind its network).",
    )
    max_message_bytes: int = Field(
        default=1_048_576, ge=1024, validation_alias=_env("max_message_bytes")
    )
    max_event_bytes: int = Field(default=16_384, ge=256, validation_alias=_env("max_event_bytes"))
    dedup_ttl_days: int = Field(default=14, ge=1, validation_alias=_env("dedup_ttl_days"))
    state_ttl_days: int = Field(default=60, ge=1, validation_alias=_env("state_ttl_days"))
    batch_max: int = Field(default=2000, ge=1, le=100_000, validation_alias=_env("batch_max"))
    batch_within_s: float = Field(
        default=0.05, gt=0, le=10, validation_alias=_env("batch_within_s")
    )
    sweep_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        validation_alias=_env("sweep_interval_s"),
        description="Wall-clock seconds between checks for newly closed days when idle.",
    )
    feed_idle_s: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        validation_alias=_env("feed_idle_s"),
        description="Wall-clock seconds without records after which a feed stops holding the "
        "watermark back.",
    )
    max_clock_skew_s: int = Field(
        default=300,
        ge=0,
        le=86_400,
        validation_alias=_env("max_clock_skew_s"),
        description="How far in the future an event may be dated before it is refused.",
    )
    term_start: date | None = Field(
        default=None,
        validation_alias=_env("term_start"),
        description="First day of the earliest term counted (YYYY-MM-DD, institution time); "
        "events dated before it, less the late grace period, are refused implausible_time. "
        "Unset: anything from 2000-01-01 on.",
    )
    late_grace_hours: float = Field(
        default=48,
        ge=0,
        le=24 * 14,
        validation_alias=_env("late_grace_hours"),
        description="How late an event may arrive and still count; decisions wait for it.",
    )
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=5000,
        validation_alias=_env("fetch_max_wait_ms"),
        description="Longest a consumer fetch waits for data (Faust hard-codes 1500).",
    )
    redis_retry_s: float = Field(default=1.0, gt=0, le=60, validation_alias=_env("redis_retry_s"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=_env("log_level")
    )
    metrics: Literal["full", "minimal"] = Field(
        default="full",
        validation_alias=_env("metrics"),
        description="minimal keeps only two counters: for measuring what metrics cost.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        validation_alias=_env("log_format"),
        description="json: one object per line with correlation ids; text: for a terminal.",
    )

    @field_validator("pseudonym_key")
    @classmethod
    def _key_strength(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            msg = "must be at least 16 characters (use a long random secret)"
            raise ValueError(msg)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"unknown timezone {value!r}; use an IANA name such as Europe/London"
            raise ValueError(msg) from exc
        return value

    @field_validator("rules_file", "messages_file", "teams_file", "term_start", mode="before")
    @classmethod
    def _unset_if_empty(cls, value: object) -> object:
        # The compose file passes `${VAR:-}`: an empty value means "use the shipped file".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        from schemas.quiet import QuietHours  # sinks import settings' neighbours, not settings

        QuietHours.parse(value, "UTC")
        return value

    @field_validator("channels")
    @classmethod
    def _channel_routes(cls, value: str) -> str:
        parse_channel_routes(value)
        return value

    @property
    def channel_routes(self) -> dict[str, str]:
        """Channel name → transport name."""
        return parse_channel_routes(self.channels)

    def web_port_for(self, role: str) -> int:
        """The web port of a process of ``role``: ENGAGEMENT_WEB_PORT, or the role's default."""
        return self.web_port if self.web_port is not None else WEB_PORTS[role]

    @property
    def topics(self) -> TopicNames:
        """Topic names under this deployment's prefix."""
        return TopicNames(self.topic_prefix)

    @property
    def zone(self) -> ZoneInfo:
        """The institution's timezone, for day boundaries."""
        return ZoneInfo(self.timezone)


# Each process's default web port: two processes on one host must not take the same one (the
# second would fail to bind, and `engagement check` would ask the wrong process).
WEB_PORTS: dict[str, int] = {"worker": 6066, "notifier": 6067}

CHANNEL_NAMES = ("email", "sms", "app")
TRANSPORT_NAMES = ("webhook", "smtp", "kafka")


def parse_channel_routes(value: str) -> dict[str, str]:
    """``email=smtp,sms=webhook`` → {"email": "smtp", "sms": "webhook"}; a channel left out
    is not used (its prompts go on the rule's next channel)."""
    routes: dict[str, str] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        channel, sep, transport = (x.strip() for x in part.partition("="))
        if not sep or channel not in CHANNEL_NAMES or transport not in TRANSPORT_NAMES:
            msg = (
                f"{part!r} is not channel=transport; channels are {', '.join(CHANNEL_NAMES)} "
                f"and transports {', '.join(TRANSPORT_NAMES)}"
            )
            raise ValueError(msg)
        if channel in routes:
            msg = f"channel {channel!r} is given twice"
            raise ValueError(msg)
        routes[channel] = transport
    if not routes:
        msg = "no channel is configured; e.g. email=webhook,sms=webhook,app=webhook"
        raise ValueError(msg)
    return routes


_FIELD_OF_ENV = {env: field for field, env in ENV.items()}
_HINTS = {
    "pseudonym_key": (
        "set it to a long random secret (e.g. `openssl rand -base64 32`); for local use, "
        "`engagement stack up` creates a development key"
    ),
}


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (plus overrides), or stop with what to fix."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic-settings fills the rest
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a settings validation error into lines naming the environment variable to fix."""
    lines = ["The configuration is not valid:"]
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        field = _FIELD_OF_ENV.get(field, field)  # errors name the alias or the field
        name = ENV.get(field, field)
        message = "is required but not set" if error["type"] == "missing" else error["msg"]
        hint = _HINTS.get(field, "")
        lines.append(f"  - {name}: {message}{'; ' + hint if hint else ''}")
    return "\n".join(lines)
