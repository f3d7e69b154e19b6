"""The teams file: the packaged demo file loads, and a broken file says what and how to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import ConfigError
from schemas.nudges import Route
from schemas.review import DEFAULT_TEAMS, TeamsFileError, load_teams

GOOD = """\
schema_version = 1
escalate_after_hours = 72
[teams.personal_tutors]
lead = "ST-SENIOR-TUTOR"
members = []
[teams.support]
lead = "ST-SUPPORT-LEAD"
members = ["ST-SUPPORT-1", "ST-SUPPORT-2"]
[teams.compliance]
lead = "ST-COMPLIANCE-LEAD"
members = ["ST-COMPLIANCE-1"]
"""


def refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "teams.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TeamsFileError) as caught:
        load_teams(path)
    message = str(caught.value)
    assert str(path) in message, message
    return message


def test_the_packaged_demo_file_loads_with_three_teams_and_fake_ids() -> None:
    teams = load_teams(None)
    assert DEFAULT_TEAMS.name == "teams.default.toml"
    assert teams.escalate_after_hours == 72
    assert teams.escalate_after_s == 72 * 3600
    assert set(teams.teams) == {"personal_tutors", "support", "compliance"}
    assert teams.teams["personal_tutors"].lead == "ST-SENIOR-TUTOR"
    assert teams.teams["personal_tutors"].members == ()
    assert teams.team_for(Route.COMPLIANCE) == teams.teams["compliance"]
    assert teams.teams["support"].works("ST-SUPPORT-2")
    assert teams.teams["support"].works("ST-SUPPORT-LEAD")
    assert not teams.teams["support"].works("ST-COMPLIANCE-1")
    text = DEFAULT_TEAMS.read_text(encoding="utf-8")
    assert "must write its own file" in text


def test_a_written_file_loads_and_accepts_fractional_hours(tmp_path: Path) -> None:
    path = tmp_path / "teams.toml"
    path.write_text(GOOD.replace("= 72", "= 0.0005"), encoding="utf-8")
    assert load_teams(path).escalate_after_s == pytest.approx(1.8)


def test_missing_team_that_a_rule_routes_to_is_named(tmp_path: Path) -> None:
    text = GOOD.split("[teams.compliance]")[0]
    message = refused(tmp_path, text)
    assert "'compliance'" in message
    assert "[teams.compliance]" in message
    # Rules that never route to compliance do not need the team.
    path = tmp_path / "ok.toml"
    path.write_text(text, encoding="utf-8")
    teams = load_teams(path, routes=[Route.PERSONAL_TUTOR, Route.SUPPORT])
    assert "compliance" not in teams.teams


def test_empty_lead_names_the_team_and_field(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace('lead = "ST-SUPPORT-LEAD"', 'lead = "  "'))
    assert "team 'support', field lead" in message
    assert "must not be empty" in message


def test_missing_lead_names_the_team_and_field(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace('lead = "ST-COMPLIANCE-LEAD"\n', ""))
    assert "team 'compliance', field lead" in message
    assert "add lead" in message


@pytest.mark.parametrize("hours", ["0", "-1", "nan"])
def test_escalation_delay_must_be_positive(tmp_path: Path, hours: str) -> None:
    message = refused(tmp_path, GOOD.replace("= 72", f"= {hours}"))
    assert "escalate_after_hours" in message
    assert "above 0" in message


def test_unknown_schema_version_says_which_version_is_read(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace("schema_version = 1", "schema_version = 2"))
    assert "schema_version 2 is not supported" in message
    assert "set schema_version = 1" in message


def test_missing_schema_version_is_named(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace("schema_version = 1\n", ""))
    assert "schema_version: missing" in message


def test_unknown_setting_and_repeated_member_are_named(tmp_path: Path) -> None:
    message = refused(tmp_path, GOOD.replace("escalate_after_hours", "escalate_after"))
    assert "escalate_after: not a setting of the teams file" in message
    message = refused(tmp_path, GOOD.replace("members = []", "member = []"))
    assert "team 'personal_tutors', field member: not a team setting" in message
    message = refused(tmp_path, GOOD.replace('"ST-SUPPORT-2"', '"ST-SUPPORT-1"'))
    assert "team 'support', field members" in message
    assert "ST-SUPPORT-1 listed more than once" in message


def test_bad_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    message = refused(tmp_path, "schema_version = = 1")
    assert "not valid TOML" in message
    with pytest.raises(ConfigError, match=r"cannot read teams file .*nowhere\.toml"):
        load_teams(tmp_path / "nowhere.toml")
