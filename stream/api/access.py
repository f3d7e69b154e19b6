"""Who may read one student's data: the roles' rules as a pure function of the facts.

Student: themselves only. Personal tutor: their tutees (the roster's ``personal_tutor``).
Support: students with a review item routed to a team the reader leads or is a member of
(the teams file). Compliance: sponsored-visa students. Insights and ops: never one student.
No I/O here: the routes read the facts (roster entry, review routes) and ask. A refusal is
answered exactly as a student who does not exist (404), so nobody learns who is on record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas.access import Principal, Role
from schemas.review import TEAM_FOR_ROUTE, TeamsConfig

# The order in which a reader's roles are tried: the narrowest grant is named in the audit.
ORDER = (Role.STUDENT, Role.TUTOR, Role.SUPPORT, Role.COMPLIANCE, Role.INSIGHTS, Role.OPS)


@dataclass(frozen=True)
class StudentFacts:
    """What the access rules need to know about one student."""

    student_id: str
    on_record: bool
    """Anything is held about them: a roster entry, engagement state or a record."""
    personal_tutor: str | None = None
    sponsored_visa: bool = False
    review_teams: frozenset[str] = frozenset()
    """The teams their review items went to (queue ``team:<name>``, or their route's team)."""


def review_teams(queues: Iterable[str | None], routes: Iterable[str]) -> frozenset[str]:
    """The teams behind review queues (``team:<name>``) and the teams owning routes."""
    teams = {q.partition(":")[2] for q in queues if q and q.startswith("team:")}
    teams |= {team for route, team in TEAM_FOR_ROUTE.items() if route.value in set(routes)}
    return frozenset(teams)


def granted_by(principal: Principal, facts: StudentFacts, teams: TeamsConfig) -> Role | None:
    """The role under which ``principal`` may read the student's data, or None."""
    if not facts.on_record:
        return None
    for role in ORDER:
        if principal.has(role) and _allows(role, principal.subject, facts, teams):
            return role
    return None


def _allows(role: Role, subject: str, facts: StudentFacts, teams: TeamsConfig) -> bool:
    if role is Role.STUDENT:
        return subject == facts.student_id
    if role is Role.TUTOR:
        return facts.personal_tutor is not None and facts.personal_tutor == subject
    if role is Role.SUPPORT:
        return any(
            team in teams.teams and teams.teams[team].works(subject) for team in facts.review_teams
        )
    if role is Role.COMPLIANCE:
        return facts.sponsored_visa
    return False  # insights and ops never see one student


def audit_role(principal: Principal, granted: Role | None) -> Role:
    """The role an audit entry names: the one that granted the read, else the reader's first."""
    if granted is not None:
        return granted
    return next((role for role in ORDER if principal.has(role)), Role.OPS)
