"""The rules file: the engagement score and the rules staff configure (schema v2).

A rule has an id and a version (both part of every nudge id it makes), a plain-English
description, the sources it reads, a window, a threshold, a tier, a cooldown, channels, a
message template and a mode: ``live`` (decisions go to the notifier), ``shadow`` (decisions are
logged as shadow interventions and never sent) or ``off``. A window rule also says how much
evidence it needs before it may fire: ``min_days`` of its window within the student's term
(the whole window unless set) and, for attendance, ``min_sessions`` expected sessions.
"""

from __future__ import annotations

import string
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.errors import ConfigError
from schemas.nudges import Channel, Route, Tier
from schemas.sources import RegisteredSource

RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{2,63}$")]
# The sources a rule may read: any registered feed (schemas.sources). The engagement model
# counts every feed's events per student and day (agents.model.score.DayFacts), so a new feed
# is a schema and a registration, and rules can name it at once.
SourceName = RegisteredSource


class Mode(StrEnum):
    """Whether a rule's decisions are acted on."""

    LIVE = "live"
    SHADOW = "shadow"
    OFF = "off"


class Kind(StrEnum):
    """What a rule measures."""

    INACTIVITY = "inactivity"
    ATTENDANCE_RATE = "attendance_rate"
    LOW_SCORE = "low_score"
    SCORE_DROP = "score_drop"
    NO_CONTACT = "no_contact"
    ESCALATION = "escalation"


# The values a message template may use, per kind (every kind also gets COMMON_FIELDS).
# ``window`` is the window the decision actually read, in words: "14 days", or "the 9 days
# since term started" when the rule may fire on part of its window (``min_days``).
COMMON_FIELDS = frozenset(
    {"window_days", "window", "since", "until", "score", "band", "threshold", "rule", "description"}
)
# Kinds whose evidence is the daily score: their window is covered from the first day with a
# score made wholly of days in the student's term.
SCORE_KINDS = frozenset({Kind.LOW_SCORE, Kind.SCORE_DROP})
KIND_FIELDS: dict[Kind, frozenset[str]] = {
    Kind.INACTIVITY: frozenset({"days", "last_active", "sources"}),
    Kind.ATTENDANCE_RATE: frozenset({"attended", "expected", "percent", "threshold_percent"}),
    Kind.LOW_SCORE: frozenset({"days"}),
    Kind.SCORE_DROP: frozenset({"baseline", "drop"}),
    Kind.NO_CONTACT: frozenset({"days", "last_contact"}),
    Kind.ESCALATION: frozenset({"prompt_day", "prompt_rule", "score_then"}),
}


class Rule(BaseModel):
    """One rule; which fields matter depends on ``kind`` (checked below)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: RuleId
    version: int = Field(ge=1)
    kind: Kind
    description: str = Field(min_length=10)
    sources: tuple[SourceName, ...] = Field(min_length=1)
    window_days: int = Field(ge=1, le=120)
    threshold: float | None = None
    min_sessions: int = Field(default=1, ge=1)
    min_days: int | None = Field(
        default=None,
        ge=1,
        le=120,
        description="Fewest days of the window that must lie in the student's term before the "
        "rule may fire (None: the whole window; score_drop: half of it).",
    )
    tier: Tier
    route: Route
    cooldown_days: int = Field(ge=0, le=365)
    channels: tuple[Channel, ...] = ()
    message: str = Field(min_length=10)
    mode: Mode = Mode.LIVE
    applies_to: Literal["all", "sponsored_visa"] = "all"
    after: tuple[RuleId, ...] = Field(
        default=(), description="Escalation only: the prompt rules it follows (empty: any)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        self._check_threshold()
        self._check_routing()
        if len(set(self.sources)) != len(self.sources):
            msg = "sources: must not repeat"
            raise ValueError(msg)
        if self.kind is Kind.ATTENDANCE_RATE and self.sources != ("attendance",):
            msg = "sources: an attendance_rate rule reads attendance only: sources = ['attendance']"
            raise ValueError(msg)
        if self.after and self.kind is not Kind.ESCALATION:
            msg = "after: only escalation rules follow other rules"
            raise ValueError(msg)
        self._check_min_days()
        self._check_template()
        return self

    def _check_min_days(self) -> None:
        if self.min_days is None:
            return
        if self.kind is Kind.ESCALATION:
            msg = (
                "min_days: an escalation rule follows a prompt and reads no window of its own; "
                "remove min_days"
            )
            raise ValueError(msg)
        if self.min_days > self.window_days:
            msg = (
                f"min_days: {self.min_days} is more than the window of {self.window_days} days; "
                f"use at most {self.window_days} (or leave it out to need the whole window)"
            )
            raise ValueError(msg)

    @property
    def required_days(self) -> int:
        """Days of the window that must lie in the student's term before the rule may fire.

        Unset, the whole window; for ``score_drop`` half of it (the baseline is an average,
        and a new student has a usable one after half the window).
        """
        if self.min_days is not None:
            return self.min_days
        if self.kind is Kind.SCORE_DROP:
            return (self.window_days + 1) // 2
        return self.window_days

    def _check_threshold(self) -> None:
        needs = {
            Kind.ATTENDANCE_RATE: (0.0, 1.0, "a share of sessions, e.g. 0.5"),
            Kind.LOW_SCORE: (0.0, 5.0, "a score from 0 to 5"),
            Kind.SCORE_DROP: (0.0, 5.0, "a drop in score points, e.g. 2"),
            Kind.ESCALATION: (0.0, 5.0, "the score that counts as recovered, e.g. 2"),
        }
        if self.kind in needs:
            low, high, what = needs[self.kind]
            if self.threshold is None or not low < self.threshold <= high:
                msg = (
                    f"threshold: this kind of rule needs a threshold in ({low:g}, {high:g}]: {what}"
                )
                raise ValueError(msg)
        elif self.threshold is not None:
            msg = f"threshold: a {self.kind.value} rule has no threshold; remove it"
            raise ValueError(msg)

    def _check_routing(self) -> None:
        if self.tier is Tier.PROMPT:
            if self.route is not Route.STUDENT or not self.channels:
                msg = (
                    "route: a prompt goes to the student: route = 'student' and at least one "
                    "channel"
                )
                raise ValueError(msg)
        elif self.route is Route.STUDENT:
            msg = (
                f"route: a {self.tier.value} needs a member of staff: route to 'personal_tutor', "
                "'support' or 'compliance', never straight to the student"
            )
            raise ValueError(msg)
        if self.applies_to == "sponsored_visa" and self.tier is Tier.PROMPT:
            msg = "tier: visa-compliance rules are never sent to the student: use tier 'referral'"
            raise ValueError(msg)

    def _check_template(self) -> None:
        allowed = COMMON_FIELDS | KIND_FIELDS[self.kind]
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(self.message) if name}
        except ValueError as exc:
            msg = f"message: not a valid template: {exc}"
            raise ValueError(msg) from None
        unknown = sorted(names - allowed)
        if unknown:
            msg = (
                f"message: unknown placeholder(s) {', '.join(unknown)}; "
                f"a {self.kind.value} rule can use {', '.join(sorted(allowed))}"
            )
            raise ValueError(msg)


class ScoreWeights(BaseModel):
    """Relative weight of each input of the engagement score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attendance: float = Field(default=2.0, ge=0)
    campus_days: float = Field(default=1.0, ge=0)
    vle_days: float = Field(default=1.5, ge=0)
    vle_actions: float = Field(default=0.5, ge=0)


class ScoreCaps(BaseModel):
    """The count at which an input reaches full marks: more than this adds nothing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    campus_days: int = Field(default=4, ge=1, le=7)
    vle_days: int = Field(default=5, ge=1, le=7)
    vle_actions: int = Field(default=60, ge=1)


class ScoreModel(BaseModel):
    """The daily 0-5 engagement score over the trailing ``window_days``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_days: int = Field(default=7, ge=1, le=28)
    weights: ScoreWeights = ScoreWeights()
    caps: ScoreCaps = ScoreCaps()

    @model_validator(mode="after")
    def _some_weight(self) -> ScoreModel:
        if sum(self.weights.model_dump().values()) <= 0:
            msg = "at least one score weight must be above 0"
            raise ValueError(msg)
        for name in ("campus_days", "vle_days"):
            if getattr(self.caps, name) > self.window_days:
                msg = (
                    f"caps.{name} is {getattr(self.caps, name)} but the window has only "
                    f"{self.window_days} days: full marks would be out of reach"
                )
                raise ValueError(msg)
        return self


class RuleSet(BaseModel):
    """A versioned set of rules with the score they share; ids are unique."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[2]
    score: ScoreModel = ScoreModel()
    rules: tuple[Rule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> RuleSet:
        ids = [rule.id for rule in self.rules]
        duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
        if duplicates:
            msg = f"rule ids must be unique; repeated: {', '.join(duplicates)}"
            raise ValueError(msg)
        prompts = {r.id for r in self.rules if r.tier is Tier.PROMPT}
        for rule in self.rules:
            unknown = sorted(set(rule.after) - prompts)
            if unknown:
                msg = f"rule {rule.id} follows {', '.join(unknown)}, which are not prompt rules"
                raise ValueError(msg)
        return self

    @property
    def active(self) -> tuple[Rule, ...]:
        """The rules that are evaluated (live or shadow), escalations last."""
        rules = [r for r in self.rules if r.mode is not Mode.OFF]
        return tuple(sorted(rules, key=lambda r: r.kind is Kind.ESCALATION))

    @property
    def history_days(self) -> int:
        """How many days of history one evaluation may look at."""
        longest = max((r.window_days for r in self.rules), default=1)
        return longest + self.score.window_days + 7


class RulesFileError(ConfigError):
    """The rules file cannot be used; the message names the file, the rule and the field."""


DEFAULT_RULES = Path(__file__).with_name("rules.default.toml")


def _line_of(text: str, index: int, field: str | None) -> int | None:
    """The line of rule ``index``'s ``field`` (or of its [[rules]] header), 1-based."""
    lines = text.splitlines()
    headers = [n for n, line in enumerate(lines) if line.strip() == "[[rules]]"]
    if index >= len(headers):
        return None
    start = headers[index]
    end = headers[index + 1] if index + 1 < len(headers) else len(lines)
    if field:
        for n in range(start + 1, end):
            if lines[n].split("=", 1)[0].strip() == field:
                return n + 1
    return start + 1


def _where(data: dict[str, Any], loc: list[Any], text: str, named: str = "") -> str:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = data["rules"] if isinstance(data.get("rules"), list) else []
        entry = rules[loc[1]] if loc[1] < len(rules) else None
        rule_id = entry.get("id", "?") if isinstance(entry, dict) else "?"
        field = ".".join(map(str, loc[2:])) or named
        line = _line_of(text, loc[1], field.split(".")[0] if field else None)
        at = f"line {line}: " if line else ""
        return f"{at}rule #{loc[1] + 1} (id {rule_id!r}), field {field or '(the rule as a whole)'}"
    return ".".join(str(part) for part in loc) or "(the file as a whole)"


def load_rules(path: Path | None = None) -> RuleSet:
    """Read and validate a rules file (the shipped defaults when ``path`` is None)."""
    path = path or DEFAULT_RULES
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        msg = f"cannot read rules file {path}: {exc.strerror}"
        raise RulesFileError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"rules file {path} is not valid TOML: {exc}"
        raise RulesFileError(msg) from None
    if data.get("schema_version") == 1:
        msg = (
            f"rules file {path} is schema_version 1; this worker reads version 2: set "
            "schema_version = 2, replace 'enabled' with mode = 'live' | 'shadow' | 'off', and "
            f"add the fields each rule now needs (see {DEFAULT_RULES.name})"
        )
        raise RulesFileError(msg)
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            # A discriminated union adds the kind to the location; drop the noise.
            loc = [part for part in error["loc"] if part not in ("function-after[_consistent]",)]
            problem = error["msg"].removeprefix("Value error, ")
            # A check across fields starts its message with the field it is about.
            named, _, rest = problem.partition(": ")
            if rest and named in Rule.model_fields:
                problem = rest
            else:
                named = ""
            problems.append(f"  - {_where(data, loc, text, named)}: {problem}")
        msg = f"rules file {path} is not valid:\n" + "\n".join(problems)
        raise RulesFileError(msg) from None
