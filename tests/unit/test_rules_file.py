"""The rules file: the shipped defaults load, and a broken file says what and where."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.nudges import Channel, Tier
from schemas.rules import (
    DEFAULT_RULES,
    AttendanceRateRule,
    RulesFileError,
    VleAbsenceRule,
    load_rules,
)

DEFAULT_TEXT = DEFAULT_RULES.read_text(encoding="utf-8")

EXTRA_VLE_RULE = """
[[rules]]
id = "no_vle_activity_14d"
version = 1
kind = "vle_absence"
description = "No activity in the online learning environment for 14 days."
days = 14
"""


def write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_default_file_loads() -> None:
    rules = load_rules()
    assert rules == load_rules(DEFAULT_RULES)
    assert rules.schema_version == 1
    assert [rule.id for rule in rules.rules] == [
        "no_vle_activity_7d",
        "attendance_below_50pct_14d",
    ]
    (vle,) = rules.of_kind(VleAbsenceRule)
    (attendance,) = rules.of_kind(AttendanceRateRule)
    assert vle.days == 7
    assert attendance.threshold == 0.5
    assert all(rule.tier is Tier.PROMPT for rule in rules.rules)
    assert attendance.channels == (Channel.EMAIL,)


def test_a_copy_of_the_defaults_loads(tmp_path: Path) -> None:
    assert load_rules(write(tmp_path, DEFAULT_TEXT)) == load_rules()


def test_a_bad_threshold_names_the_file_rule_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, DEFAULT_TEXT.replace("threshold = 0.5", "threshold = 2"))
    with pytest.raises(RulesFileError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert str(path) in message
    assert "attendance_below_50pct_14d" in message
    assert "threshold" in message
    assert "rule #2" in message


def test_a_bad_value_in_the_first_rule_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, DEFAULT_TEXT.replace("days = 7", "days = 0"))
    with pytest.raises(RulesFileError, match=r"no_vle_activity_7d.*days"):
        load_rules(path)


def test_an_unknown_channel_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, DEFAULT_TEXT.replace('channels = ["email"]', 'channels = ["pigeon"]'))
    with pytest.raises(RulesFileError, match="attendance_below_50pct_14d"):
        load_rules(path)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace('id = "attendance_below_50pct_14d"', 'id = "no_vle_activity_7d"')
    with pytest.raises(RulesFileError) as caught:
        load_rules(write(tmp_path, text))
    message = str(caught.value)
    assert "unique" in message
    assert "no_vle_activity_7d" in message


def test_two_enabled_vle_absence_rules_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError) as caught:
        load_rules(write(tmp_path, DEFAULT_TEXT + EXTRA_VLE_RULE))
    message = str(caught.value)
    assert "vle_absence" in message
    assert "no_vle_activity_7d" in message
    assert "no_vle_activity_14d" in message


def test_a_second_vle_absence_rule_is_fine_when_disabled(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, DEFAULT_TEXT + EXTRA_VLE_RULE + "enabled = false\n"))
    assert [rule.id for rule in rules.of_kind(VleAbsenceRule)] == ["no_vle_activity_7d"]
    assert len(rules.rules) == 3


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "schema_version = = 1\n", name="broken-rules.toml")
    with pytest.raises(RulesFileError, match=r"broken-rules\.toml") as caught:
        load_rules(path)
    assert "TOML" in str(caught.value)


def test_an_unknown_field_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("days = 7\n", 'days = 7\ncolour = "red"\n')
    with pytest.raises(RulesFileError) as caught:
        load_rules(write(tmp_path, text))
    message = str(caught.value)
    assert "no_vle_activity_7d" in message
    assert "colour" in message


def test_an_unknown_top_level_field_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError, match="owner"):
        load_rules(write(tmp_path, 'owner = "registry"\n' + DEFAULT_TEXT))


def test_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("schema_version = 1", "schema_version = 2")
    with pytest.raises(RulesFileError, match="schema_version"):
        load_rules(write(tmp_path, text))


def test_a_missing_file_is_a_rules_file_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(RulesFileError, match=r"nowhere\.toml"):
        load_rules(path)


def test_rules_that_are_not_tables_are_a_rules_file_error(tmp_path: Path) -> None:
    path = write(tmp_path, 'schema_version = 1\nrules = ["no_vle_activity_7d"]\n')
    with pytest.raises(RulesFileError, match=r"rules\.toml"):
        load_rules(path)
