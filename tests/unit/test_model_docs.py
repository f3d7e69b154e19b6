"""docs/engagement-model.md says what the code does, with the numbers the code uses.

The numbers in the page are checked against their sources: the default rules file
(`schemas/rules.default.toml`), the source-health thresholds (`HealthConfig`), and the model
itself, run on crafted students (the window each rule's decisions name, and which prompt an
escalation follows).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from agents.model.describe import describe
from agents.model.health import HealthConfig
from agents.model.rulestate import Prompt
from agents.model.score import DayFacts
from agents.model.student import Student
from schemas.nudges import Nudge
from schemas.rules import Kind, Rule, load_rules
from tests.unit.build import DEFAULTS, days, only, run, student

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "engagement-model.md"
README = ROOT / "README.md"
RULES = {rule.id: rule for rule in load_rules().rules}
D0 = date(2026, 9, 7).toordinal()  # a Monday; every crafted student is known from here
FULL = {"present": 1, "swipes": 2, "vle": 12}


def _text(path: Path = DOC) -> str:
    return path.read_text(encoding="utf-8")


def _section(number: int) -> str:
    """One numbered section (`## 6. …`) of the page."""
    match = re.search(rf"^## {number}\. .*?(?=^## \d+\. |\Z)", _text(), re.MULTILINE | re.DOTALL)
    assert match, f"section {number} not found"
    return match.group(0)


def _subsection(title: str, text: str) -> str:
    match = re.search(rf"^###+ {re.escape(title)}.*?(?=^##+ |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no subsection {title!r}"
    return match.group(0)


def _table_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows keyed by their first cell (backticks removed)."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|\s*-", line):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def _number(value: float) -> str:
    return f"{value:g}"


# -- the default rules --------------------------------------------------------------------------


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_the_rules_table_states_each_rules_window_threshold_and_cooldown(rule_id: str) -> None:
    rule = RULES[rule_id]
    row = " | ".join(_table_rows(_section(2))[rule_id])
    assert f"{rule.window_days} " in row, f"{rule_id}: window {rule.window_days} days: {row}"
    assert f"not again within {rule.cooldown_days} days" in row, row
    if rule.kind is Kind.ATTENDANCE_RATE:
        assert f"under half of at least {rule.min_sessions} expected sessions" in row, row
        assert rule.threshold == 0.5
    elif rule.kind is Kind.LOW_SCORE:
        assert f"score {rule.threshold:.1f} or below" in row, row
    elif rule.kind is Kind.SCORE_DROP:
        assert f"{_number(rule.threshold or 0)} or more points" in row, row
    elif rule.kind is Kind.ESCALATION:
        assert f"still below {_number(rule.threshold or 0)}" in row, row


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_each_rules_own_section_states_its_cooldown(rule_id: str) -> None:
    text = _subsection(f"`{rule_id}`", _section(2))
    cooldown = RULES[rule_id].cooldown_days
    how_often = re.search(r"\*\*How often:\*\*(.*?)(?=\n- \*\*|\Z)", text, re.DOTALL)
    assert how_often, f"{rule_id}: no 'How often' line"
    assert f"not again within {cooldown} days" in " ".join(how_often.group(1).split())


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_the_readme_table_agrees_with_the_rules_file(rule_id: str) -> None:
    rule = RULES[rule_id]
    row = " | ".join(_table_rows(_text(README))[rule_id])
    assert f"{rule.window_days} days" in row, row
    if rule.kind is Kind.ATTENDANCE_RATE:
        assert f"at least {rule.min_sessions}" in row, row


def test_the_example_output_is_what_rules_check_prints() -> None:
    block = re.search(r"```sh\n\$ engagement rules check\n(.*?)```", _text(), re.DOTALL)
    assert block, "the page no longer shows `engagement rules check`"
    printed = describe(DEFAULTS).splitlines()
    for line in block.group(1).splitlines():
        if line.strip() and line.strip() != "...":
            assert line in printed, f"`engagement rules check` does not print: {line!r}"


def test_the_score_section_uses_the_score_settings() -> None:
    score = DEFAULTS.score
    text = _section(1)
    assert f"computed over the **{score.window_days} days ending" in text
    rows = _table_rows(_subsection("Inputs", text))
    weights, caps = score.weights, score.caps
    assert rows["attendance"][-1] == f"{weights.attendance:.1f}"
    assert rows["days on campus"][-2:] == [f"{caps.campus_days} days", f"{weights.campus_days:.1f}"]
    assert rows["days active online"][-2:] == [f"{caps.vle_days} days", f"{weights.vle_days:.1f}"]
    assert rows["online actions"][-2:] == [
        f"{caps.vle_actions} events",
        f"{weights.vle_actions:.1f}",
    ]


# -- source health ------------------------------------------------------------------------------


def test_the_source_health_thresholds_are_the_codes() -> None:
    text = _section(6)
    stated = dict(re.findall(r"`(\w+) = ([\d.]+)`", text))
    config = HealthConfig()
    expected = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    assert set(stated) == set(expected), "every HealthConfig threshold, and only those"
    for name, value in expected.items():
        assert float(stated[name]) == value, f"{name}: the page says {stated[name]}, code {value}"


def test_the_source_health_table_uses_the_thresholds() -> None:
    config = HealthConfig()
    text = _section(6)
    for back in re.findall(r"previous (\d+) days", text):
        assert int(back) == config.pattern_days
    pattern = " ".join(_table_rows(text)["normal pattern"])
    assert "same kind (weekdays, or weekend days)" in pattern  # as the code compares days
    share = "every day" if config.pattern_share == 1.0 else f"{config.pattern_share:.0%}"
    assert share in pattern
    assert f"at least {config.pattern_min_days} such days" in pattern
    assert f"at least {_number(config.min_expected)} events" in pattern


# -- what the model does, run ---------------------------------------------------------------


def _quiet_after(last_active: int, **counts: int) -> dict[int, DayFacts]:
    return days(D0, last_active, **counts)


CASES: dict[str, Callable[[], Student]] = {
    "no_vle_activity_7d": lambda: student(_quiet_after(D0 + 30, vle=3), D0),
    "attendance_below_50pct_14d": lambda: student(days(D0, D0 + 60, absent=1, vle=3), D0),
    "attendance_below_50pct_28d": lambda: student(days(D0, D0 + 60, absent=1, vle=3), D0),
    "no_activity_14d": lambda: student(_quiet_after(D0 + 30, **FULL), D0),
    "sustained_low_score_14d": lambda: student(days(D0, D0 + 60, swipes=0), D0),
    "score_drop_2pt_28d": lambda: student(_quiet_after(D0 + 40, **FULL), D0),
    "visa_no_contact_21d": lambda: student(_quiet_after(D0 + 30, **FULL), D0, sponsored_visa=True),
    "prompt_not_recovered_7d": lambda: student(_quiet_after(D0 + 30, **FULL), D0),
}


def _first_decision(rule_id: str) -> Nudge:
    rule = RULES[rule_id]
    ids = (rule_id, *(r.id for r in DEFAULTS.rules if r.tier.value == "prompt"))
    rules = only(*ids) if rule.kind is Kind.ESCALATION else only(rule_id)
    nudges = [n for n in run(rules, CASES[rule_id](), D0, D0 + 80) if n.rule_id == rule_id]
    assert nudges, f"the crafted case never triggers {rule_id}"
    return nudges[0]


def _window_rows() -> dict[str, list[str]]:
    return _table_rows(_subsection("The window a decision names", _section(3)))


def test_every_default_rule_is_crafted_and_in_the_window_table() -> None:
    assert set(CASES) == set(RULES)
    assert set(RULES) <= set(_window_rows())


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_the_window_a_decision_names_is_as_long_as_the_page_says(rule_id: str) -> None:
    rule: Rule = RULES[rule_id]
    window_days, names = _window_rows()[rule_id][:2]
    assert int(window_days) == rule.window_days
    stated = int(re.match(r"(\d+) days", names).group(1))  # type: ignore[union-attr]
    nudge = _first_decision(rule_id)
    named = (nudge.explanation.window_end - nudge.explanation.window_start).days + 1
    assert named == stated, f"{rule_id}: its decisions name {named} days, the page {stated}"


def test_an_escalation_follows_the_most_recent_prompt_only() -> None:
    """Both descriptions of escalation (section 2 and section 3) say it follows the most recent
    live prompt, whatever the student did with it; the model agrees."""
    for text in (_subsection("`prompt_not_recovered_7d`", _section(2)), _section(3)):
        assert "most recent" in text
        for word in ("exemption", "data gap", "shadow", "opted out"):
            assert word in text, word
    rule = RULES["prompt_not_recovered_7d"]
    quiet = student({}, D0 - 30)  # no activity at all: the score stays very low
    quiet.last_prompt = Prompt(D0, "no_vle_activity_7d", 0.0)
    decided_on = []
    for day in range(D0, D0 + 20):
        if day == D0 + 3:  # a second prompt replaces the first
            quiet.last_prompt = Prompt(D0 + 3, "attendance_below_50pct_14d", 0.0)
        if run(only(rule.id), quiet, day, day):
            decided_on.append(day - D0)
    assert decided_on == [3 + rule.window_days]
