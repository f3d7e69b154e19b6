"""The import's fast path is the row-at-a-time path, only sooner: for any rows, every row ends
with the same outcome, sentence, event text, size and student id, in the same order; and the
batch reader gives the same rows, lines and problems as reading one row at a time."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from itertools import chain
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.adapters.mapping import Compiled
from agents.adapters.mapping_read import read_batches, read_rows
from agents.adapters.units import Unit
from schemas.mappings import parse_mapping
from schemas.sources import SOURCES
from stream.ingest import imports
from stream.ingest.files import FileReport
from stream.ingest.imports import PreparedBatch, prepare_export
from stream.ingest.imports_fast import MODEL_CHECKS, FastImport
from stream.ingest.watch import BatchReport
from stream.publisher.checks import Checked
from stream.publisher.envelopes import CheckedRun, Packer

REGISTER = """\
schema_version = 1
name = "fast-register"
description = "A register export, as a vendor's reporting tool writes one"
produces = "attendance"

[time]
zone = "Europe/London"
formats = ["%d/%m/%Y %H:%M"]
ambiguous = "{ambiguous}"

[identity]
column = "Student ID"
policy = "{policy}"
map_prefix = "{prefix}"

[fields]
event_id = {{ template = "reg-{{Event ID}}-{{Student ID}}" }}
occurred_at = {{ column = "Start", time = true }}
session_id = {{ template = "{{Event ID}}/{{Week}}" }}
module = {{ column = "Module Code", default = "MOD" }}
expected_start = {{ column = "Start", time = true }}
expected_end = {{ column = "End", time = true }}
status = {{ column = "Mark", map = "marks" }}
capture_method = {{ value = "register" }}

[maps.marks]
"P" = "present"
"L" = "late"
"A" = "absent"
"" = "absent"
"Q" = "nonsense"

[[ignore]]
reason = "staff_action"
when = {{ column = "Card Type", in = ["Staff", "Visitor"] }}
[[ignore]]
reason = "system_action"
when = {{ column = "Mark", matches = "^SYS" }}
"""
DOORS = """\
schema_version = 1
name = "fast-doors"
description = "A door log export without event ids"
produces = "swipe"

[time]
zone = "Europe/London"
formats = ["%Y-%m-%d %H:%M:%S"]

[identity]
column = "User"

[fields]
event_id = { template = "{When}|{Where}|{User}", hash = true }
occurred_at = { column = "When", time = true }
reader_id = { column = "Where", strip_prefix = "Door: " }
building = "Where"
direction = { column = "Where", extract = " (In|Out)$", map = "sides", map_default = "unknown" }

[maps.sides]
"In" = "in"
"Out" = "out"

[[ignore]]
reason = "unknown_actor"
when = { column = "User", empty = true }
"""
COLUMNS = ["Event ID", "Student ID", "Start", "End", "Module Code", "Mark", "Card Type", "Week"]
DOOR_COLUMNS = ["When", "Where", "User"]


def register(policy: str = "as-is", ambiguous: str = "earlier", prefix: str = "") -> Any:
    text = REGISTER.format(policy=policy, ambiguous=ambiguous, prefix=prefix)
    return parse_mapping(text, "fast.toml")


def _row(prepared: Any) -> tuple[Any, ...]:
    unit: Unit = prepared.unit
    checked = prepared.checked
    event = dict(unit.event) if unit.event is not None else None
    done = (checked.text, checked.size, checked.student_id) if checked is not None else None
    return prepared.line, unit.report(), event, unit.actor, done


def both(mapping: Any, data: bytes, limit: int = 16_384) -> tuple[list[Any], list[Any], int]:
    """Every row through the fast path, and through the row-at-a-time path alone; and how many
    rows the fast path vouched for."""

    def lookup(keys: Any) -> dict[str, str]:  # an identity map that knows some actors
        return {k: f"S{len(k)}{k[-3:]}".replace(" ", "_") for k in keys if len(k) % 3}

    fast, vouched = [], 0
    for batch in prepare_export(io.BytesIO(data), mapping, lookup, limit):
        if isinstance(batch, PreparedBatch):
            vouched += sum(1 for c in batch.checked if c is not None)
        fast.extend(_row(p) for p in batch)
    real_of = imports.FastImport.of
    imports.FastImport.of = classmethod(lambda cls, *a: None)  # type: ignore[method-assign,assignment]
    try:
        slow = [
            _row(p) for b in prepare_export(io.BytesIO(data), mapping, lookup, limit) for p in b
        ]
    finally:
        imports.FastImport.of = real_of  # type: ignore[method-assign]
    return fast, slow, vouched


def export(columns: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8", "surrogatepass")


# Rows: ordinary ones with at most one odd cell each, so that most rows are events and the odd
# cell is the only reason one is not: too long, spaces, quotes, backslashes, controls,
# non-breaking spaces, codes not in the map, times that do not read or that the clocks skip.
ODD = [
    "", " ", '"q"', "back\\slash", "tab\there", "nl\nx", "\u00a0nb", "\u200bzw", "é1", "%s",
    "S 2", " lead", "trail ", "a" * 64, "a" * 65, "a" * 70, "a" * 128, "a" * 129, "a" * 300,
    "25/10/2026 01:30", "29/03/2026 01:30", "31/02/2026 10:00", " 05/10/2026 09:00 ",
    "05/10/2026 08:00", "05/10/2026 09:00", "05/10/2026 10:00", "05/10/2026 11:00",
    "Q", "X", "SYSTEM", " P ", "L", "Staff", "Visitor",
]  # fmt: skip
BASE = [
    ["E1", "S0000001", "05/10/2026 09:00", "05/10/2026 10:00", "MOD1", "P", "Student", "1"],
    ["E22", "s2", "05/10/2026 10:00", "05/10/2026 11:00", "Maths 101", "L", "Student", "2"],
    ["E3", "S3", "05/10/2026 08:00", "05/10/2026 09:00", "é", "A", "Student", "3"],
    ["E4", "S4", "05/10/2026 08:00", "05/10/2026 09:00", "M", "P", "Visitor", "4"],
]


def _odd(row: list[str], at: int, value: str) -> list[str]:
    out = list(row)
    if at < len(out):
        out[at] = value
    return out


def rows_like(base: list[list[str]]) -> st.SearchStrategy[list[str]]:
    """A row of ``base`` with one cell (or none) made odd."""
    value = st.one_of(st.sampled_from(ODD), st.text(max_size=4))
    return st.builds(_odd, st.sampled_from(base), st.integers(0, len(base[0]) + 2), value)


register_row = rows_like(BASE)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(register_row, max_size=40),
    policy=st.sampled_from(["as-is", "map"]),
    ambiguous=st.sampled_from(["earlier", "refuse"]),
    limit=st.sampled_from([16_384, 330]),
)
def test_fast_path_is_the_full_model_for_any_register_rows(
    rows: list[list[str]], policy: str, ambiguous: str, limit: int
) -> None:
    mapping = register(policy, ambiguous, "reg:" if policy == "map" else "")
    fast, slow, _ = both(mapping, export(COLUMNS, rows), limit)
    assert fast == slow


door_row = rows_like(
    [
        ["2026-10-05 09:00:01", "Door: Library In", "S0000001"],
        ["2026-10-05 09:00:02", "Main Out", "S2"],
        ["2026-03-29 01:30:00", "Plant Room", "S3"],
        ["2026-10-05 09:00:03", "Door:  x", "S4"],
    ]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(door_row, max_size=30))
def test_fast_path_is_the_full_model_for_hashed_ids_prefixes_and_extracts(
    rows: list[list[str]],
) -> None:
    fast, slow, _ = both(parse_mapping(DOORS, "doors.toml"), export(DOOR_COLUMNS, rows))
    assert fast == slow


def test_the_fast_path_vouches_for_ordinary_rows_and_repeats_check_events_text() -> None:
    start, end = "05/10/2026 09:00", "05/10/2026 10:00"
    rows = [
        [f"E{n}", f"S{n:07d}", start, end, "M1", "PLA"[n % 3], "Student", "1"] for n in range(3000)
    ]
    rows[7][6] = "Staff"
    fast, slow, vouched = both(register(), export(COLUMNS, rows))
    assert fast == slow
    assert vouched == 2999  # the staff card is ignored; every other row is vouched for
    event = json.loads(fast[0][4][0])
    assert event["student_id"] == "S0000000" and event["expected_start"].endswith("+00:00")


def test_the_fast_path_leaves_rows_to_the_full_check_until_one_passes_it() -> None:
    """No anchor yet (every row so far refused): nothing is vouched for, nothing is lost."""
    rows = [["E1", "S1", "05/10/2026 10:00", "05/10/2026 09:00", "M", "P", "Student", "1"]] * 30
    rows += [["E2", "S2", "05/10/2026 09:00", "05/10/2026 10:00", "M", "P", "Student", "1"]] * 3
    fast, slow, _ = both(register(), export(COLUMNS, rows))
    assert fast == slow
    assert [r[1]["outcome"] for r in fast] == ["refused"] * 30 + ["accepted"] * 3


def test_a_start_and_an_end_each_fine_alone_are_learnt_together() -> None:
    """Start 10:00 and end 09:00 each pass in the first row's place (09:00-10:00), but not
    together: the model validator that reads both refuses the row, and so does the fast path."""
    rows = [
        ["E1", "S1", "05/10/2026 09:00", "05/10/2026 10:00", "M", "P", "Student", "1"],
        ["E2", "S2", "05/10/2026 10:00", "05/10/2026 09:00", "M", "P", "Student", "1"],
    ]
    fast, slow, vouched = both(register(), export(COLUMNS, rows))
    assert fast == slow
    assert (vouched, fast[1][1]["outcome"]) == (1, "refused")


def test_every_model_validator_of_a_feed_names_the_fields_it_reads() -> None:
    """A validator the fast path does not know would make it unsound: it gets no fast path,
    and this test says which to add to MODEL_CHECKS (with the fields it reads)."""
    for kind in SOURCES.values():
        model = kind.model
        for name in model.__pydantic_decorators__.model_validators:
            fields = MODEL_CHECKS.get((model.__name__, name))
            assert fields is not None, f"{model.__name__}.{name} is not in MODEL_CHECKS"
            assert set(fields) <= set(model.model_fields)


def test_mappings_the_fast_path_does_not_cover_get_none() -> None:
    no_identity = parse_mapping(DOORS.replace('[identity]\ncolumn = "User"\n', ""), "d.toml")
    as_json = parse_mapping(DOORS.replace("[time]", '[input]\nformat = "json"\n\n[time]'), "j")
    for mapping in (no_identity, as_json):
        assert FastImport.of(Compiled.of(mapping), DOOR_COLUMNS, 16_384) is None
    assert FastImport.of(Compiled.of(parse_mapping(DOORS, "d")), DOOR_COLUMNS, 16_384)


def test_the_batch_report_writes_what_file_report_writes() -> None:
    rows = [[f"E{n}", f"S{n}", "05/10/2026 09:00", "05/10/2026 10:00", "M", "PQ"[n % 2],
             "Staff" if n % 5 == 0 else "Student", "1"] for n in range(40)]  # fmt: skip
    data = export(COLUMNS, rows)
    batched, plain = BatchReport(), FileReport()
    sent: list[Any] = []
    for batch in prepare_export(io.BytesIO(data), register(), None, 16_384):
        assert isinstance(batch, PreparedBatch)
        sent.extend(batched.add_batch(batch))
        for prepared in batch:
            plain.add(prepared.line, prepared.unit)
    assert list(batched.units()) == list(plain.units())
    assert batched.summary() == plain.summary()
    assert len(sent) == plain.tally["accepted"] == 16


# -- the batch reader against reading one row at a time ---------------------------------------
def _one_at_a_time(text: str) -> Iterator[tuple[int, Any, Any]]:
    """The reader before batches (kept here as the reference)."""
    source = iter(io.StringIO(text, newline=""))
    header_line = next(source, "")
    reader = csv.reader(chain([header_line], source))
    header = [h.strip() for h in next(reader, [])]
    seen = 1
    while True:
        start = seen + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            seen = reader.line_num
            yield start, None, f"the line is not valid CSV ({exc})"
            continue
        seen = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if re.search("[\udc80-\udcff]", "".join(cells)):
            yield start, None, "the row holds bytes that are not in the file's encoding"
        elif len(cells) != len(header):
            yield start, None, f"the row has {len(cells)} cells where the header has {len(header)}"
        else:
            yield start, dict(zip(header, cells, strict=True)), None


csv_text = st.lists(
    st.sampled_from(
        [
            "a",
            "b,c",
            '"q\r\nq"',
            '"x\ny"',
            '"z\rz"',
            "\r\n",
            "\n",
            "\r",
            ",",
            " ",
            '"',
            '""',
            "\u00e9",
            '"open',
            "\x00",
            "\udcff",
        ]
    ),
    max_size=60,
).map("".join)


@pytest.mark.parametrize("size", [1, 3, 2000])
@settings(max_examples=200, deadline=None)
@given(body=csv_text)
def test_the_batch_reader_gives_each_row_its_line_as_before(body: str, size: int) -> None:
    text = "h1,h2\n" + body
    header, batches = read_batches(io.StringIO(text, newline=""), register(), size)
    got = [
        (line, None if cells is None else dict(zip(header, cells, strict=True)), problem)
        for batch in batches
        for line, cells, problem in batch
    ]
    assert got == list(_one_at_a_time(text))
    _, rows = read_rows(io.StringIO(text, newline=""), register())
    assert [(r.line, r.cells, r.problem) for r in rows] == got


def test_the_batch_report_sends_each_rows_checked_event_in_order() -> None:
    modules = ["M", 'M"1', "M\\2"]  # a quote or backslash: decided row by row, then accepted
    rows = [[f"E{n}", f"S{n}", "05/10/2026 09:00", "05/10/2026 10:00", modules[n % 3],
             "PQ"[n % 7 == 0], "Staff" if n % 5 == 0 else "Student", "1"]
            for n in range(60)]  # fmt: skip
    sent: list[Any] = []
    expected: list[Any] = []
    for batch in prepare_export(io.BytesIO(export(COLUMNS, rows)), register(), None, 16_384):
        assert isinstance(batch, PreparedBatch)
        sent.extend(BatchReport().add_batch(batch))
        expected.extend(p.checked for p in batch if p.checked is not None)
    assert any('\\"' in c.text for c in expected) and any("\\\\" in c.text for c in expected)
    assert sent == expected and len(sent) == 60 - 12 - 7  # less staff, less unknown marks


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 400), max_size=60),
    envelope_size=st.sampled_from([1, 2, 7, 500]),
    limit=st.sampled_from([300, 1_000, 1_000_000]),
    before=st.integers(0, 5),
)
def test_a_packers_run_makes_the_messages_adding_one_at_a_time_makes(
    sizes: list[int], envelope_size: int, limit: int, before: int
) -> None:
    """Packer.add_run (a fast-path batch) cuts envelopes exactly where Packer.add does."""
    texts = [f'{{"n":"{k:0{max(size - 8, 1)}d}"}}' for k, size in enumerate(sizes)]
    run = CheckedRun(texts, list(map(len, texts)), [f"S{k}" for k in range(len(texts))])
    early = [Checked(f'{{"e":{k}}}', len(f'{{"e":{k}}}'), "S") for k in range(before)]

    def messages(batched: bool) -> list[tuple[bytes | None, list[Any]]]:
        packer = Packer("attendance", envelope_size, limit)
        out = [m for c in early if (m := packer.add(c)) is not None]
        out += packer.add_run(run) if batched else [m for c in run if (m := packer.add(c))]
        out += [m for m in [packer.finish()] if m is not None]
        return [(key, _events(value)) for key, value in out]

    assert messages(batched=True) == messages(batched=False)
    assert list(run) == [Checked(t, len(t), f"S{k}") for k, t in enumerate(texts)]
    assert list(run[1:3]) == list(run)[1:3] and run.total_bytes() == sum(map(len, texts))


def _events(value: bytes) -> list[Any]:
    """An envelope's events (its sent_at differs between two packings), or a single event."""
    document = json.loads(value)
    return document["events"] if "events" in document else [document]
