"""Publish reference data (roster, timetable, exemptions, identity map, reader map) to its
compacted topics."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaProducer
from pydantic import ValidationError

from schemas.common import classify_validation_error
from schemas.reference import REFERENCE_MODELS
from schemas.topics import TopicNames

ID_FIELD = {
    "roster": "student_id",
    "timetable": "session_id",
    "exemptions": "exemption_id",
    "identity": "actor",
    "readers": "reader_id",
}


@dataclass
class ReferenceReport:
    """What a load sent and refused, with the line of each refusal."""

    sent: int = 0
    deleted: int = 0
    refused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line, then one line per refusal."""
        lines = [f"sent {self.sent} records, {self.deleted} deletions; refused {len(self.refused)}"]
        lines.extend(f"  {problem}" for problem in self.refused)
        return "\n".join(lines)


def read_records(
    kind: str, lines: Iterable[str]
) -> tuple[list[tuple[str, bytes | None]], list[str]]:
    """(key, value) pairs from JSONL; ``{"delete": "<id>"}`` is a tombstone for that id."""
    model = REFERENCE_MODELS[kind]
    records: list[tuple[str, bytes | None]] = []
    refused: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            refused.append(f"line {number}: not valid JSON ({exc})")
            continue
        if isinstance(data, dict) and set(data) == {"delete"} and isinstance(data["delete"], str):
            records.append((data["delete"], None))
            continue
        try:
            record = model.model_validate(data)
        except ValidationError as exc:
            refused.append(f"line {number}: {classify_validation_error(exc)[1]}")
            continue
        key = str(getattr(record, ID_FIELD[kind]))
        records.append((key, record.model_dump_json().encode()))
    return records, refused


def publish_reference(
    bootstrap: str,
    topics: TopicNames,
    kind: str,
    path: Path,
    client_options: Mapping[str, object] | None = None,
) -> ReferenceReport:
    """Validate a JSONL file of one kind of reference record and publish it, keyed by id."""
    if kind not in ID_FIELD:
        msg = f"unknown reference data {kind!r}; expected one of {', '.join(ID_FIELD)}"
        raise ValueError(msg)
    records, refused = read_records(kind, path.read_text(encoding="utf-8").splitlines())
    report = ReferenceReport(refused=refused)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, **(client_options or {})
    )
    try:
        for key, value in records:
            producer.send(topics.reference(kind), key=key.encode(), value=value)
            if value is None:
                report.deleted += 1
            else:
                report.sent += 1
        producer.flush()
    finally:
        producer.close()
    return report
