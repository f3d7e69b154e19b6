"""The rules file: which rules run, with which thresholds, tier and channels (schema v1)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.nudges import Channel, Tier

RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{2,63}$")]


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: RuleId
    version: int = Field(ge=1)
    description: str = Field(min_length=10)
    tier: Tier = Tier.PROMPT
    channels: tuple[Channel, ...] = Field(default=(Channel.EMAIL,), min_length=1)
    enabled: bool = True


class VleAbsenceRule(_Rule):
    """No VLE activity for ``days`` days (an absence rule: fired by the watermark sweep)."""

    kind: Literal["vle_absence"]
    days: int = Field(ge=1, le=90)


class AttendanceRateRule(_Rule):
    """Attendance below ``threshold`` of timetabled sessions over the last ``window_days``."""

    kind: Literal["attendance_rate"]
    window_days: int = Field(ge=1, le=120)
    threshold: float = Field(gt=0, le=1)
    min_sessions: int = Field(ge=1)
    cooldown_days: int = Field(ge=1, le=365)


_R = TypeVar("_R", bound=_Rule)

Rule = Annotated[VleAbsenceRule | AttendanceRateRule, Field(discriminator="kind")]


class RuleSet(BaseModel):
    """A versioned set of rules; ids are unique."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1]
    rules: tuple[Rule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        ids = [rule.id for rule in self.rules]
        duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
        if duplicates:
            msg = f"rule ids must be unique; repeated: {', '.join(duplicates)}"
            raise ValueError(msg)
        absence = [r.id for r in self.rules if isinstance(r, VleAbsenceRule) and r.enabled]
        if len(absence) > 1:
            msg = (
                "at most one vle_absence rule may be enabled (they share one absence clock); "
                f"enabled: {', '.join(absence)}"
            )
            raise ValueError(msg)
        return self

    def of_kind(self, kind: type[_R]) -> list[_R]:
        """The enabled rules of one kind."""
        return [rule for rule in self.rules if isinstance(rule, kind) and rule.enabled]


class RulesFileError(ValueError):
    """The rules file cannot be used; the message names the file, the rule and the field."""


DEFAULT_RULES = Path(__file__).with_name("rules.default.toml")


def load_rules(path: Path | None = None) -> RuleSet:
    """Read and validate a rules file (the shipped defaults when ``path`` is None)."""
    path = path or DEFAULT_RULES
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"cannot read rules file {path}: {exc.strerror}"
        raise RulesFileError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"rules file {path} is not valid TOML: {exc}"
        raise RulesFileError(msg) from None
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = list(error["loc"])
            where = ".".join(str(part) for part in loc)
            if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
                rules = data["rules"] if isinstance(data.get("rules"), list) else []
                entry = rules[loc[1]] if loc[1] < len(rules) else None
                rule_id = entry.get("id", "?") if isinstance(entry, dict) else "?"
                where = f"rule #{loc[1] + 1} (id {rule_id!r}), field {'.'.join(map(str, loc[3:]))}"
            problems.append(f"  - {where}: {error['msg']}")
        msg = f"rules file {path} is not valid:\n" + "\n".join(problems)
        raise RulesFileError(msg) from None
