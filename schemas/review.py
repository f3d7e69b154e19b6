"""The human review queue: who works which queue (the teams file), and one queued item (v1).

Invitations and referrals never reach a student automatically (DESIGN 6): each waits in a
queue for a member of staff, and an item nobody decides within ``escalate_after_hours`` goes to
the lead of the team its route belongs to. The teams file names those teams; the roster names
each student's personal tutor.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.common import SCHEMA_VERSION, WireModel
from schemas.errors import ConfigError
from schemas.nudges import Explanation, Route, Tier
from schemas.signals import Pseudonym

TEAMS_SCHEMA_VERSION: Final = 1
DEFAULT_TEAMS = Path(__file__).resolve().parent.parent / "sinks" / "teams.default.toml"

# The team that owns each staff route: its lead takes escalations, and for the personal tutor
# route its queue holds the students with no tutor on record.
TEAM_FOR_ROUTE: Final[Mapping[Route, str]] = {
    Route.PERSONAL_TUTOR: "personal_tutors",
    Route.SUPPORT: "support",
    Route.COMPLIANCE: "compliance",
}
STAFF_ROUTES: Final = tuple(TEAM_FOR_ROUTE)

StaffId = Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)]
TeamName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$")]


def queue_name(route: Route, tutor: str | None) -> str | None:
    """The review queue an item on ``route`` joins: its personal tutor's when it has one, else
    its route's team's; None for a route that goes to the student, never to a queue."""
    if route is Route.PERSONAL_TUTOR and tutor and tutor.strip():
        return f"tutor:{tutor.strip()}"
    team = TEAM_FOR_ROUTE.get(route)
    return None if team is None else f"team:{team}"


class TeamsFileError(ConfigError):
    """The teams file cannot be used; the message names the file, the team and the field."""


class Team(BaseModel):
    """One team: its lead takes escalated items; lead and members work the team's queue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lead: StaffId
    members: tuple[StaffId, ...] = ()

    @field_validator("lead")
    @classmethod
    def _lead_named(cls, lead: str) -> str:
        if not lead:
            msg = "must not be empty: set it to the staff id of the person who takes escalations"
            raise ValueError(msg)
        return lead

    @field_validator("members")
    @classmethod
    def _members_named(cls, members: tuple[str, ...]) -> tuple[str, ...]:
        if any(not member for member in members):
            msg = "an empty staff id: remove it or write the member's staff id"
            raise ValueError(msg)
        repeated = sorted({m for m in members if members.count(m) > 1})
        if repeated:
            msg = f"{', '.join(repeated)} listed more than once: list each member once"
            raise ValueError(msg)
        return members

    def works(self, staff_id: str) -> bool:
        """Whether ``staff_id`` works this team's queue (a member or the lead)."""
        return staff_id == self.lead or staff_id in self.members


class TeamsConfig(BaseModel):
    """The teams file: when items escalate, and who leads and works each team's queue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1]
    escalate_after_hours: float = Field(
        description="Hours an undecided item waits before it goes to the team lead (> 0)."
    )
    teams: dict[TeamName, Team]

    @field_validator("escalate_after_hours")
    @classmethod
    def _positive(cls, hours: float) -> float:
        if not math.isfinite(hours) or hours <= 0:
            msg = f"is {hours:g}; it must be a number of hours above 0, e.g. 72"
            raise ValueError(msg)
        return hours

    @property
    def escalate_after_s(self) -> float:
        """The escalation delay in seconds."""
        return self.escalate_after_hours * 3600.0

    def team_for(self, route: Route) -> Team | None:
        """The team that owns ``route``, if the file has one."""
        name = TEAM_FOR_ROUTE.get(route)
        return self.teams.get(name) if name is not None else None

    def missing(self, routes: Iterable[Route]) -> list[str]:
        """Names of the teams ``routes`` need that the file does not define."""
        names = {TEAM_FOR_ROUTE[r] for r in routes if r in TEAM_FOR_ROUTE}
        return sorted(names - set(self.teams))


class ReviewItem(WireModel):
    """One invitation or referral waiting for (or decided by) a member of staff."""

    schema_version: Literal[1] = SCHEMA_VERSION
    nudge_id: str
    pseudonym: Pseudonym
    rule_id: str
    rule_version: int
    tier: Tier
    route: Route
    queue: str = Field(description="e.g. 'tutor:T001' or 'team:support'.")
    queued_at: AwareDatetime = Field(description="Wall-clock time it entered the queue.")
    created_at: AwareDatetime = Field(description="Event time at which the rule fired.")
    summary: str
    explanation: Explanation
    escalated_to: str | None = Field(default=None, description="The team lead it went to.")
    escalated_at: AwareDatetime | None = None
    decided: bool = False

    @model_validator(mode="after")
    def _needs_staff(self) -> ReviewItem:
        if self.tier is Tier.PROMPT or self.route not in TEAM_FOR_ROUTE:
            msg = "only invitations and referrals routed to staff are reviewed"
            raise ValueError(msg)
        return self


def _format_errors(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        problem = error["msg"].removeprefix("Value error, ")
        if loc[:1] == ["teams"] and len(loc) >= 2:
            field = ".".join(loc[2:]) or "(the team as a whole)"
            if error["type"] == "missing":
                problem = f"missing: add {loc[2]} = ... to [teams.{loc[1]}]"
            elif error["type"] == "extra_forbidden":
                problem = "not a team setting (a team has lead and members): remove it"
            where = f"team {loc[1]!r}, field {field}"
        elif loc == ["teams"] and error["type"] == "missing":
            where, problem = "teams", "missing: add a [teams.<name>] table for each team"
        elif error["type"] == "missing":
            where, problem = loc[0], f"missing: add {loc[0]} = ... at the top of the file"
        elif error["type"] == "extra_forbidden":
            where = ".".join(loc)
            problem = "not a setting of the teams file (see teams.default.toml): remove it"
        else:
            where = ".".join(loc) or "(the file as a whole)"
        problems.append(f"  - {where}: {problem}")
    return problems


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"cannot read teams file {path}: {exc.strerror}"
        raise TeamsFileError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"teams file {path} is not valid TOML: {exc}"
        raise TeamsFileError(msg) from None


def load_teams(path: Path | None = None, *, routes: Iterable[Route] = STAFF_ROUTES) -> TeamsConfig:
    """Read and validate a teams file (the packaged demo file when ``path`` is None).

    ``routes`` are the staff routes the rules use (by default all of them); each needs its
    team in the file, because that team's lead takes the route's escalations.
    """
    path = path or DEFAULT_TEAMS
    data = _read(path)
    version = data.get("schema_version")
    if version is not None and version != TEAMS_SCHEMA_VERSION:
        msg = (
            f"teams file {path}: schema_version {version!r} is not supported; this worker reads "
            f"version {TEAMS_SCHEMA_VERSION}: set schema_version = {TEAMS_SCHEMA_VERSION} and "
            f"check the file against {DEFAULT_TEAMS.name}"
        )
        raise TeamsFileError(msg)
    try:
        config = TeamsConfig.model_validate(data)
    except ValidationError as exc:
        msg = f"teams file {path} is not valid:\n" + "\n".join(_format_errors(exc))
        raise TeamsFileError(msg) from None
    routes = tuple(routes)
    missing = config.missing(routes)
    if missing:
        needed = [r.value for r in routes if TEAM_FOR_ROUTE.get(r) in missing]
        msg = (
            f"teams file {path} has no team {', '.join(repr(m) for m in missing)}, but the rules "
            f"route items to {', '.join(sorted(set(needed)))}: add "
            + " and ".join(f"[teams.{m}] with a lead and members" for m in missing)
        )
        raise TeamsFileError(msg)
    return config
