"""A rule set in words, as ``engagement rules check`` prints it for the staff who tune it."""

from __future__ import annotations

from schemas.nudges import Tier
from schemas.rules import SCORE_KINDS, Kind, Mode, Rule, RuleSet

_TIER_WORDS = {
    Tier.PROMPT: "an automated prompt to the student",
    Tier.INVITATION: "an invitation for a member of staff to get in touch",
    Tier.REFERRAL: "a referral for staff review",
}


def _evidence(rule: Rule) -> str | None:
    """How much of its window must lie in the student's term before the rule may fire
    (term: from the roster's term start, else from the student's first record)."""
    if rule.kind is Kind.ESCALATION:
        return None
    lie = "have scores from" if rule.kind in SCORE_KINDS else "lie in"
    if rule.required_days >= rule.window_days:
        text = f"Decides only once all {rule.window_days} days {lie} the student's term"
    else:
        text = (
            f"Decides once at least {rule.required_days} of its {rule.window_days} days {lie} "
            "the student's term, saying how many it read"
        )
    if rule.kind is Kind.ATTENDANCE_RATE:
        text += f", with at least {rule.min_sessions} expected sessions"
    return text + "."


def describe(rules: RuleSet) -> str:
    """The rule set in words: the score, then what each rule reads and leads to."""
    score = rules.score
    w, caps = score.weights, score.caps
    lines = [
        f"Engagement score: 0-5 over the last {score.window_days} days, from attendance "
        f"(weight {w.attendance:g}), days on campus (weight {w.campus_days:g}, full marks at "
        f"{caps.campus_days}), days active online (weight {w.vle_days:g}, full marks at "
        f"{caps.vle_days}) and online actions (weight {w.vle_actions:g}, full marks at "
        f"{caps.vle_actions}).",
        "",
    ]
    for rule in rules.rules:
        lines.append(f"{rule.id} (version {rule.version}, {rule.mode.value})")
        lines.append(f"  {rule.description}")
        who = rule.route.value.replace("_", " ")
        action = _TIER_WORDS[rule.tier]
        channels = f" by {', '.join(c.value for c in rule.channels)}" if rule.channels else ""
        lines.append(f"  Leads to {action} ({who}{channels}).")
        cooldown = f"at most once per episode, and not again within {rule.cooldown_days} days"
        scope = " Sponsored-visa students only." if rule.applies_to == "sponsored_visa" else ""
        lines.append(
            f"  Reads {', '.join(rule.sources)} over {rule.window_days} days; fires {cooldown}."
            + scope
        )
        evidence = _evidence(rule)
        if evidence:
            lines.append(f"  {evidence}")
        if rule.mode is Mode.SHADOW:
            lines.append("  Shadow: decisions are logged for review and never sent.")
        elif rule.mode is Mode.OFF:
            lines.append("  Off: not evaluated.")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
