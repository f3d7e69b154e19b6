"""Settings: read from the environment at load time only; a bad value names its variable."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from schemas.errors import ConfigError
from schemas.settings import ENV, Settings, load_settings

KEY_VAR = "ENGAGEMENT_PSEUDONYM_KEY"
GOOD_KEY = "k" * 20


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test with none of the product's variables set."""
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)


def config_error(**overrides: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    return str(caught.value)


def test_a_missing_pseudonym_key_names_the_variable() -> None:
    message = config_error()
    assert KEY_VAR in message
    assert "required" in message.lower()


def test_a_short_key_names_the_variable_and_does_not_echo_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_VAR, "tooShort-9")
    message = config_error()
    assert KEY_VAR in message
    assert "16" in message
    assert "tooShort-9" not in message


def test_an_unknown_timezone_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, GOOD_KEY)
    monkeypatch.setenv("ENGAGEMENT_TIMEZONE", "Europe/Atlantis")
    message = config_error()
    assert "ENGAGEMENT_TIMEZONE" in message
    assert "Europe/Atlantis" in message
    assert "Europe/London" in message  # says what a good value looks like


@pytest.mark.parametrize("value", ["", "../../etc/passwd", "GMT+1 "])
def test_timezones_that_are_not_iana_names_are_config_errors(value: str) -> None:
    assert "ENGAGEMENT_TIMEZONE" in config_error(pseudonym_key=GOOD_KEY, timezone=value)


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_bad_partitions_name_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(KEY_VAR, GOOD_KEY)
    monkeypatch.setenv("ENGAGEMENT_PARTITIONS", value)
    assert "ENGAGEMENT_PARTITIONS" in config_error()


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGEMENT_PARTITIONS", "0")
    monkeypatch.setenv("ENGAGEMENT_TIMEZONE", "Nowhere/Special")
    message = config_error()
    for name in (KEY_VAR, "ENGAGEMENT_PARTITIONS", "ENGAGEMENT_TIMEZONE"):
        assert name in message


def test_the_environment_is_read_when_settings_are_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_VAR, GOOD_KEY)
    monkeypatch.setenv("ENGAGEMENT_PARTITIONS", "8")
    monkeypatch.setenv("ENGAGEMENT_TIMEZONE", "Europe/Dublin")
    first = load_settings()
    assert first.partitions == 8
    assert first.zone == ZoneInfo("Europe/Dublin")
    assert first.pseudonym_key.get_secret_value() == GOOD_KEY
    monkeypatch.setenv("ENGAGEMENT_PARTITIONS", "2")
    second = load_settings()
    assert second.partitions == 2
    # Settings already loaded do not change when the environment does.
    assert first.partitions == 8


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, GOOD_KEY)
    settings = load_settings()
    assert settings.timezone == "Europe/London"
    assert settings.zone == ZoneInfo("Europe/London")
    assert settings.partitions == 4
    assert settings.kafka_bootstrap_servers is None
    assert settings.redis_url is None
    assert settings.rules_file is None
    assert settings.max_message_bytes == 1_048_576
    assert settings.max_event_bytes == 16_384


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, GOOD_KEY)
    monkeypatch.setenv("ENGAGEMENT_PARTITIONS", "8")
    assert load_settings(partitions=3).partitions == 3


def test_the_key_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    hidden = "a-long-and-private-pseudonym-value"
    monkeypatch.setenv(KEY_VAR, hidden)
    settings = load_settings()
    assert hidden not in repr(settings)
    assert hidden not in str(settings)
    assert hidden not in settings.model_dump_json()


def test_paths_and_prefixes_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, GOOD_KEY)
    monkeypatch.setenv("ENGAGEMENT_RULES_FILE", "/etc/engagement/rules.toml")
    monkeypatch.setenv("ENGAGEMENT_TOPIC_PREFIX", "uni.")
    settings = load_settings()
    assert settings.rules_file == Path("/etc/engagement/rules.toml")
    assert settings.topic_prefix == "uni."


def test_a_bad_topic_prefix_names_the_variable() -> None:
    message = config_error(pseudonym_key=GOOD_KEY, topic_prefix="has space")
    assert "ENGAGEMENT_TOPIC_PREFIX" in message


def test_settings_are_frozen() -> None:
    settings = load_settings(pseudonym_key=GOOD_KEY)
    assert isinstance(settings, Settings)
    with pytest.raises(ValueError, match="frozen"):
        settings.partitions = 9


def test_an_empty_file_setting_means_the_shipped_file(monkeypatch: pytest.MonkeyPatch) -> None:
    # docker-compose passes `${ENGAGEMENT_MESSAGES_FILE:-}` when the operator sets nothing.
    monkeypatch.setenv("ENGAGEMENT_MESSAGES_FILE", "")
    monkeypatch.setenv("ENGAGEMENT_TEAMS_FILE", " ")
    settings = load_settings(pseudonym_key="k" * 20)
    assert settings.messages_file is None and settings.teams_file is None


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("ENGAGEMENT_CHANNELS", "email=pigeon", "channel=transport"),
        ("ENGAGEMENT_CHANNELS", "email=smtp,email=webhook", "given twice"),
        ("ENGAGEMENT_QUIET_HOURS", "9pm-8am", "HH:MM"),
    ],
)
def test_notifier_settings_name_the_variable_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(pseudonym_key="k" * 20)
    assert variable in str(caught.value) and says in str(caught.value)
