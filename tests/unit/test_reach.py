"""The demo's measure of the rules against ground truth: wrong nudges and dropouts reached."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from stream.dev.reach import decisions, measure
from stream.dev.simulate import GroundTruth, Persona, SimConfig, StudentTruth

START = date(2026, 9, 28)
D0 = START.toordinal()


def truth(*students: tuple[str, Persona, int | None]) -> GroundTruth:
    return GroundTruth(
        config=SimConfig(start=START),
        students={
            sid: StudentTruth(
                sid,
                persona,
                None if drop is None else START + timedelta(days=drop),
                ("CS1010",),
                {},
            )
            for sid, persona, drop in students
        },
        totals={},
        duplicates=0,
        malformed={},
    )


def nudge(nid: str, who: str, day: int, **extra: Any) -> dict[str, Any]:
    end = date.fromordinal(D0 + day).isoformat()
    return {
        "nudge_id": nid,
        "pseudonym": who,
        "mode": "live",
        "suppressed": None,
        "explanation": {"window_end": end},
        **extra,
    }


def test_engaged_students_nudged_early_and_over_the_term_are_counted_once() -> None:
    cohort = truth(
        ("E1", Persona.ENGAGED, None),
        ("E2", Persona.ENGAGED, None),
        ("E3", Persona.ENGAGED, None),
        ("E4", Persona.ENGAGED, None),
    )
    found = decisions(
        [
            nudge("n1", "E1", 3),  # day 4 of term: in the first two weeks
            nudge("n1", "E1", 3),  # the same nudge read twice
            nudge("n2", "E2", 14),  # day 15: after the first two weeks
            nudge("n3", "E3", 5, suppressed="data_gap"),  # held back by the model
            nudge("n4", "E4", 6, mode="shadow"),  # never sent
        ]
    )
    reach = measure(cohort, str, found, D0 + 27)
    assert (reach.engaged, reach.engaged_early, reach.engaged_term) == (4, 1, 2)
    assert "engaged students nudged in the first two weeks: 1 of 4" in "\n".join(reach.lines())
    assert "(50.0%, ABOVE the 1% target)" in "\n".join(reach.lines())


def test_a_dropout_counts_as_reached_only_by_day_14_of_the_drop() -> None:
    cohort = truth(
        ("V1", Persona.VLE_DROPOUT, 7),  # nudged on day 7 of the drop
        ("V2", Persona.VLE_DROPOUT, 7),  # nudged on day 15 of the drop: too late
        ("V3", Persona.VLE_DROPOUT, 7),  # nudged only before the drop
        ("A1", Persona.ATTENDANCE_DROPOUT, 20),  # day 14 of the drop not decided yet
    )
    found = decisions(
        [
            nudge("a", "V1", 13),
            nudge("b", "V2", 21),
            nudge("c", "V3", 2),
            nudge("d", "A1", 22),
        ]
    )
    reach = measure(cohort, str, found, D0 + 27)
    assert reach.eligible == {"vle_dropout": 3}
    assert reach.reached == {"vle_dropout": 1}
    assert reach.days_to_reach == {"vle_dropout": [7]}
    text = "\n".join(reach.lines())
    assert "vle_dropout            1 of   3, median day 7" in text
    assert "attendance_dropout     0 of   0" in text
