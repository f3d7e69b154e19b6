"""How the product logs in to Kafka (TLS, SASL/SCRAM) and to Redis (a password).

Part of the one settings object: ``schemas.settings.Settings`` derives from
:class:`Credentials`, and lists these environment variables in its ``ENV`` with every other
one. Every Kafka client of the product — the Faust app, the ingest's aiokafka consumer and
producer, the kafka-python publishers, record producers and admin client — takes its security
options from here, so one set of variables secures them all. Passwords are read from files
(container secrets), never from the environment.
"""

from __future__ import annotations

import ssl
import urllib.parse
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, ValidationInfo, field_validator

CREDENTIALS_ENV = {
    "kafka_security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "kafka_sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "kafka_sasl_username": "KAFKA_SASL_USERNAME",
    "kafka_sasl_password_file": "KAFKA_SASL_PASSWORD_FILE",
    "kafka_ssl_cafile": "KAFKA_SSL_CAFILE",
    "redis_password_file": "REDIS_PASSWORD_FILE",
}


def _env(field: str) -> AliasChoices:
    return AliasChoices(CREDENTIALS_ENV[field])


def _read_secret(path: Path, what: str) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        msg = f"cannot read {path} ({exc.strerror or exc})"
        raise ValueError(msg) from None
    if not secret:
        msg = f"{path} is empty: put the {what} in it"
        raise ValueError(msg)
    return secret


class Credentials(BaseModel):
    """The login fields of the settings object, and the client options they make."""

    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        default="PLAINTEXT",
        validation_alias=_env("kafka_security_protocol"),
        description="How every Kafka client of the product talks to the brokers.",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512", validation_alias=_env("kafka_sasl_mechanism")
    )
    kafka_sasl_username: str | None = Field(
        default=None, min_length=1, validation_alias=_env("kafka_sasl_username")
    )
    kafka_sasl_password_file: Path | None = Field(
        default=None,
        validate_default=True,  # so that a SASL protocol without a password file is refused
        validation_alias=_env("kafka_sasl_password_file"),
        description="A file holding the SASL password (a container secret), not the password.",
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        validation_alias=_env("kafka_ssl_cafile"),
        description="CA certificates for the brokers' TLS certificates; unset: the system's.",
    )
    redis_password_file: Path | None = Field(
        default=None,
        validation_alias=_env("redis_password_file"),
        description="A file holding the Redis password, added to REDIS_URL (whose user name, "
        "if any, is the ACL user).",
    )

    @field_validator("kafka_sasl_password_file")
    @classmethod
    def _sasl_login(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        protocol = str(info.data.get("kafka_security_protocol", "PLAINTEXT"))
        if not protocol.startswith("SASL_"):
            return value
        name = CREDENTIALS_ENV["kafka_security_protocol"]
        if not info.data.get("kafka_sasl_username"):
            msg = f"needs {CREDENTIALS_ENV['kafka_sasl_username']} too when {name} is {protocol}"
            raise ValueError(msg)
        if value is None:
            msg = f"is required when {name} is {protocol}: the file holding the password"
            raise ValueError(msg)
        _read_secret(value, "SASL password")
        return value

    @field_validator("redis_password_file")
    @classmethod
    def _redis_password(cls, value: Path | None) -> Path | None:
        if value is not None:
            _read_secret(value, "Redis password")
        return value

    def redis_url_with_password(self, url: str) -> str:
        """``url`` with the password from REDIS_PASSWORD_FILE in it (unchanged without one)."""
        if self.redis_password_file is None:
            return url
        password = urllib.parse.quote(_read_secret(self.redis_password_file, ""), safe="")
        parts = urllib.parse.urlsplit(url)
        user = urllib.parse.quote(parts.username or "", safe="")
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))

    def kafka_sasl_password(self) -> str | None:
        """The SASL password, read from its file (None without one)."""
        if self.kafka_sasl_password_file is None:
            return None
        return self.kafka_sasl_password_file.read_text(encoding="utf-8").strip()

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """TLS for SSL and SASL_SSL, checking the brokers' certificates and names; else None."""
        if self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            return None
        cafile = str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile is not None else None
        return ssl.create_default_context(cafile=cafile)

    def kafka_client_options(self) -> dict[str, object]:
        """Security keywords for kafka-python and aiokafka clients (both use these names);
        empty for PLAINTEXT, so the embedded development broker needs nothing."""
        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return {}
        options: dict[str, object] = {"security_protocol": protocol}
        context = self.kafka_ssl_context()
        if context is not None:
            options["ssl_context"] = context
        if protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = self.kafka_sasl_password()
        return options
