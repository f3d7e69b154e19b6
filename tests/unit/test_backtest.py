"""Backtest report: weekly counts, lead times, outcome comparison and small-group suppression."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from itertools import count
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.offline.backtest import Decision, build_report, render_report

_ids = count()
FIRST, LAST = date(2026, 9, 28), date(2026, 12, 13)  # Monday of week 1 to Sunday of week 11


def decision(
    rule: str,
    student: str,
    day: date,
    *,
    tier: str = "prompt",
    mode: str = "live",
    suppressed: str | None = None,
) -> Decision:
    return Decision(f"n{next(_ids)}", rule, student, day, tier, mode, suppressed)


def rule_of(report: dict[str, Any], rule_id: str) -> dict[str, Any]:
    [found] = [rule for rule in report["rules"] if rule["rule_id"] == rule_id]
    return found


def cohort(size: int) -> list[str]:
    return [f"s{i:02d}" for i in range(size)]


def test_weeks_are_zero_filled_and_keyed_by_monday() -> None:
    first, last = date(2026, 9, 30), date(2026, 10, 27)  # a Wednesday to a Tuesday
    decisions = [
        decision("r", "s00", date(2026, 9, 30)),
        decision("r", "s01", date(2026, 10, 4)),  # Sunday: still the first week
        decision("r", "s00", date(2026, 10, 27), suppressed="exemption"),
    ]
    report = build_report(decisions, students=cohort(2), first_day=first, last_day=last)
    assert rule_of(report, "r")["weekly"] == {
        "2026-09-28": 2,
        "2026-10-05": 0,
        "2026-10-12": 0,
        "2026-10-19": 0,
        "2026-10-26": 1,
    }
    assert report["period"] == {
        "first_day": "2026-09-30",
        "last_day": "2026-10-27",
        "days": 28,
        "weeks": 5,
    }


def test_listed_rules_appear_without_decisions_and_rules_are_sorted() -> None:
    decisions = [decision("b_rule", "s00", FIRST), decision("a_rule", "s01", FIRST)]
    report = build_report(
        decisions, students=cohort(2), first_day=FIRST, last_day=LAST, rules=["c_rule", "a_rule"]
    )
    assert [rule["rule_id"] for rule in report["rules"]] == ["a_rule", "b_rule", "c_rule"]
    silent = rule_of(report, "c_rule")
    assert silent["decisions"] == 0
    assert silent["mode"] is None
    assert silent["students_reached"] == 0
    assert set(silent["weekly"].values()) == {0}
    assert len(silent["weekly"]) == 11
    assert silent["lead_time_days"] == {"median": None, "min": None, "max": None}


def test_lead_time_counts_days_from_first_unsuppressed_decision_to_period_end() -> None:
    decisions = [
        decision("r", "s00", date(2026, 11, 20)),  # 23 days before 13 December
        decision("r", "s00", date(2026, 12, 1)),
        decision("r", "s01", date(2026, 11, 1), suppressed="exemption"),  # not counted
        decision("r", "s01", date(2026, 12, 10)),  # 3 days
        decision("r", "s02", date(2026, 11, 13)),  # 30 days
        decision("r", "s03", date(2026, 10, 1), suppressed="data_gap"),  # never reached
        decision("r", "s04", LAST),  # 0 days
    ]
    rule = rule_of(build_report(decisions, students=cohort(6), first_day=FIRST, last_day=LAST), "r")
    assert rule["students_reached"] == 4
    assert rule["lead_time_days"] == {"median": 13.0, "min": 0, "max": 30}
    assert rule["decisions"] == 7
    assert rule["suppressed"] == {"data_gap": 1, "exemption": 1}
    assert rule["suppressed_total"] == 2


def test_modes_and_tiers() -> None:
    decisions = [
        decision("shadowed", "s00", FIRST, mode="shadow", tier="invitation"),
        decision("switched", "s00", FIRST, mode="shadow"),
        decision("switched", "s01", LAST, mode="live"),
    ]
    report = build_report(decisions, students=cohort(2), first_day=FIRST, last_day=LAST)
    shadowed, switched = rule_of(report, "shadowed"), rule_of(report, "switched")
    assert (shadowed["mode"], shadowed["modes"], shadowed["tier"]) == (
        "shadow",
        ["shadow"],
        "invitation",
    )
    assert (switched["mode"], switched["modes"]) == ("mixed", ["live", "shadow"])
    assert shadowed["students_reached"] == 1


def hand_built() -> tuple[list[Decision], list[str], dict[str, str]]:
    """30 students; the rule reaches s00-s09 (plus one suppressed decision for s10).

    Reached, all with outcomes: s00, s01 withdrawn; s02, s03 fail; s04-s09 pass -> 4 of 10.
    Not reached: s10-s29, of whom s26-s29 have no outcome; s10 withdrawn, s11 fail, s12-s25
    pass or distinction -> 2 of 16.
    """
    students = cohort(30)
    outcomes = {s: "pass" for s in students[4:26]}
    outcomes.update(s00="withdrawn", s01="withdrawn", s02="fail", s03="fail")
    outcomes.update(s10="withdrawn", s11="fail", s12="distinction")
    outcomes["outsider"] = "fail"  # not in the replay: ignored
    decisions = [decision("r", s, FIRST + timedelta(days=i)) for i, s in enumerate(students[:10])]
    decisions.append(decision("r", "s10", FIRST, suppressed="exemption"))
    return decisions, students, outcomes


def test_outcome_comparison_by_hand() -> None:
    decisions, students, outcomes = hand_built()
    report = build_report(
        decisions, students=students, first_day=FIRST, last_day=LAST, outcomes=outcomes
    )
    assert report["outcomes"] == {
        "students_with_outcome": 26,
        "adverse": 6,
        "adverse_share": round(6 / 26, 4),
        "suppressed_small_group": False,
    }
    assert rule_of(report, "r")["outcomes"] == {
        "reached": {
            "students": 10,
            "adverse": 4,
            "adverse_share": 0.4,
            "suppressed_small_group": False,
        },
        "not_reached": {
            "students": 16,
            "adverse": 2,
            "adverse_share": 0.125,
            "suppressed_small_group": False,
        },
        "suppressed_small_group": False,
        "lift": 3.2,  # 0.4 / 0.125
        "precision": 0.4,  # 4 of the 10 reached
        "recall": 0.6667,  # 4 of the 6 adverse
    }
    text = " ".join(render_report(report).split())
    assert "Reached 10 of 30 students" in text
    assert "4 of 10 reached students (40%) withdrew or failed" in text
    assert "2 of 16 not reached (12%)" in text
    assert "3.20 times as high" in text


def test_small_reached_group_is_suppressed_with_its_complement() -> None:
    decisions, students, outcomes = hand_built()
    report = build_report(
        decisions[:9], students=students, first_day=FIRST, last_day=LAST, outcomes=outcomes
    )
    comparison = rule_of(report, "r")["outcomes"]
    assert comparison["reached"] == {
        "students": 9,
        "adverse": None,
        "adverse_share": None,
        "suppressed_small_group": True,
    }
    # The other group's count would reveal the small one's (total adverse is reported).
    assert comparison["not_reached"]["adverse"] is None
    assert comparison["not_reached"]["adverse_share"] is None
    assert comparison["not_reached"]["suppressed_small_group"] is False
    assert comparison["suppressed_small_group"] is True
    assert (comparison["lift"], comparison["precision"], comparison["recall"]) == (None,) * 3
    text = " ".join(render_report(report).split())
    assert "withheld because a group has fewer than 10 students" in text


def test_small_not_reached_group_is_suppressed() -> None:
    students = cohort(12)
    outcomes = {s: ("fail" if i % 3 == 0 else "pass") for i, s in enumerate(students)}
    decisions = [decision("r", s, FIRST) for s in students[:11]]
    report = build_report(
        decisions, students=students, first_day=FIRST, last_day=LAST, outcomes=outcomes
    )
    comparison = rule_of(report, "r")["outcomes"]
    assert comparison["reached"]["suppressed_small_group"] is False
    assert comparison["not_reached"] == {
        "students": 1,
        "adverse": None,
        "adverse_share": None,
        "suppressed_small_group": True,
    }
    assert comparison["reached"]["adverse"] is None


def test_small_cohort_hides_the_overall_share() -> None:
    report = build_report(
        [], students=cohort(5), first_day=FIRST, last_day=LAST, outcomes={"s00": "fail"}
    )
    assert report["outcomes"] == {
        "students_with_outcome": 1,
        "adverse": None,
        "adverse_share": None,
        "suppressed_small_group": True,
    }
    assert report["rules"] == []


def test_min_group_is_configurable() -> None:
    decisions, students, outcomes = hand_built()
    report = build_report(
        decisions[:3],
        students=students,
        first_day=FIRST,
        last_day=LAST,
        outcomes=outcomes,
        min_group=3,
    )
    comparison = rule_of(report, "r")["outcomes"]
    assert comparison["reached"]["adverse"] == 3  # s00, s01, s02
    assert comparison["not_reached"]["adverse_share"] == round(3 / 23, 4)


def test_no_outcomes_means_no_comparison() -> None:
    decisions, students, _ = hand_built()
    report = build_report(decisions, students=students, first_day=FIRST, last_day=LAST)
    assert report["outcomes"] is None
    assert rule_of(report, "r")["outcomes"] is None
    assert "Outcomes" not in render_report(report)


@pytest.mark.parametrize(
    ("decisions", "first", "last", "match"),
    [
        ([], LAST, FIRST, "before it starts"),
        ([decision("r", "s00", LAST + timedelta(days=1))], FIRST, LAST, "outside the period"),
        ([decision("r", "s00", FIRST - timedelta(days=1))], FIRST, LAST, "outside the period"),
        ([decision("r", "stranger", FIRST)], FIRST, LAST, "not in the replay"),
    ],
)
def test_inconsistent_input_is_refused(
    decisions: list[Decision], first: date, last: date, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        build_report(decisions, students=cohort(2), first_day=first, last_day=last)


def test_render_report_blocks() -> None:
    decisions = [
        decision("attendance_low", "s00", date(2026, 11, 20), tier="referral"),
        decision(
            "attendance_low", "s01", date(2026, 12, 3), tier="referral", suppressed="exemption"
        ),
        decision("vle_quiet", "s01", date(2026, 11, 10), mode="shadow"),
    ]
    rendered = render_report(
        build_report(decisions, students=cohort(30), first_day=FIRST, last_day=LAST)
    )
    assert all(len(line) <= 100 for line in rendered.splitlines())
    text = " ".join(rendered.split())  # undo the line wrapping
    assert text.startswith("Backtest from 2026-09-28 to 2026-12-13 (77 days): 30 students")
    assert "Rule attendance_low (live, referral tier)" in text
    assert "2 decisions, 1 suppressed (1 exemption)." in text
    assert "Reached 1 of 30 students; first nudged a median of 23 days before the end" in text
    assert "Rule vle_quiet (shadow, prompt tier)" in text
    assert "Would have reached 1 of 30 students; would first have nudged a median of 33 days" in (
        text
    )
    assert text.index("attendance_low") < text.index("vle_quiet")


def test_report_is_json_ready_and_deterministic() -> None:
    decisions, students, outcomes = hand_built()
    report = build_report(
        decisions, students=students, first_day=FIRST, last_day=LAST, outcomes=outcomes
    )
    shuffled = list(decisions)
    random.Random(4).shuffle(shuffled)
    again = build_report(
        shuffled, students=students[::-1], first_day=FIRST, last_day=LAST, outcomes=outcomes
    )
    assert json.dumps(report) == json.dumps(again)
    assert json.loads(json.dumps(report)) == report


PERIOD_DAYS = 60
OUTCOME = st.sampled_from(["pass", "fail", "withdrawn", "distinction"])


@st.composite
def replays(draw: st.DrawFn) -> tuple[list[Decision], list[str], dict[str, str], int]:
    students = cohort(draw(st.integers(1, 40)))
    picks = st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(students),
        st.integers(0, PERIOD_DAYS - 1),
        st.sampled_from(["live", "shadow"]),
        st.sampled_from([None, None, "exemption", "data_gap"]),
    )
    decisions = [
        Decision(f"n{i}", rule, who, FIRST + timedelta(days=day), "prompt", mode, why)
        for i, (rule, who, day, mode, why) in enumerate(draw(st.lists(picks, max_size=60)))
    ]
    outcomes = draw(st.dictionaries(st.sampled_from(students), OUTCOME))
    return decisions, students, outcomes, draw(st.integers(1, 12))


@settings(max_examples=150, deadline=None)
@given(replays())
def test_report_invariants(replay: tuple[list[Decision], list[str], dict[str, str], int]) -> None:
    decisions, students, outcomes, min_group = replay
    last = FIRST + timedelta(days=PERIOD_DAYS - 1)
    report = build_report(
        decisions,
        students=students,
        first_day=FIRST,
        last_day=last,
        outcomes=outcomes,
        min_group=min_group,
    )
    assert sum(rule["decisions"] for rule in report["rules"]) == report["decisions"]
    for rule in report["rules"]:
        assert sum(rule["weekly"].values()) == rule["decisions"]
        assert sum(rule["suppressed"].values()) == rule["suppressed_total"] <= rule["decisions"]
        assert rule["students_reached"] <= len(students)
        lead = rule["lead_time_days"]
        if rule["students_reached"]:
            assert 0 <= lead["min"] <= lead["median"] <= lead["max"] <= PERIOD_DAYS - 1
        comparison = rule["outcomes"]
        groups = (comparison["reached"], comparison["not_reached"])
        assert sum(group["students"] for group in groups) == len(outcomes)
        for group in groups:
            assert group["suppressed_small_group"] == (group["students"] < min_group)
        if comparison["suppressed_small_group"]:
            assert all(group["adverse"] is None for group in groups)
            assert comparison["recall"] is None
        else:
            adverse = sum(group["adverse"] for group in groups)
            assert adverse == report["outcomes"]["adverse"]
    render_report(report)
