"""OULAD readers: day offsets to local noon, event shape, malformed rows, worst outcome wins."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import VleActivity
from stream.offline.oulad import (
    is_adverse,
    local_noon,
    read_oulad_sites,
    read_oulad_vle,
    read_outcomes,
)

LONDON = ZoneInfo("Europe/London")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "oulad"
HEADER = "code_module,code_presentation,id_student,id_site,date,sum_click\n"
BADNESS = {"distinction": 0, "pass": 1, "fail": 2, "withdrawn": 3}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_event_shape(tmp_path: Path) -> None:
    path = write(tmp_path, "studentVle.csv", HEADER + "AAA,2013J,28400,546652,-10,4\n")
    [event] = read_oulad_vle(path, start=date(2026, 10, 20), zone=LONDON)
    assert event == {
        "schema_version": 1,
        "event_id": "oulad-AAA-2013J-28400-546652--10-1",
        "student_id": "28400",
        "occurred_at": "2026-10-10T12:00:00+01:00",
        "source": "vle",
        "platform": "oulad",
        "course": "AAA-2013J",
        "action": "clicked",
        "resource": "site-546652",
    }
    VleActivity.model_validate(event)


def test_sites_name_the_action_and_unknown_sites_are_clicks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "studentVle.csv",
        HEADER + "AAA,2013J,1,10,0,1\nAAA,2013J,1,11,0,1\n",
    )
    events = list(read_oulad_vle(path, start=date(2026, 1, 5), zone=LONDON, sites={"10": "quiz"}))
    assert [event["action"] for event in events] == ["quiz", "clicked"]


def test_duplicate_rows_get_distinct_ids(tmp_path: Path) -> None:
    row = "AAA,2013J,28400,546652,-10,4\n"
    path = write(tmp_path, "studentVle.csv", HEADER + row + row)
    ids = [event["event_id"] for event in read_oulad_vle(path, start=date(2026, 1, 5), zone=LONDON)]
    assert ids == ["oulad-AAA-2013J-28400-546652--10-1", "oulad-AAA-2013J-28400-546652--10-2"]


def test_offsets_become_local_noon_across_the_october_clock_change(tmp_path: Path) -> None:
    rows = "".join(f"AAA,2013J,1,10,{offset},1\n" for offset in range(11))
    path = write(tmp_path, "studentVle.csv", HEADER + rows)
    events = list(read_oulad_vle(path, start=date(2026, 10, 20), zone=LONDON))
    assert len(events) == 11
    for offset, event in enumerate(events):
        moment = datetime.fromisoformat(str(event["occurred_at"]))
        local = moment.astimezone(LONDON)
        assert local.date() == date(2026, 10, 20 + offset)
        assert (local.hour, local.minute) == (12, 0)
        # BST (UTC+1) until Sunday 25 October 2026, GMT from that day on.
        before_change = 20 + offset < 25
        assert moment.utcoffset() == (local_noon(date(2026, 10, 20), offset, LONDON).utcoffset())
        assert moment.astimezone(UTC).hour == (11 if before_change else 12)
        assert str(event["occurred_at"]).endswith("+01:00" if before_change else "+00:00")
        VleActivity.model_validate(event)


def test_quoted_header_and_values(tmp_path: Path) -> None:
    text = (
        '"code_module","code_presentation","id_student","id_site","date","sum_click"\n'
        '"BBB","2014B","7","8","3","2"\n'
    )
    path = write(tmp_path, "studentVle.csv", text)
    [event] = read_oulad_vle(path, start=date(2026, 3, 2), zone=LONDON)
    assert event["course"] == "BBB-2014B"
    assert event["occurred_at"] == "2026-03-05T12:00:00+00:00"


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("AAA,2013J,1,10,0,1\nAAA,2013J,1,10,x,1\n", 3, "date 'x' is not an integer"),
        ("AAA,2013J,1,10,0,1\nAAA,2013J,1,10,0,1\nAAA,2013J,1,10\n", 4, "missing value"),
        ("AAA,2013J,1,10,1.5,1\n", 2, "is not an integer"),
        ("AAA,2013J,,10,0,1\n", 2, "id_student"),
        ("AAA,2013J,1,10,0,1,extra\n", 2, "more fields"),
        ("AAA,2013J,1,10,0,many\n", 2, "sum_click"),
    ],
)
def test_malformed_rows_name_the_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    path = write(tmp_path, "studentVle.csv", HEADER + body)
    with pytest.raises(ValueError, match=rf"line {line}: .*{words}"):
        list(read_oulad_vle(path, start=date(2026, 1, 5), zone=LONDON))


def test_missing_column_is_reported_on_line_one(tmp_path: Path) -> None:
    path = write(tmp_path, "studentVle.csv", "code_module,id_student,date\nAAA,1,0\n")
    with pytest.raises(ValueError, match=r"line 1: missing column\(s\) code_presentation"):
        list(read_oulad_vle(path, start=date(2026, 1, 5), zone=LONDON))


def test_read_sites(tmp_path: Path) -> None:
    sites = read_oulad_sites(FIXTURES / "vle.csv")
    assert len(sites) == 43
    assert sites["546652"] == "forumng"
    assert sites["546943"] == "resource"
    clash = write(tmp_path, "vle.csv", "id_site,activity_type\n1,quiz\n1,url\n")
    with pytest.raises(ValueError, match="line 3"):
        read_oulad_sites(clash)


def test_oulad_outcomes_keep_the_worst() -> None:
    outcomes = read_outcomes(FIXTURES / "studentOutcome.csv")
    assert len(outcomes) == 26
    assert outcomes["28400"] == "pass"
    # 65002: Withdrawn (2013J) then Fail (2014J); 94961: Withdrawn then Pass.
    assert outcomes["65002"] == "withdrawn"
    assert outcomes["94961"] == "withdrawn"


def test_outcomes_for_one_presentation() -> None:
    outcomes = read_outcomes(FIXTURES / "studentOutcome.csv", course="AAA-2014J")
    assert outcomes == {"65002": "fail", "94961": "pass"}


def test_generic_outcomes_csv(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "outcomes.csv",
        "student_id,outcome\ns1,Pass\ns2,Distinction\ns1,FAIL\ns3,withdrawn\ns2,Pass\ns1,pass\n",
    )
    assert read_outcomes(path) == {"s1": "fail", "s2": "pass", "s3": "withdrawn"}


def test_student_info_columns_are_read_and_the_rest_ignored(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "studentInfo.csv",
        '"code_module","code_presentation","id_student","gender","disability","final_result"\n'
        '"AAA","2013J","11391","M","N","Distinction"\n',
    )
    assert read_outcomes(path) == {"11391": "distinction"}


def test_unknown_outcome_header(tmp_path: Path) -> None:
    path = write(tmp_path, "outcomes.csv", "learner,result\ns1,pass\n")
    with pytest.raises(ValueError, match=r"id_student,final_result .*student_id,outcome"):
        read_outcomes(path)


def test_unknown_outcome_value_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "outcomes.csv", "student_id,outcome\ns1,pass\ns2,deferred\n")
    with pytest.raises(ValueError, match="line 3: outcome 'deferred'"):
        read_outcomes(path)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["Pass", "pass", "FAIL", "Fail", "Withdrawn", "Distinction"]),
        ),
        max_size=20,
    )
)
def test_worst_outcome_wins(rows: list[tuple[str, str]]) -> None:
    expected: dict[str, str] = {}
    for student, outcome in rows:
        value = outcome.lower()
        if student not in expected or BADNESS[value] > BADNESS[expected[student]]:
            expected[student] = value
    text = "student_id,outcome\n" + "".join(f"{s},{o}\n" for s, o in rows)
    # Function-scoped tmp_path does not reset between hypothesis examples: use a fresh folder.
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), "outcomes.csv", text)
        assert read_outcomes(path) == expected


@pytest.mark.parametrize(
    ("outcome", "adverse"),
    [("withdrawn", True), ("fail", True), ("Fail", True), ("pass", False), ("distinction", False)],
)
def test_is_adverse(outcome: str, adverse: bool) -> None:
    assert is_adverse(outcome) is adverse


def test_fixture_slice_end_to_end() -> None:
    sites = read_oulad_sites(FIXTURES / "vle.csv")
    outcomes = read_outcomes(FIXTURES / "studentOutcome.csv", course="AAA-2013J")
    events = list(
        read_oulad_vle(
            FIXTURES / "studentVle.csv", start=date(2013, 10, 31), zone=LONDON, sites=sites
        )
    )
    assert len(events) == 300
    assert len({event["event_id"] for event in events}) == 300
    models = [VleActivity.model_validate(event) for event in events]
    assert {model.course for model in models} == {"AAA-2013J"}
    assert {model.occurred_at for model in models} == {datetime(2013, 10, 21, 12, tzinfo=LONDON)}
    assert all(model.action != "clicked" for model in models)
    assert {model.student_id for model in models} <= set(outcomes)
    assert len({model.student_id for model in models}) == 26
