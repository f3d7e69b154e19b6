"""The product logs in to a secured Kafka (TLS, SASL/SCRAM) and to Redis with a password.

Before, no Kafka client took security options and a Redis password could only sit inside
REDIS_URL, so the product could not run against the compose file's Kafka with SASL/SCRAM and
Redis with an ACL user. The settings (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM,
KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD_FILE, KAFKA_SSL_CAFILE, REDIS_PASSWORD_FILE) make one
set of options, and each Kafka client is checked here to receive them (the client classes are
replaced by recorders: no network). The embedded development broker cannot check a SCRAM login;
the Redis ACL is exercised for real in tests/integration/test_secured_redis.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest

from schemas.errors import ConfigError
from schemas.settings import ENV, Settings, load_settings
from schemas.topics import TopicNames
from stream.app import broker_credentials, create_app

KEY = "k" * 24
PASSWORD = "correct-horse-battery-staple"  # noqa: S105  # a test password
SECURITY = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "kafka_password"
    path.write_text(PASSWORD + "\n", encoding="utf-8")
    return path


@pytest.fixture
def sasl(monkeypatch: pytest.MonkeyPatch, password_file: Path) -> Settings:
    monkeypatch.setenv(ENV["kafka_security_protocol"], "SASL_PLAINTEXT")
    monkeypatch.setenv(ENV["kafka_sasl_username"], "engagement")
    monkeypatch.setenv(ENV["kafka_sasl_password_file"], str(password_file))
    return load_settings(pseudonym_key=KEY)


class Recorder:
    """Stands in for a Kafka client class: remembers the keywords it was built with."""

    built: list[dict[str, Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).built.append(kwargs)

    def __getattr__(self, name: str) -> Any:
        def anything(*args: Any, **kwargs: Any) -> Any:
            if name == "list_topics":
                return list(TopicNames().all)
            return None

        return anything


def recorder() -> type[Recorder]:
    return type("Recorded", (Recorder,), {"built": []})


def _login(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs.get(k) for k in SECURITY}


EXPECTED = {
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": "engagement",
    "sasl_plain_password": PASSWORD,
}


# -- settings -----------------------------------------------------------------------------------


def test_plaintext_needs_nothing() -> None:
    settings = load_settings(pseudonym_key=KEY)
    assert settings.kafka_client_options() == {}
    assert broker_credentials(settings) is None


def test_sasl_options_carry_the_login_with_the_password_read_from_its_file(
    sasl: Settings, password_file: Path
) -> None:
    assert sasl.kafka_client_options() == EXPECTED
    assert PASSWORD not in repr(sasl)  # the settings hold the file's path, not the password


def test_sasl_without_a_password_file_names_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV["kafka_security_protocol"], "SASL_SSL")
    monkeypatch.setenv(ENV["kafka_sasl_username"], "engagement")
    with pytest.raises(ConfigError) as caught:
        load_settings(pseudonym_key=KEY)
    assert "KAFKA_SASL_PASSWORD_FILE: " in str(caught.value)
    assert "is required when KAFKA_SECURITY_PROTOCOL is SASL_SSL" in str(caught.value)


def test_sasl_without_a_username_or_with_an_empty_password_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    monkeypatch.setenv(ENV["kafka_security_protocol"], "SASL_PLAINTEXT")
    monkeypatch.setenv(ENV["kafka_sasl_password_file"], str(empty))
    with pytest.raises(ConfigError, match="needs KAFKA_SASL_USERNAME"):
        load_settings(pseudonym_key=KEY)
    monkeypatch.setenv(ENV["kafka_sasl_username"], "engagement")
    with pytest.raises(ConfigError, match="is empty"):
        load_settings(pseudonym_key=KEY)


def test_tls_checks_the_brokers_certificate_and_name(
    monkeypatch: pytest.MonkeyPatch, sasl: Settings
) -> None:
    monkeypatch.setenv(ENV["kafka_security_protocol"], "SASL_SSL")
    options = load_settings(pseudonym_key=KEY).kafka_client_options()
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert options == EXPECTED | {"security_protocol": "SASL_SSL"}


# -- every client -------------------------------------------------------------------------------


@contextlib.contextmanager
def app_of(settings: Settings, role: str = "worker") -> Iterator[Any]:
    app, ctx = create_app(
        settings, role, kafka_bootstrap="127.0.0.1:9", redis_url="redis://127.0.0.1:9/0"
    )
    try:
        yield app, ctx
    finally:
        app.loop.close()
        asyncio.set_event_loop(None)


def test_the_faust_app_logs_in(sasl: Settings) -> None:
    with app_of(sasl) as (app, _):
        credentials = app.conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("engagement", PASSWORD)
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_PLAINTEXT"


def test_the_ingest_consumer_and_producer_log_in(
    monkeypatch: pytest.MonkeyPatch, sasl: Settings
) -> None:
    from agents import ingest

    consumer, producer = recorder(), recorder()

    async def start(self: Any) -> None:
        return None

    consumer.start = start  # type: ignore[attr-defined]
    producer.start = start  # type: ignore[attr-defined]
    monkeypatch.setattr(ingest, "AIOKafkaConsumer", consumer)
    monkeypatch.setattr(ingest, "AIOKafkaProducer", producer)
    with app_of(sasl) as (app, ctx):
        raw = ingest.RawIngest(ctx, store=None)  # type: ignore[arg-type]  # not used here
        app.loop.run_until_complete(raw.on_start())
    assert [_login(k) for k in consumer.built + producer.built] == [EXPECTED, EXPECTED]


def test_the_publisher_the_record_producer_topics_and_reference_log_in(
    monkeypatch: pytest.MonkeyPatch, sasl: Settings, tmp_path: Path
) -> None:
    from sinks.channels import producer as records
    from stream import reference, topics
    from stream.publisher import producer as publisher

    built = {name: recorder() for name in ("publisher", "records", "admin", "reference")}
    monkeypatch.setattr(publisher, "KafkaProducer", built["publisher"])
    monkeypatch.setattr(records, "KafkaProducer", built["records"])
    monkeypatch.setattr(topics, "KafkaAdminClient", built["admin"])
    monkeypatch.setattr(reference, "KafkaProducer", built["reference"])
    login = sasl.kafka_client_options()

    publisher.Publisher("kafka:9092", topics=TopicNames(), client_options=login)
    records.RecordProducer("kafka:9092", client_id="test", client_options=login)
    topics.ensure_topics("kafka:9092", TopicNames(), 4, login)
    empty = tmp_path / "roster.jsonl"
    empty.write_text("", encoding="utf-8")
    reference.publish_reference("kafka:9092", TopicNames(), "roster", empty, client_options=login)

    for name, cls in built.items():
        assert [_login(k) for k in cls.built] == [EXPECTED], name


def test_the_start_up_check_logs_in_before_it_says_the_broker_answers(
    monkeypatch: pytest.MonkeyPatch, sasl: Settings
) -> None:
    from stream import probes

    admin = recorder()
    monkeypatch.setattr("kafka.KafkaAdminClient", admin)
    monkeypatch.setattr(probes, "probe_redis", lambda url, timeout=2.0: None)
    probes.wait_for_services("kafka:9092", "redis://redis:6379/0", 1.0, sasl.kafka_client_options())
    assert [_login(k) for k in admin.built] == [EXPECTED]


def test_a_redis_password_never_appears_in_a_start_up_message() -> None:
    from stream.probes import redacted

    assert redacted("redis://engagement:s3cret@redis:6379/0") == (
        "redis://engagement:***@redis:6379/0"
    )
    assert redacted("redis://:s3cret@redis:6379/0") == "redis://***@redis:6379/0"
    assert redacted("redis://redis:6379/0") == "redis://redis:6379/0"


# -- Redis ------------------------------------------------------------------------------------


def test_the_redis_password_file_joins_the_url_every_client_uses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from stream.runtime import load_runtime

    secret = tmp_path / "redis_password"
    secret.write_text("p@ss/word:1\n", encoding="utf-8")
    monkeypatch.setenv(ENV["pseudonym_key"], KEY)
    monkeypatch.setenv(ENV["kafka_bootstrap_servers"], "kafka:9092")
    monkeypatch.setenv(ENV["redis_url"], "redis://engagement@redis:6379/0")
    monkeypatch.setenv(ENV["redis_password_file"], str(secret))
    runtime = load_runtime()
    assert runtime.redis_url == "redis://engagement:p%40ss%2Fword%3A1@redis:6379/0"
    assert "p@ss" not in repr(runtime.settings)


def test_without_a_password_file_the_url_is_used_as_given() -> None:
    settings = load_settings(pseudonym_key=KEY)
    assert settings.redis_url_with_password("redis://redis:6379/0") == "redis://redis:6379/0"


def test_a_missing_or_empty_redis_password_file_names_the_variable(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("", encoding="utf-8")
    for path, why in ((tmp_path / "missing", "cannot read"), (empty, "is empty")):
        with pytest.raises(ConfigError) as caught:
            load_settings(pseudonym_key=KEY, redis_password_file=path)
        assert f"REDIS_PASSWORD_FILE: Value error, {why}" in str(caught.value).replace(
            f"{path} ", ""
        )
