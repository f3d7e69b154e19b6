"""From a native payload to checked product events: the steps the ingest service and
``engagement publish --format`` share.

1. :func:`adapt`: the format's adapter gives one unit outcome per unit (never raises).
2. the caller looks up :func:`agents.adapters.identity.wanted` keys in the identity map;
3. :func:`finish`: identity resolved, and each accepted event checked exactly as the publisher
   and the worker check events (schema, size, forbidden fields); one that fails is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from agents.adapters.identity import Policy, resolve
from agents.adapters.units import AdaptContext, Outcome, Unit
from schemas.common import Reason
from stream.ingest.formats import Format
from stream.publisher.checks import Checked, check_event


def adapt(fmt: Format, payload: Any, received: datetime) -> list[Unit]:
    """The format's unit outcomes; an adapter bug refuses the payload's units, never raises."""
    try:
        return fmt.adapt(payload, AdaptContext(received_at=received))
    except Exception as exc:
        detail = f"the {fmt.name} adapter failed ({type(exc).__name__}); nothing was taken"
        return [
            Unit.refused(i, Reason.PROCESSING_ERROR, detail) for i in range(fmt.units_in(payload))
        ]


def finish(
    units: Sequence[Unit], policy: Policy, found: Mapping[str, str], max_event_bytes: int
) -> list[tuple[Unit, Checked | None]]:
    """Each unit with its checked event (accepted units only; None for the others)."""
    out: list[tuple[Unit, Checked | None]] = []
    for unit in resolve(units, policy, found):
        source = unit.source
        if unit.outcome is not Outcome.ACCEPTED or unit.event is None or not source:
            out.append((unit, None))
            continue
        checked = check_event(source, dict(unit.event), max_event_bytes=max_event_bytes)
        if isinstance(checked, Checked):
            out.append((unit, checked))
        else:
            out.append((Unit.refused(unit.index, checked[0], checked[1]), None))
    return out
