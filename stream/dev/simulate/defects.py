"""Malformed input for the simulated feed: broken copies of real events, one defect each.

Every kind of defect the worker must refuse (bad JSON, a missing field, a wrong type, an
invalid value, assessment or special-category data, an oversized event) appears in turn, so
a run shows each dead-letter reason with a known count.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Final

from schemas.common import Reason, Source
from schemas.sources import SOURCES
from stream.dev.simulate.cohort import SimConfig

OVERSIZED_BYTES: Final = 21_000

MALFORMED_KINDS: Final = (
    Reason.MALFORMED_JSON,
    Reason.MISSING_FIELD,
    Reason.WRONG_TYPE,
    Reason.INVALID_VALUE,
    Reason.ASSESSMENT_DATA,
    Reason.FORBIDDEN_FIELD,
    Reason.OVERSIZED,
)
# The fields an event of each registered feed cannot do without, in the schema's order (a
# missing-field defect deletes one of them).
REQUIRED_FIELDS: Final = {
    name: tuple(field for field, info in kind.model.model_fields.items() if info.is_required())
    for name, kind in SOURCES.items()
}


def broken_copies(
    rng: random.Random, config: SimConfig, events: list[tuple[Source, dict[str, object]]]
) -> Iterator[tuple[Source, bytes, str]]:
    """Broken copies of real events, each with exactly one defect, cycling through the kinds."""
    count = round(config.malformed_rate * len(events))
    if not events or count == 0:
        return
    kinds = [MALFORMED_KINDS[n % len(MALFORMED_KINDS)] for n in range(count)]
    rng.shuffle(kinds)
    vle = [event for source, event in events if source is Source.VLE]
    for number, kind in enumerate(kinds):
        if kind is Reason.OVERSIZED and vle:
            source, template = Source.VLE, rng.choice(vle)
        else:
            source, template = rng.choice(events)
        payload: dict[str, object] = {**template, "event_id": f"sim-{config.seed}-bad-{number}"}
        yield source, _break(rng, source, payload, kind), kind.value


def _break(rng: random.Random, source: Source, payload: dict[str, object], kind: Reason) -> bytes:
    """Apply one defect of ``kind`` to a valid event and return the bytes to send."""
    if kind is Reason.MALFORMED_JSON:
        text = json.dumps(payload)
        if rng.random() < 0.5:
            return text[: rng.randint(1, len(text) - 1)].encode()  # cut off mid-message
        return repr(payload).encode()  # single quotes: a Python dict, not JSON
    if kind is Reason.MISSING_FIELD:
        del payload[rng.choice(REQUIRED_FIELDS[source])]
    elif kind is Reason.WRONG_TYPE:
        choice = rng.randrange(3)
        if choice == 0:
            payload["occurred_at"] = 12
        elif choice == 1:
            payload["occurred_at"] = [str(payload["occurred_at"])]
        else:
            payload["student_id"] = int(str(payload["student_id"]).lstrip("S"))
    elif kind is Reason.INVALID_VALUE:
        payload["occurred_at"] = str(payload["occurred_at"])[:19]  # drop the UTC offset
    elif kind is Reason.ASSESSMENT_DATA:
        field_name, value = rng.choice((("grade", "B+"), ("score", 62), ("final_result", "2:1")))
        payload[field_name] = value
    elif kind is Reason.FORBIDDEN_FIELD:
        field_name, value = rng.choice(
            (("ethnicity", "not stated"), ("disability", "declared"), ("religion", "none"))
        )
        payload[field_name] = value
    elif kind is Reason.OVERSIZED:
        segment = "/chapter-" + "x" * 40
        payload["resource"] = "course-pack" + segment * (OVERSIZED_BYTES // len(segment) + 1)
    return json.dumps(payload, separators=(",", ":")).encode()
