"""Send a simulation to Kafka in event-time order, with its malformed payloads spread through."""

from __future__ import annotations

from collections.abc import Iterator

from schemas.common import Source
from stream.dev.simulate.simulation import Simulation
from stream.publisher import Publisher, PublishReport


def publish_simulation(sim: Simulation, publisher: Publisher) -> PublishReport:
    """Send the simulation in event-time order (malformed payloads raw), then flush."""
    # Malformed payloads are spread evenly through the stream; with envelopes each source's
    # events wait until they fill one (see Publisher.publish_stream).
    report = publisher.publish_stream(_feed(sim))
    publisher.flush()
    return report


def _feed(sim: Simulation) -> Iterator[tuple[Source, dict[str, object] | bytes]]:
    """The events in order, with the malformed payloads spread evenly between them."""
    total, count = len(sim.events), len(sim.malformed)
    malformed = iter(sim.malformed)
    sent = 0
    for index, (source, event) in enumerate(sim.events):
        while sent < count and (sent + 1) * total // (count + 1) <= index:
            bad_source, payload, _ = next(malformed)
            yield bad_source, payload
            sent += 1
        yield source, event
    for bad_source, payload, _ in malformed:
        yield bad_source, payload
