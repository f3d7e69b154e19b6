"""The reader map: a mapping field looked up in a reference table at import time.

The Paxton preset's ``building`` is its ``Where`` cell looked up in the reader map: a mapped
reader's swipe carries the map's building; a reader the map lacks keeps its door name and is
counted (``unmapped_reader``), or, with ``missing = "refuse"``, is refused. One read per table
per batch, each reader once. The lookup here is an in-memory table standing in for Redis (the
integration test tests/integration/test_sources_e2e.py loads the map through the worker).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.adapters.mapping_refs import apply_lookups, looked_up, wanted
from agents.adapters.units import Outcome, Unit
from schemas.common import Reason
from schemas.mappings import PRESETS, MappingError, load_mapping, parse_mapping
from schemas.reference import REFERENCE_MODELS, ReaderLocation
from stream.ingest.imports import Prepared, prepare_export
from stream.reference import read_records

EVENTS = Path(__file__).parent.parent / "fixtures" / "sources" / "paxton" / "net2-events.csv"
MAP = {
    "Turing Building Main Entrance In": {"building": "Turing Building", "campus": "City"},
    "Library Turnstile Out": {"building": "Library", "campus": "City"},
}  # "Rosalind Hall Main Door In" is not in the map


class Tables:
    """The identity map and a reader map in memory, counting the reads as Redis would see them."""

    def __init__(self, readers: Mapping[str, object]) -> None:
        self.readers = {k: v if isinstance(v, str) else json.dumps(v) for k, v in readers.items()}
        self.reads: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, keys: Sequence[str]) -> Mapping[str, str]:
        return {}

    def table(self, name: str, keys: Sequence[str]) -> Mapping[str, str]:
        self.reads.append((name, tuple(keys)))
        return {k: self.readers[k] for k in keys if k in self.readers}


def imported(
    lookup: object, mapping_text: str | None = None, data: bytes | None = None
) -> list[Prepared]:
    mapping = (
        load_mapping("paxton-net2-events")
        if mapping_text is None
        else parse_mapping(mapping_text, "site.toml")
    )
    body = EVENTS.read_bytes() if data is None else data
    batches = prepare_export(io.BytesIO(body), mapping, lookup, 64_000)  # type: ignore[arg-type]  # any lookup
    return [p for batch in batches for p in batch]


def sent(prepared: Prepared | None) -> dict[str, object]:
    """The event an accepted row sends, as its JSON text says."""
    assert prepared is not None and prepared.checked is not None, prepared
    event: dict[str, object] = json.loads(prepared.checked.text)
    return event


def by_line(prepared: list[Prepared]) -> dict[int, Prepared]:
    return {p.line: p for p in prepared}


def test_a_mapped_reader_gives_its_building_and_one_read_per_batch_asks_each_reader_once() -> None:
    tables = Tables(MAP)
    rows = by_line(imported(tables))
    first, out = sent(rows[2]), sent(rows[14])
    assert first["building"] == "Turing Building"
    assert first["reader_id"] == "Turing Building Main Entrance In"  # the reader stays
    assert out["building"] == "Library"
    assert rows[2].unit.reason is None and rows[3].checked is not None
    assert tables.reads == [
        ("readers", ("Turing Building Main Entrance In", "Library Turnstile Out",
                     "Rosalind Hall Main Door In")),
    ]  # fmt: skip


def test_a_reader_the_map_lacks_keeps_its_door_name_and_is_counted() -> None:
    rows = by_line(imported(Tables(MAP)))
    kept = rows[16]
    assert kept.unit.outcome is Outcome.ACCEPTED
    assert sent(kept)["building"] == "Rosalind Hall Main Door In"
    assert kept.unit.reason == "unmapped_reader"
    assert "reader map has no building for the 'Where' cell" in kept.unit.detail
    assert "Rosalind" not in kept.unit.detail  # names the column, never the value
    assert kept.unit.report()["reason"] == "unmapped_reader"  # what the file report counts


def test_without_a_reader_map_every_swipe_keeps_its_door_name_and_is_counted() -> None:
    for lookup in (Tables({}), lambda keys: {}, None):
        rows = imported(lookup)
        accepted = [p for p in rows if p.checked is not None]
        assert len(accepted) == 4
        assert all(p.unit.reason == "unmapped_reader" for p in accepted)
        assert all(sent(p)["building"] == sent(p)["reader_id"] for p in accepted)


def site_mapping(building: str) -> str:
    """The Paxton preset with its building rule replaced (a site's own copy)."""
    source = (PRESETS / "paxton-net2-events.toml").read_text(encoding="utf-8")
    old = 'building = { column = "Where", reference = "readers", missing = "keep" }'
    assert old in source
    return source.replace(old, building).replace('name = "paxton-net2-events"', 'name = "site"')


def test_missing_refuse_refuses_a_reader_the_map_lacks_without_naming_it() -> None:
    text = site_mapping(
        'building = { column = "Where", reference = "readers", missing = "refuse" }'
    )
    rows = by_line(imported(Tables(MAP), text))
    refused = rows[16].unit
    assert refused.outcome is Outcome.REFUSED and refused.reason == "invalid_value"
    assert refused.detail == "building: the reader map has no building for the 'Where' cell"
    assert sent(rows[2])["building"] == "Turing Building"


def test_take_chooses_another_value_of_the_entry() -> None:
    text = site_mapping('building = { column = "Where", reference = "readers", take = "campus" }')
    rows = by_line(imported(Tables(MAP), text))
    assert sent(rows[2])["building"] == "City"


def test_a_stored_entry_that_is_not_an_object_counts_as_missing() -> None:
    rows = by_line(imported(Tables({**MAP, "Turing Building Main Entrance In": "not json"})))
    assert rows[2].unit.reason == "unmapped_reader"
    assert sent(rows[2])["building"] == "Turing Building Main Entrance In"


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        ('{ column = "Where", reference = "doors" }', "reference 'doors' is none of readers"),
        ('{ column = "Where", reference = "readers", take = "reader_id" }',
         "take 'reader_id' is none of building, campus"),
        ('{ column = "Where", reference = "readers", split = ";" }', "a looked-up field is text"),
        ('{ column = "Where", reference = "readers", missing = "drop" }', "'keep' or 'refuse'"),
        ('{ column = "Where", take = "campus" }', "take and missing go with reference"),
        ('{ column = "Where", missing = "refuse" }', "take and missing go with reference"),
    ],
)  # fmt: skip
def test_a_lookup_rule_that_cannot_work_stops_start_up_naming_the_line(
    rule: str, said: str
) -> None:
    text = site_mapping(f"building = {rule}")
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, "site.toml")
    message = str(caught.value)
    assert "site.toml" in message and "fields.building" in message and said in message
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith("building ="))
    assert f"line {line}" in message


def test_reader_map_records_are_read_and_keyed_by_reader() -> None:
    lines = [
        json.dumps({"reader_id": "Library Turnstile In", "building": "Library"}),
        json.dumps({"reader_id": "Hall Door", "building": "Rosalind Hall", "campus": "North"}),
        json.dumps({"reader_id": "No Building"}),
        json.dumps({"delete": "Old Door"}),
    ]
    records, refused = read_records("readers", lines)
    assert [k for k, _ in records] == ["Library Turnstile In", "Hall Door", "Old Door"]
    assert records[-1][1] is None  # a tombstone
    assert json.loads(records[1][1] or b"")["campus"] == "North"
    assert len(refused) == 1 and refused[0].startswith("line 3:")
    assert REFERENCE_MODELS["readers"] is ReaderLocation


def swipe_unit(index: int, reader: str) -> Unit:
    event = {"event_id": f"e{index}", "reader_id": reader, "building": reader}
    return Unit.accepted(index, "swipe", event, None)


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c", ""]), st.booleans()), max_size=30),
    st.dictionaries(st.sampled_from(["a", "b", "x"]), st.text(max_size=20)),
)
def test_every_unit_keeps_its_one_outcome_whatever_the_map_holds(
    rows: list[tuple[str, bool]], stored: dict[str, str]
) -> None:
    mapping = load_mapping("paxton-net2-events")
    fields = looked_up(mapping)
    units = [
        swipe_unit(n, reader) if accept else Unit.refused(n, Reason.INVALID_VALUE, "x")
        for n, (reader, accept) in enumerate(rows)
    ]
    cells = wanted(units, fields).get("readers", [])
    assert len(cells) == len(set(cells)) and "" not in cells
    out = apply_lookups(units, fields, {"readers": {k: v for k, v in stored.items() if k in cells}})
    assert [u.index for u in out] == [u.index for u in units]
    for before, after in zip(units, out, strict=True):
        assert after.outcome is before.outcome
