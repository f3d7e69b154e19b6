"""The rules file: the shipped defaults load, and a broken file says what, where and how to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agents.model.describe import describe
from schemas.nudges import Channel, Route, Tier
from schemas.rules import DEFAULT_RULES, Kind, Mode, RulesFileError, load_rules

DEFAULT_TEXT = DEFAULT_RULES.read_text(encoding="utf-8")
VLE_WINDOW = 'sources = ["vle"]\nwindow_days = 7'


def write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(RulesFileError) as caught:
        load_rules(write(tmp_path, text))
    return str(caught.value)


def test_the_shipped_default_file_has_every_rule_the_model_needs() -> None:
    rules = load_rules()
    assert rules.schema_version == 2
    by_id = {rule.id: rule for rule in rules.rules}
    assert set(by_id) == {
        "no_vle_activity_7d",
        "attendance_below_50pct_14d",
        "attendance_below_50pct_28d",
        "no_activity_14d",
        "sustained_low_score_14d",
        "score_drop_2pt_28d",
        "visa_no_contact_21d",
        "prompt_not_recovered_7d",
    }
    assert by_id["no_vle_activity_7d"].kind is Kind.INACTIVITY
    assert by_id["no_vle_activity_7d"].sources == ("vle",)
    assert by_id["attendance_below_50pct_14d"].tier is Tier.PROMPT
    assert by_id["attendance_below_50pct_28d"].tier is Tier.INVITATION
    assert by_id["attendance_below_50pct_28d"].route is Route.PERSONAL_TUTOR
    assert by_id["visa_no_contact_21d"].tier is Tier.REFERRAL
    assert by_id["visa_no_contact_21d"].route is Route.COMPLIANCE
    assert by_id["visa_no_contact_21d"].channels == ()
    assert by_id["prompt_not_recovered_7d"].kind is Kind.ESCALATION
    assert all(rule.mode is Mode.LIVE for rule in rules.rules)
    assert by_id["attendance_below_50pct_14d"].channels == (Channel.EMAIL,)
    # Escalations are evaluated after the rules they follow.
    assert rules.active[-1].kind is Kind.ESCALATION


def test_a_copy_of_the_defaults_loads(tmp_path: Path) -> None:
    assert load_rules(write(tmp_path, DEFAULT_TEXT)) == load_rules()


def test_a_bad_threshold_names_the_file_line_rule_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, DEFAULT_TEXT.replace("threshold = 0.5\n", "threshold = 2\n", 1))
    with pytest.raises(RulesFileError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert str(path) in message
    line = DEFAULT_TEXT.splitlines().index("threshold = 0.5") + 1
    assert f"line {line}: rule #2 (id 'attendance_below_50pct_14d'), field threshold" in message
    assert "(0, 1]" in message


def test_a_bad_window_in_the_first_rule_names_it(tmp_path: Path) -> None:
    message = refused(
        tmp_path, DEFAULT_TEXT.replace(VLE_WINDOW, 'sources = ["vle"]\nwindow_days = 0')
    )
    assert "no_vle_activity_7d" in message
    assert "field window_days" in message


def test_an_unknown_channel_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace('channels = ["email"]', 'channels = ["pigeon"]', 1)
    assert "attendance_below_50pct_14d" in refused(tmp_path, text)


def test_an_unknown_placeholder_in_a_message_names_what_may_be_used(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("that is {days} days", "that is {dayz} days", 1)
    message = refused(tmp_path, text)
    assert "field message" in message
    assert "dayz" in message
    assert "last_active" in message  # what an inactivity rule can use


def test_a_prompt_routed_to_staff_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace('route = "student"', 'route = "personal_tutor"', 1)
    message = refused(tmp_path, text)
    assert "field route" in message
    assert "prompt goes to the student" in message


def test_an_invitation_sent_straight_to_the_student_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace('route = "personal_tutor"', 'route = "student"', 1)
    message = refused(tmp_path, text)
    assert "attendance_below_50pct_28d" in message
    assert "never straight to the student" in message


def test_a_visa_rule_can_never_be_a_prompt(tmp_path: Path) -> None:
    rule = """
[[rules]]
id = "visa_prompt"
version = 1
kind = "no_contact"
description = "Sponsored students told directly: not allowed."
sources = ["attendance"]
window_days = 10
tier = "prompt"
route = "student"
cooldown_days = 10
channels = ["email"]
applies_to = "sponsored_visa"
message = "No contact since {last_contact}."
"""
    message = refused(tmp_path, DEFAULT_TEXT + rule)
    assert "visa_prompt" in message
    assert "never sent to the student" in message


def test_an_escalation_must_follow_prompt_rules(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace(
        'id = "prompt_not_recovered_7d"',
        'id = "prompt_not_recovered_7d"\nafter = ["no_activity_14d"]',
    )
    message = refused(tmp_path, text)
    assert "no_activity_14d" in message
    assert "not prompt rules" in message


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace('id = "attendance_below_50pct_14d"', 'id = "no_vle_activity_7d"')
    message = refused(tmp_path, text)
    assert "unique" in message
    assert "no_vle_activity_7d" in message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "schema_version = = 2\n", name="broken-rules.toml")
    with pytest.raises(RulesFileError, match=r"broken-rules\.toml") as caught:
        load_rules(path)
    assert "TOML" in str(caught.value)


def test_an_unknown_field_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace(VLE_WINDOW, VLE_WINDOW + '\ncolour = "red"')
    message = refused(tmp_path, text)
    assert "no_vle_activity_7d" in message
    assert "colour" in message


def test_a_version_1_file_says_how_to_convert(tmp_path: Path) -> None:
    message = refused(tmp_path, DEFAULT_TEXT.replace("schema_version = 2", "schema_version = 1"))
    assert "schema_version 1" in message
    assert "mode = 'live'" in message


def test_score_weights_must_not_all_be_zero(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace(
        "weights = { attendance = 2.0, campus_days = 1.0, vle_days = 1.5, vle_actions = 0.5 }",
        "weights = { attendance = 0, campus_days = 0, vle_days = 0, vle_actions = 0 }",
    )
    assert "at least one score weight" in refused(tmp_path, text)


def test_a_missing_file_is_a_rules_file_error(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError, match=r"nowhere\.toml"):
        load_rules(tmp_path / "nowhere.toml")


def test_rules_check_prints_every_rule_in_words() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "rules", "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for rule in load_rules().rules:
        assert f"{rule.id} (version {rule.version}, live)" in out
        assert rule.description in out
    assert "Engagement score: 0-5 over the last 7 days" in out
    assert "Sponsored-visa students only." in out
    assert "an invitation for a member of staff to get in touch (personal tutor)" in out


def test_rules_check_of_a_bad_file_fails_with_the_problem(tmp_path: Path) -> None:
    path = write(tmp_path, DEFAULT_TEXT.replace("window_days = 14\n", "window_days = -1\n", 1))
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "rules", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "attendance_below_50pct_14d" in done.stderr
    assert "window_days" in done.stderr
    assert done.stdout == ""


# -- how much evidence a rule needs (min_days) -------------------------------------------------


def test_each_shipped_window_rule_needs_its_window_covered_before_it_fires() -> None:
    by_id = {rule.id: rule for rule in load_rules().rules}
    needs = {rule_id: rule.required_days for rule_id, rule in by_id.items()}
    assert needs["attendance_below_50pct_14d"] == 14
    assert needs["attendance_below_50pct_28d"] == 28
    assert needs["no_vle_activity_7d"] == 7
    assert needs["score_drop_2pt_28d"] == 14  # a baseline over at least half the 28 days
    assert by_id["attendance_below_50pct_14d"].min_sessions == 4
    assert by_id["attendance_below_50pct_28d"].min_sessions == 8


def test_min_days_longer_than_the_window_is_refused_with_the_line(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("min_days = 14\n", "min_days = 15\n", 1)
    message = refused(tmp_path, text)
    line = text.splitlines().index("min_days = 15") + 1
    assert f"line {line}: rule #2 (id 'attendance_below_50pct_14d'), field min_days" in message
    assert "more than the window of 14 days" in message


@pytest.mark.parametrize("value", ["0", "-3", "1.5", '"a week"'])
def test_min_days_must_be_a_whole_number_of_days(tmp_path: Path, value: str) -> None:
    message = refused(tmp_path, DEFAULT_TEXT.replace("min_days = 14\n", f"min_days = {value}\n", 1))
    assert "attendance_below_50pct_14d" in message
    assert "field min_days" in message


def test_an_escalation_rule_refuses_min_days(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace(
        'id = "prompt_not_recovered_7d"\n', 'id = "prompt_not_recovered_7d"\nmin_days = 3\n'
    )
    message = refused(tmp_path, text)
    assert "prompt_not_recovered_7d" in message
    assert "field min_days" in message
    assert "follows a prompt" in message


def test_a_rule_without_min_days_needs_its_whole_window(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("min_days = 28\n", "", 1)
    by_id = {rule.id: rule for rule in load_rules(write(tmp_path, text)).rules}
    assert by_id["attendance_below_50pct_28d"].min_days is None
    assert by_id["attendance_below_50pct_28d"].required_days == 28


def test_rules_check_says_how_much_of_the_window_each_rule_needs() -> None:
    text = describe(load_rules())
    assert (
        "Decides only once all 28 days lie in the student's term, with at least 8 expected "
        "sessions." in text
    )
    assert (
        "Decides once at least 14 of its 28 days have scores from the student's term, saying "
        "how many it read." in text
    )


def test_the_window_placeholder_is_offered_to_every_kind(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("over {window} falls below", "over {windows} falls below")
    message = refused(tmp_path, text)
    assert "unknown placeholder(s) windows" in message
    assert "window," in message
