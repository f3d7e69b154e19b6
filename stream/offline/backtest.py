"""Backtest report for ``engagement replay``: what each rule would have done over a past period.

Pure functions: the replay collects :class:`Decision` records and the students it saw; this
module counts, times and (given final outcomes) compares them, suppressing small groups. It
also names a report filed for the insights role and picks out its aggregate part.
"""

from __future__ import annotations

import re
import statistics
import textwrap
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from stream.offline.oulad import is_adverse


@dataclass(frozen=True)
class Decision:
    """One rule firing for one student during a replay (suppressed or not)."""

    nudge_id: str
    rule_id: str
    pseudonym: str
    day: date  # the day the rule fired (event time)
    tier: str  # "prompt" | "invitation" | "referral"
    mode: str  # "live" | "shadow"
    suppressed: str | None  # None, or the reason, e.g. "exemption", "data_gap"


def _monday(day: date) -> date:
    """The Monday starting ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())


def _weeks(first_day: date, last_day: date) -> list[date]:
    """The Monday of every ISO week from the one holding ``first_day`` to ``last_day``'s."""
    monday, last = _monday(first_day), _monday(last_day)
    weeks = []
    while monday <= last:
        weeks.append(monday)
        monday += timedelta(days=7)
    return weeks


def _one_or_mixed(values: Collection[str]) -> str | None:
    """The single value, "mixed" when there are several, None when there are none."""
    if not values:
        return None
    return next(iter(values)) if len(values) == 1 else "mixed"


def _share(part: int, whole: int) -> float | None:
    """``part / whole`` rounded to 4 places, or None when ``whole`` is zero."""
    return round(part / whole, 4) if whole else None


def _group(size: int, adverse: int, *, small: bool, hidden: bool) -> dict[str, Any]:
    """One side of an outcome comparison, with its adverse count hidden when it could identify."""
    return {
        "students": size,
        "adverse": None if hidden else adverse,
        "adverse_share": None if hidden else _share(adverse, size),
        "suppressed_small_group": small,
    }


def _compare(
    reached: set[str], known: Mapping[str, bool], total_adverse: int, min_group: int
) -> dict[str, Any]:
    """Adverse-outcome shares among reached and not-reached students with a known outcome.

    If either group is smaller than ``min_group`` every adverse count for the rule is withheld:
    the other group's count plus the overall total would otherwise reveal the small one's.
    """
    reached_known = [student for student in reached if student in known]
    size_in = len(reached_known)
    size_out = len(known) - size_in
    adverse_in = sum(known[student] for student in reached_known)
    adverse_out = total_adverse - adverse_in
    small_in, small_out = size_in < min_group, size_out < min_group
    hidden = small_in or small_out
    share_in, share_out = _share(adverse_in, size_in), _share(adverse_out, size_out)
    lift = None
    if not hidden and share_in is not None and share_out:
        lift = round(share_in / share_out, 4)
    return {
        "reached": _group(size_in, adverse_in, small=small_in, hidden=hidden),
        "not_reached": _group(size_out, adverse_out, small=small_out, hidden=hidden),
        "suppressed_small_group": hidden,
        "lift": lift,
        "precision": None if hidden else share_in,
        "recall": None if hidden else _share(adverse_in, total_adverse),
    }


def _lead_times(firsts: Mapping[str, date], last_day: date) -> dict[str, Any]:
    """Days from each reached student's first nudge to the end of the period: median, min, max."""
    leads = sorted((last_day - first).days for first in firsts.values())
    if not leads:
        return {"median": None, "min": None, "max": None}
    return {"median": float(statistics.median(leads)), "min": leads[0], "max": leads[-1]}


def _rule_report(
    rule_id: str,
    decisions: Sequence[Decision],
    weeks: Sequence[date],
    last_day: date,
    known: Mapping[str, bool] | None,
    total_adverse: int,
    min_group: int,
) -> dict[str, Any]:
    """The per-rule block of the report."""
    modes = sorted({decision.mode for decision in decisions})
    tiers = sorted({decision.tier for decision in decisions})
    suppressed = Counter(d.suppressed for d in decisions if d.suppressed is not None)
    per_week = dict.fromkeys(weeks, 0)
    firsts: dict[str, date] = {}
    for decision in decisions:
        per_week[_monday(decision.day)] += 1
        if decision.suppressed is None:
            seen = firsts.get(decision.pseudonym)
            if seen is None or decision.day < seen:
                firsts[decision.pseudonym] = decision.day
    return {
        "rule_id": rule_id,
        "mode": _one_or_mixed(modes),
        "modes": modes,
        "tier": _one_or_mixed(tiers),
        "tiers": tiers,
        "decisions": len(decisions),
        "suppressed": dict(sorted(suppressed.items())),
        "suppressed_total": sum(suppressed.values()),
        "students_reached": len(firsts),
        "weekly": {monday.isoformat(): count for monday, count in per_week.items()},
        "lead_time_days": _lead_times(firsts, last_day),
        "outcomes": (
            None if known is None else _compare(set(firsts), known, total_adverse, min_group)
        ),
    }


def _check(
    decisions: Sequence[Decision], students: Collection[str], first_day: date, last_day: date
) -> None:
    """Refuse a period that ends before it starts, or decisions outside the period or cohort."""
    if last_day < first_day:
        msg = f"period ends ({last_day}) before it starts ({first_day})"
        raise ValueError(msg)
    for decision in decisions:
        if not first_day <= decision.day <= last_day:
            msg = f"decision {decision.nudge_id} on {decision.day} is outside the period"
            raise ValueError(msg)
        if decision.pseudonym not in students:
            msg = f"decision {decision.nudge_id} is for a student not in the replay"
            raise ValueError(msg)


def build_report(
    decisions: Sequence[Decision],
    *,
    students: Collection[str],
    first_day: date,
    last_day: date,
    outcomes: Mapping[str, str] | None = None,
    min_group: int = 10,
    rules: Sequence[str] = (),
) -> dict[str, Any]:
    """Summarise a replay's decisions per rule as a JSON-ready dict (dates as ISO strings).

    ``outcomes`` (pseudonym -> "pass", "withdrawn", ...) adds the adverse-outcome comparison;
    groups smaller than ``min_group`` are suppressed. ``rules`` are listed even if silent.
    """
    cohort = set(students)
    _check(decisions, cohort, first_day, last_day)
    weeks = _weeks(first_day, last_day)
    by_rule: dict[str, list[Decision]] = {rule_id: [] for rule_id in rules}
    for decision in decisions:
        by_rule.setdefault(decision.rule_id, []).append(decision)

    known: dict[str, bool] | None = None
    summary: dict[str, Any] | None = None
    total_adverse = 0
    if outcomes is not None:
        known = {s: is_adverse(outcomes[s]) for s in sorted(cohort) if s in outcomes}
        total_adverse = sum(known.values())
        small = len(known) < min_group
        summary = {
            "students_with_outcome": len(known),
            "adverse": None if small else total_adverse,
            "adverse_share": None if small else _share(total_adverse, len(known)),
            "suppressed_small_group": small,
        }
    return {
        "period": {
            "first_day": first_day.isoformat(),
            "last_day": last_day.isoformat(),
            "days": (last_day - first_day).days + 1,
            "weeks": len(weeks),
        },
        "students": len(cohort),
        "decisions": len(decisions),
        "min_group": min_group,
        "outcomes": summary,
        "rules": [
            _rule_report(
                rule_id, by_rule[rule_id], weeks, last_day, known, total_adverse, min_group
            )
            for rule_id in sorted(by_rule)
        ],
    }


def _plural(count: int, noun: str) -> str:
    """``"1 student"``, ``"2 students"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _percent(share: float | None) -> str:
    """A share as a whole percentage."""
    return "n/a" if share is None else f"{share * 100:.0f}%"


def _days(value: float) -> str:
    """A day count without a trailing ``.0``."""
    return _plural(int(value), "day") if value == int(value) else f"{value:g} days"


def _outcome_lines(comparison: Mapping[str, Any], min_group: int) -> list[str]:
    """Sentences comparing adverse outcomes among reached and not-reached students."""
    reached, other = comparison["reached"], comparison["not_reached"]
    if comparison["suppressed_small_group"]:
        return [
            f"Outcomes: withheld because a group has fewer than {min_group} students "
            f"({reached['students']} reached, {other['students']} not reached, "
            "with a known outcome)."
        ]
    lift = comparison["lift"]
    ratio = "" if lift is None else f": a rate {lift:.2f} times as high"
    return [
        f"Outcomes: {reached['adverse']} of {reached['students']} reached students "
        f"({_percent(reached['adverse_share'])}) withdrew or failed, against "
        f"{other['adverse']} of {other['students']} not reached "
        f"({_percent(other['adverse_share'])}){ratio}.",
        f"Precision {_percent(comparison['precision'])} (reached students who withdrew or "
        f"failed); recall {_percent(comparison['recall'])} (students who withdrew or failed "
        "that it reached).",
    ]


def _rule_lines(rule: Mapping[str, Any], students: int, min_group: int) -> list[str]:
    """The plain-text block for one rule."""
    mode = rule["mode"] or "no decisions"
    tier = f", {rule['tier']} tier" if rule["tier"] else ""
    lines = [f"Rule {rule['rule_id']} ({mode}{tier})"]
    suppressed = ", ".join(f"{count} {reason}" for reason, count in rule["suppressed"].items())
    detail = f" ({suppressed})" if suppressed else ""
    lines.append(
        f"{_plural(rule['decisions'], 'decision')}, {rule['suppressed_total']} suppressed{detail}."
    )
    shadow = rule["mode"] == "shadow"
    verb = "Would have reached" if shadow else "Reached"
    first = "would first have nudged" if shadow else "first nudged"
    reach = f"{verb} {rule['students_reached']} of {_plural(students, 'student')}"
    lead = rule["lead_time_days"]
    if lead["median"] is None:
        lines.append(reach + ".")
    else:
        lines.append(
            f"{reach}; {first} a median of {_days(lead['median'])} before the end of the "
            f"period (range {lead['min']} to {_days(lead['max'])})."
        )
    weekly = ", ".join(f"{monday} {count}" for monday, count in rule["weekly"].items())
    lines.append(f"Per week (by Monday): {weekly}.")
    if rule["outcomes"] is not None:
        lines.extend(_outcome_lines(rule["outcomes"], min_group))
    return lines


def render_report(report: Mapping[str, Any]) -> str:
    """A short plain-text version of :func:`build_report`'s output for staff to read."""
    period = report["period"]
    header = (
        f"Backtest from {period['first_day']} to {period['last_day']} "
        f"({_plural(period['days'], 'day')}): {_plural(report['students'], 'student')}, "
        f"{_plural(report['decisions'], 'decision')}."
    )
    blocks = [textwrap.fill(header, width=100)]
    summary = report["outcomes"]
    if summary is not None:
        if summary["suppressed_small_group"]:
            known = f"Outcomes known for {summary['students_with_outcome']} students (withheld)."
        else:
            known = (
                f"Outcomes known for {summary['students_with_outcome']} students, of whom "
                f"{summary['adverse']} ({_percent(summary['adverse_share'])}) withdrew or failed."
            )
        blocks.append(known)
    if any("shadow" in rule["modes"] for rule in report["rules"]):
        blocks.append(
            "Shadow-mode rules sent nothing: their figures are what they would have done."
        )
    for rule in report["rules"]:
        head, *body = _rule_lines(rule, report["students"], report["min_group"])
        wrapped = [textwrap.fill(line, 98, subsequent_indent="    ") for line in body]
        blocks.append("\n  ".join([head, *wrapped]))
    return "\n\n".join(blocks) + "\n"


# -- reports filed for the insights role (``engagement replay --publish``) ------------------

REPORTS_DIR = "reports"  # under ENGAGEMENT_STATE_DIR
REPORT_NAME = re.compile(r"backtest-\d{8}T\d{6}Z")
AGGREGATE_PARTS = (
    "period", "students", "decisions", "min_group", "outcomes", "rules", "replay", "ground_truth",
)  # fmt: skip
PSEUDONYM = re.compile(r"p_[0-9a-f]{32}")


def report_name(moment: datetime) -> str:
    """The name a filed report gets: when it was filed, UTC (``backtest-20261203T154500Z``)."""
    return f"backtest-{moment:%Y%m%dT%H%M%SZ}"


def aggregate_part(report: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a report that hold counts only (everything :func:`build_report` and the
    replay write); anything else a file holds is left out."""
    return {part: report[part] for part in AGGREGATE_PARTS if part in report}


def strings_in(value: Any) -> set[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, Mapping):
        found = set(map(str, value))
        for item in value.values():
            found |= strings_in(item)
        return found
    if isinstance(value, list | tuple):
        return set().union(*(strings_in(item) for item in value)) if value else set()
    return set()


def pseudonyms_in(value: Any) -> bool:
    """Whether a pseudonym (``p_`` and 32 hex digits) appears anywhere in a JSON value."""
    return any(PSEUDONYM.search(text) for text in strings_in(value))
