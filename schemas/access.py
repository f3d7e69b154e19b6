"""Who is asking: the signed-in person the API and the authenticated CLI act for.

A principal comes from a validated token (``stream/api/auth.py``): its subject (a student id
for a student, a staff id for staff) and its roles, both read from configurable claims. What
each role may see is decided in ``stream/api/access.py``; this module only declares the words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """The roles of the policies: each sees only what its work needs."""

    STUDENT = "student"  # their own data only
    TUTOR = "tutor"  # their own tutees (personal tutor on the roster)
    SUPPORT = "support"  # referrals routed to their team
    COMPLIANCE = "compliance"  # sponsored (UKVI) students' attendance and referrals; reports
    INSIGHTS = "insights"  # aggregates only, never one student
    OPS = "ops"  # health only, no individual data


@dataclass(frozen=True)
class Principal:
    """A signed-in person: the token's subject and the roles it grants."""

    subject: str
    roles: frozenset[Role]

    def has(self, role: Role) -> bool:
        return role in self.roles
