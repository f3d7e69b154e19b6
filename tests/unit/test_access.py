"""Who may read one student's data: each role against each kind of student (pure rules)."""

from __future__ import annotations

import pytest

from schemas.access import Principal, Role
from schemas.review import Team, TeamsConfig
from stream.api.access import StudentFacts, audit_role, granted_by, review_teams

TEAMS = TeamsConfig(
    schema_version=1,
    escalate_after_hours=72,
    teams={
        "personal_tutors": Team(lead="T-LEAD"),
        "support": Team(lead="U-LEAD", members=("U-1",)),
        "compliance": Team(lead="C-LEAD"),
    },
)
PLAIN = StudentFacts("S1", on_record=True, personal_tutor="T-1")
SPONSORED = StudentFacts("S2", on_record=True, sponsored_visa=True)
REFERRED = StudentFacts("S3", on_record=True, review_teams=frozenset({"support"}))
UNKNOWN = StudentFacts("S9", on_record=False)


def who(subject: str, *roles: Role) -> Principal:
    return Principal(subject, frozenset(roles))


@pytest.mark.parametrize(
    ("reader", "facts", "granted"),
    [
        (who("S1", Role.STUDENT), PLAIN, Role.STUDENT),
        (who("S1", Role.STUDENT), SPONSORED, None),  # another student
        (who("T-1", Role.TUTOR), PLAIN, Role.TUTOR),  # own tutee
        (who("T-2", Role.TUTOR), PLAIN, None),  # someone else's tutee
        (who("T-1", Role.TUTOR), SPONSORED, None),
        (who("U-1", Role.SUPPORT), REFERRED, Role.SUPPORT),  # member of the team
        (who("U-LEAD", Role.SUPPORT), REFERRED, Role.SUPPORT),  # its lead
        (who("U-2", Role.SUPPORT), REFERRED, None),  # not in the team
        (who("U-1", Role.SUPPORT), PLAIN, None),  # no referral
        (who("C-1", Role.COMPLIANCE), SPONSORED, Role.COMPLIANCE),
        (who("C-1", Role.COMPLIANCE), PLAIN, None),
        (who("I-1", Role.INSIGHTS), PLAIN, None),
        (who("O-1", Role.OPS), SPONSORED, None),
        (who("S9", Role.STUDENT), UNKNOWN, None),  # nothing held: nothing to read
        (who("T-1", Role.TUTOR), UNKNOWN, None),
    ],
)
def test_each_role_reads_only_its_own_students(
    reader: Principal, facts: StudentFacts, granted: Role | None
) -> None:
    assert granted_by(reader, facts, TEAMS) is granted


def test_the_narrowest_role_that_allows_it_is_the_one_named() -> None:
    tutor_and_compliance = who("T-1", Role.COMPLIANCE, Role.TUTOR)
    assert granted_by(tutor_and_compliance, PLAIN, TEAMS) is Role.TUTOR
    sponsored_tutee = StudentFacts("S4", on_record=True, personal_tutor="T-1", sponsored_visa=True)
    assert granted_by(tutor_and_compliance, sponsored_tutee, TEAMS) is Role.TUTOR
    assert granted_by(tutor_and_compliance, SPONSORED, TEAMS) is Role.COMPLIANCE


def test_a_refusal_is_audited_under_the_readers_first_role() -> None:
    assert audit_role(who("X", Role.OPS, Role.TUTOR), None) is Role.TUTOR
    assert audit_role(who("X", Role.TUTOR), Role.TUTOR) is Role.TUTOR


def test_a_team_of_a_name_the_teams_file_lacks_grants_nothing() -> None:
    odd = StudentFacts("S5", on_record=True, review_teams=frozenset({"welfare"}))
    assert granted_by(who("U-1", Role.SUPPORT), odd, TEAMS) is None


def test_review_teams_come_from_team_queues_and_from_routes() -> None:
    assert review_teams(["team:support", "tutor:T-1", None], []) == {"support"}
    assert review_teams(["tutor:T-1"], ["personal_tutor"]) == {"personal_tutors"}
    assert review_teams([], ["compliance", "student"]) == {"compliance"}
