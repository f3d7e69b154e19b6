"""The publisher never crashes and its summary adds up (issue 12, item 7).

Any input line is sent, refused with a reason, or skipped, and ``read = sent + refused +
skipped`` where ``read`` is counted by the file reader itself: so a line that vanished on the
way (as 21 swipes once did behind a CSV quote that never closed) shows, instead of hiding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream.publisher.producer as producer_module
from agents.rawjson import MAX_DEPTH as WORKER_MAX_DEPTH
from schemas.common import Reason, Source
from schemas.topics import TopicNames
from stream.cli.main import main
from stream.publisher import (
    MAX_DEPTH,
    Checked,
    InputFileError,
    Publisher,
    PublishReport,
    check_event,
    pack_events,
    publish_file,
    read_file,
)
from tests.unit.test_publisher import FakeProducer, swipe, vle

FIELDS = ["event_id", "student_id", "occurred_at", "reader_id", "building", "direction", "note"]


def publish(
    source: Source, path: Path, envelope_size: int = 500
) -> tuple[PublishReport, list[Any]]:
    """Pack a file as ``engagement publish`` does; return the report and the events sent."""
    report = PublishReport()
    messages = list(pack_events(source, read_file(path), report, envelope_size=envelope_size))
    if envelope_size == 1:
        return report, [json.loads(value) for _, value in messages]
    return report, [event for _, value in messages for event in json.loads(value)["events"]]


def csv_row(n: int, note: str = "ok", sep: str = ",") -> str:
    event = swipe(n, note=note)
    return sep.join(str(event[name]) for name in FIELDS)


def outcomes(report: PublishReport) -> list[tuple[int | None, str]]:
    return [(refusal.line, refusal.reason.value) for refusal in report.examples]


# -- the 21 swipes --------------------------------------------------------------------------


def test_a_csv_quote_that_never_closes_costs_its_own_line_not_the_21_after_it(
    tmp_path: Path,
) -> None:
    # A door controller's export: a free-text note opens a quote on line 3 and never closes
    # it. The csv module then read the other 21 lines as the rest of that one cell: "sent 2;
    # refused 0", and 21 valid swipes were never counted anywhere.
    rows = [csv_row(0), csv_row(1, note='"door wedged open')]
    rows += [csv_row(n) for n in range(2, 23)]
    path = tmp_path / "swipes.csv"
    path.write_text(",".join(FIELDS) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")

    report, sent = publish(Source.SWIPE, path)

    assert [event["event_id"] for event in sent] == [f"e-{n}" for n in range(23) if n != 1]
    assert outcomes(report) == [(3, "invalid_value")]
    assert "quoted cell" in report.examples[0].detail
    assert (report.read, report.sent, report.refused, report.skipped) == (24, 22, 1, 1)
    assert report.adds_up
    assert report.summary().splitlines()[:2] == [
        "sent 22 events in 1 messages; refused 1; skipped 1",
        "read 24 lines = 22 sent + 1 refused + 1 skipped (1 header)",
    ]


def test_the_same_in_a_tsv_file(tmp_path: Path) -> None:
    rows = [csv_row(0, sep="\t"), csv_row(1, note='"x', sep="\t")]
    rows += [csv_row(n, sep="\t") for n in range(2, 23)]
    path = tmp_path / "swipes.tsv"
    path.write_text("\t".join(FIELDS) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    report, sent = publish(Source.SWIPE, path)
    assert (len(sent), report.refused, report.read) == (22, 1, 24)


# -- hostile lines --------------------------------------------------------------------------

GOOD = json.dumps(swipe(0))
SURROGATE_ID = json.dumps(swipe(1, event_id="\ud800"))  # JSON text: "\ud800", as escapes
SURROGATE_EXTRA = json.dumps(swipe(2, note="\udfff"))
RAW_SURROGATE = GOOD.replace("TUR-DOOR-1", "TUR-\ud800").encode("utf-8", "surrogatepass")


def _with(raw: str) -> str:
    return GOOD[:-1] + f', "extra": {raw}}}'


HOSTILE: list[tuple[bytes, str | None]] = [
    # (line, reason it is refused with; None for skipped)
    (("[" * 100_000 + "]" * 100_000).encode(), "oversized"),  # past the parser's recursion
    (_with("[" * 1500 + "]" * 1500).encode(), "oversized"),
    (_with("[" * 600 + "]" * 600).encode(), "oversized"),  # parses; over the worker's limit
    (_with("[" * MAX_DEPTH + "]" * MAX_DEPTH).encode(), "oversized"),  # one level too deep
    (_with("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)).encode(), "sent"),  # deep enough
    (SURROGATE_ID.encode(), "invalid_value"),
    (SURROGATE_EXTRA.encode(), "invalid_value"),
    (RAW_SURROGATE, "malformed_json"),  # a surrogate's UTF-8 bytes: not UTF-8
    (b'{"event_id": "caf\xe9"}', "malformed_json"),
    (b"\xff\xfe\x00{", "malformed_json"),
    (_with('"' + "x" * 10_000_000 + '"').encode(), "oversized"),  # a 10 MB line
    (_with('"' + "x" * 100_000 + '"').encode(), "oversized"),
    (b"", None),
    (b"   \t ", None),
    (_with("NaN").encode(), "invalid_value"),
    (_with("-Infinity").encode(), "invalid_value"),
    (_with("1e999").encode(), "invalid_value"),
    (_with("1" * 5000).encode(), "malformed_json"),  # over Python's integer digit limit
    (b"42", "not_an_object"),
    (b"null", "not_an_object"),
    (b'"a string"', "not_an_object"),
    (b"[" + GOOD.encode() + b"]", "not_an_object"),
    (b"{} {}", "malformed_json"),
    (b"\x00", "malformed_json"),
    (GOOD.encode() + b"\r", "sent"),  # a Windows line ending
]


def test_every_hostile_line_gets_an_outcome_and_the_rest_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "hostile.jsonl"
    lines = [GOOD.encode()]
    for line, _ in HOSTILE:
        lines += [line, GOOD.encode()]
    path.write_bytes(b"\n".join(lines))  # no line break after the last line: still a line

    report, sent = publish(Source.SWIPE, path)

    refused = [(2 + 2 * n, why) for n, (_, why) in enumerate(HOSTILE) if why not in {None, "sent"}]
    assert [(r.line, r.reason.value) for r in _all_refusals(path)] == refused
    good = 1 + len(HOSTILE) + sum(why == "sent" for _, why in HOSTILE)
    assert len(sent) == good == report.sent
    assert sum(event == swipe(0) for event in sent) == good - 1  # and the one nested 32 deep
    assert (report.read, report.skipped) == (len(lines), 2)
    assert report.refused == len(refused)
    assert report.adds_up
    assert report.tally() == (
        f"read {len(lines)} lines = {report.sent} sent + {len(refused)} refused "
        "+ 2 skipped (2 blank)"
    )


def _all_refusals(path: Path) -> list[Any]:
    """Every refusal, not just the first few the report keeps."""
    from stream.publisher.envelopes import refusal_at

    found = []
    for index, event in enumerate(read_file(path)):
        result = check_event(Source.SWIPE, event)
        if not isinstance(result, Checked):
            found.append(refusal_at(index, event, result))
    return found


def test_refusals_say_what_is_wrong_without_repeating_the_value(tmp_path: Path) -> None:
    path = tmp_path / "few.jsonl"
    path.write_bytes(
        b"\n".join(
            [SURROGATE_ID.encode(), _with("[" * 40 + "]" * 40).encode(), b"\xff{", b"x" * 2_000_000]
        )
    )
    details = [refusal.detail for refusal in publish(Source.SWIPE, path)[0].examples]
    assert "field 'event_id' is not valid Unicode text" in details[0]
    assert f"more than {MAX_DEPTH} levels deep" in details[1]
    assert "not UTF-8 text (byte 0xff at character 1)" in details[2]
    assert "longer than 1048576 characters" in details[3]


def test_a_bom_and_old_mac_line_endings_are_read(tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    rows = [",".join(FIELDS), csv_row(0), csv_row(1)]
    path.write_bytes(("\ufeff" + "\r".join(rows) + "\r").encode())
    report, sent = publish(Source.SWIPE, path, envelope_size=1)
    assert [event["event_id"] for event in sent] == ["e-0", "e-1"]
    assert (report.read, report.skipped) == (3, 1)
    path = tmp_path / "bom.jsonl"
    path.write_bytes(("\ufeff" + GOOD + "\r\n").encode())
    assert publish(Source.SWIPE, path)[0].sent == 1


def test_hostile_csv_lines_each_cost_their_own_line(tmp_path: Path) -> None:
    path = tmp_path / "swipes.csv"
    lines = [
        b"",  # a blank line before the header
        ",".join(FIELDS).encode(),
        csv_row(0).encode(),
        csv_row(1, note="caf\xe9").encode("latin-1"),  # not UTF-8
        csv_row(2, note="x" * 200_000).encode(),  # a cell over the csv module's limit
        csv_row(3, note="y" * 2_000_000).encode(),  # a line over the reader's limit
        csv_row(4, note='say "hi"').encode(),  # a quote inside a cell is only a character
        csv_row(5, note='"a, b"').encode(),
        csv_row(6, note='"closed" then more').encode(),
        (csv_row(7) + ",surplus").encode(),
        b"",
        csv_row(8, note="\x00").encode(),
        csv_row(9)[: -len(",ok")].encode(),  # a short row: the cells at the end not given
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    report, sent = publish(Source.SWIPE, path)
    assert [event["event_id"] for event in sent] == ["e-0", "e-4", "e-5", "e-8", "e-9"]
    assert [event.get("note") for event in sent][1:3] == ['say "hi"', "a, b"]
    assert outcomes(report) == [
        (4, "invalid_value"),
        (5, "oversized"),
        (6, "oversized"),
        (9, "invalid_value"),
        (10, "invalid_value"),
    ]
    assert (report.read, report.skipped, report.skips) == (13, 3, {"blank": 2, "header": 1})
    assert report.adds_up


def test_a_header_that_cannot_be_used_refuses_every_line_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text("event_id,student_id,event_id\n1,2,3\n4,5,6\n", encoding="utf-8")
    report, sent = publish(Source.SWIPE, path)
    assert sent == []
    assert outcomes(report) == [(1, "invalid_value"), (2, "invalid_value"), (3, "invalid_value")]
    assert "columns 1 and 3 have the same name" in report.examples[0].detail
    assert "header cannot be used" in report.examples[2].detail
    assert report.read == 3 and report.adds_up


def test_an_empty_file_adds_up_to_nothing(tmp_path: Path) -> None:
    for name in ("empty.csv", "empty.jsonl"):
        (tmp_path / name).write_bytes(b"")
        report, _ = publish(Source.SWIPE, tmp_path / name)
        assert (report.read, report.sent, report.refused) == (0, 0, 0)
        assert report.adds_up


def test_a_missing_file_or_unknown_type_stops_at_once_with_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_file(tmp_path / "absent.jsonl")
    with pytest.raises(ValueError, match="unknown file type"):
        read_file(tmp_path / "events.xml")


def test_the_command_says_a_file_is_missing_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", str(tmp_path / "absent.csv"), "--source", "swipe"]) == 2
    assert "absent.csv: no such file" in capsys.readouterr().err


# -- the checker alone ----------------------------------------------------------------------


class Exploding(Mapping[str, object]):
    """A mapping that fails when read."""

    def __getitem__(self, key: str) -> object:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


def nested(depth: int) -> dict[str, object]:
    event = swipe(1)
    inner: list[object] = []
    event["extra"] = inner
    for _ in range(depth):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]  # one level deeper
    return event


def circular() -> dict[str, object]:
    event = swipe(1)
    event["self"] = event
    return event


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (nested(100_000), Reason.OVERSIZED),  # the JSON encoder would recurse past the limit
        (nested(MAX_DEPTH), Reason.OVERSIZED),
        (circular(), Reason.OVERSIZED),
        (swipe(1, building="\udc00 Hall"), Reason.INVALID_VALUE),
        ({**swipe(1), "\ud800": 1}, Reason.INVALID_VALUE),
        (swipe(1, note=float("inf")), Reason.INVALID_VALUE),
        (swipe(1, note=10**5000), Reason.INVALID_VALUE),
        (swipe(1, note=["x" * 20_000]), Reason.OVERSIZED),
        (Exploding(), Reason.PROCESSING_ERROR),
    ],
    ids=lambda value: type(value).__name__,
)
def test_the_checker_refuses_what_json_cannot_carry_and_never_raises(
    event: object, reason: Reason
) -> None:
    result = check_event(Source.SWIPE, event)
    assert not isinstance(result, Checked)
    assert result[0] is reason
    assert result[1]


def test_nesting_up_to_the_workers_limit_is_sent() -> None:
    assert MAX_DEPTH == WORKER_MAX_DEPTH  # the worker refuses what is deeper
    assert isinstance(check_event(Source.SWIPE, nested(MAX_DEPTH - 2)), Checked)


def test_an_event_too_big_for_one_message_is_refused_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With a per-event limit over the message limit, the event used to be packed alone into a
    # message Kafka refuses: counted as sent, then lost.
    monkeypatch.setattr(producer_module, "KafkaProducer", FakeProducer)
    events = [vle(1), vle(2, note="n" * 1_500_000), vle(3)]
    for size in (1, 500):
        publisher = Publisher(
            "localhost:1", topics=TopicNames(), envelope_size=size, max_event_bytes=4_000_000
        )
        report = publisher.publish(Source.VLE, events)
        assert (report.sent, report.refused, report.reasons) == (2, 1, {"oversized": 1})
        assert all(len(value) <= 1_048_576 for _, _, value in publisher._producer.sent)
        publisher.close()
    publisher = Publisher(
        "localhost:1", topics=TopicNames(), envelope_size=1, max_message_bytes=100_000
    )
    report = publisher.publish_stream([(Source.VLE, vle(1, note="n" * 200_000)), ("vle", b"{")])
    assert (report.read, report.raw, report.refused) == (2, 1, 1) and report.adds_up
    publisher.close()


def test_publish_file_counts_lines_through_the_publisher(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(producer_module, "KafkaProducer", FakeProducer)
    path = tmp_path / "swipes.jsonl"
    path.write_text(f"{GOOD}\n\n[1]\n{GOOD}\n", encoding="utf-8")
    with Publisher("localhost:1", topics=TopicNames(), envelope_size=1) as publisher:
        report = publish_file(path, "swipe", publisher)
    assert report.tally() == "read 4 lines = 2 sent + 1 refused + 1 skipped (1 blank)"


def test_a_summary_that_does_not_add_up_says_so() -> None:
    report = PublishReport(sent=2, refused=0, read=23, unit="lines")
    assert report.tally() == (
        "read 23 lines, but 2 sent + 0 refused + 0 skipped = 2: 21 lines have no outcome; "
        "this is a bug, please report it"
    )
    assert not report.adds_up


# -- properties -----------------------------------------------------------------------------

_TEXT = st.text(  # lone surrogates often: Python strings hold them, UTF-8 and JSON text cannot
    st.characters(exclude_categories=())
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    max_size=12,
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=12,
)


@st.composite
def events(draw: st.DrawFn) -> object:
    """Anything a caller might hand the checker: events with odd values, odd shapes, deep ones."""
    base = swipe(draw(st.integers(0, 99)))
    kind = draw(st.sampled_from(["field", "extra", "shape", "deep"]))
    if kind == "field":
        base[draw(st.sampled_from(sorted(base)))] = draw(_JSON)
    elif kind == "extra":
        base[draw(_TEXT)] = draw(_JSON)
    elif kind == "deep":
        return nested(draw(st.integers(0, 3 * MAX_DEPTH) | st.integers(900, 5_000)))
    else:
        return draw(_JSON)
    return base


@settings(max_examples=300, deadline=None)
@given(event=events())
def test_property_the_checker_never_raises(event: object) -> None:
    result = check_event(Source.SWIPE, event)
    if not isinstance(result, Checked):
        reason, detail = result
        assert isinstance(reason, Reason) and detail
    else:
        assert json.loads(result.text)["event_id"]


_PIECES = st.sampled_from(
    [
        GOOD.encode(),
        csv_row(5).encode(),
        csv_row(6, sep="\t").encode(),
        b'"',
        b'""',
        b",",
        b"\t",
        b"\r",
        b"\r\n",
        b"\n",
        b"\n\n",
        b" ",
        b"\xff",
        b"\xed\xa0\x80",
        b"\xef\xbb\xbf",
        b"\x00",
        b"[" * 2000,
        b"]" * 2000,
        b"{",
        b"}",
        b"NaN",
        b'"\\ud800"',
        b"x" * 300,
        b'{"a": ',
        b"e" * 5_000,  # over the line limit used here
    ]
)
_FILES = st.lists(
    st.one_of(_PIECES, st.binary(max_size=20), _JSON.map(lambda j: json.dumps(j).encode())),
    max_size=40,
)


def physical_lines(data: bytes, universal: bool) -> int:
    """Lines as a reader of the format sees them: only "\\n" ends a JSON line; CSV takes "\\r".

    A byte-order mark at the start is not content: a file holding only one has no lines.
    """
    data = data.removeprefix(b"\xef\xbb\xbf")
    if not data:
        return 0
    ends = re.compile(rb"\r\n|\r|\n") if universal else re.compile(rb"\n")
    parts = ends.split(data)
    return len(parts) - 1 if parts[-1] == b"" else len(parts)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pieces=_FILES, suffix=st.sampled_from([".jsonl", ".csv", ".tsv"]), size=st.sampled_from([1, 3])
)
def test_property_every_line_read_is_sent_refused_or_skipped(
    tmp_path: Path, pieces: list[bytes], suffix: str, size: int
) -> None:
    header = ("\t" if suffix == ".tsv" else ",").join(FIELDS).encode() + b"\n"
    data = (b"" if suffix == ".jsonl" else header) + b"".join(pieces)
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    report = PublishReport()
    messages = list(
        pack_events(Source.SWIPE, read_file(path, max_line_chars=4_096), report, envelope_size=size)
    )
    assert report.read == physical_lines(data, universal=suffix != ".jsonl")
    assert report.read == report.sent + report.refused + report.skipped
    assert report.adds_up
    sent = (
        len(messages)
        if size == 1
        else sum(len(json.loads(value)["events"]) for _, value in messages)
    )
    assert sent == report.sent
    assert report.tally().startswith(f"read {report.read} lines = ")


def test_property_helpers_are_not_vacuous() -> None:
    assert physical_lines(b"a\r\nb\rc\n", universal=True) == 3
    assert physical_lines(b"a\r\nb\rc", universal=False) == 2
    assert physical_lines(b"", universal=True) == 0
    assert physical_lines(b"\xef\xbb\xbf\n", universal=False) == 1


def test_the_command_uses_the_workers_size_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import stream.topics

    monkeypatch.setattr(producer_module, "KafkaProducer", FakeProducer)
    monkeypatch.setattr(stream.topics, "ensure_topics", lambda *args, **kwargs: None)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost:1")
    monkeypatch.setenv("REDIS_URL", "redis://localhost:1")
    monkeypatch.setenv("ENGAGEMENT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ENGAGEMENT_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.setenv("ENGAGEMENT_MAX_EVENT_BYTES", "512")
    path = tmp_path / "vle.jsonl"
    path.write_text(json.dumps(vle(1, note="n" * 600)) + "\n", encoding="utf-8")
    assert main(["publish", str(path), "--source", "vle"]) == 1  # nothing sent
    out = capsys.readouterr().out
    assert "read 1 lines = 0 sent + 1 refused + 0 skipped" in out
    assert "over the 512-byte limit per event" in out
