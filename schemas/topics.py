"""Topic names, in one place. A prefix isolates deployments that share a cluster (and tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.sources import SOURCES, SourceRegistry

REFERENCE_KINDS = ("roster", "timetable", "exemptions", "identity", "readers")


@dataclass(frozen=True)
class TopicNames:
    """Every topic the product reads or writes, under one optional prefix."""

    prefix: str = ""
    sources: SourceRegistry = field(default_factory=lambda: SOURCES, compare=False, repr=False)
    """The source kinds whose raw topics exist (every registered one)."""

    def raw(self, source: str) -> str:
        """Raw feed topic: real student ids, short retention."""
        try:
            kind = self.sources[source]
        except KeyError:
            known = ", ".join(self.sources)
            msg = f"{source!r} is not a registered source; expected one of {known}"
            raise ValueError(msg) from None
        return self.prefix + kind.raw_topic

    @property
    def raw_all(self) -> tuple[str, ...]:
        """Every raw feed topic."""
        return tuple(self.raw(source) for source in self.sources)

    @property
    def signals(self) -> str:
        """Pseudonymous canonical signals, keyed (and partitioned) by student pseudonym."""
        return f"{self.prefix}engagement.signals"

    @property
    def nudges(self) -> str:
        """Nudges with their full explanation, keyed by pseudonym."""
        return f"{self.prefix}engagement.nudges"

    @property
    def interventions(self) -> str:
        """The intervention log of record: one entry per decision."""
        return f"{self.prefix}engagement.interventions"

    @property
    def preferences(self) -> str:
        """Students' opt-out changes, keyed by student id (from the student app or the CLI)."""
        return f"{self.prefix}engagement.preferences"

    @property
    def outbound(self) -> str:
        """Messages for the notification service, when a channel's transport is Kafka."""
        return f"{self.prefix}engagement.outbound"

    @property
    def deadletter(self) -> str:
        """Refused input with a machine-readable reason and a redacted excerpt."""
        return f"{self.prefix}engagement.deadletter"

    def reference(self, kind: str) -> str:
        """Reference data from student records and timetabling (compacted, keyed by id)."""
        if kind not in REFERENCE_KINDS:
            msg = f"unknown reference data {kind!r}; expected one of {', '.join(REFERENCE_KINDS)}"
            raise ValueError(msg)
        return f"{self.prefix}engagement.reference.{kind}"

    @property
    def health(self) -> str:
        """Source-health events: a feed or location gone quiet against its normal pattern."""
        return f"{self.prefix}engagement.sourcehealth"

    @property
    def all(self) -> tuple[str, ...]:
        """Every topic, for creating them up front."""
        return (
            *self.raw_all,
            self.signals,
            self.nudges,
            self.interventions,
            self.preferences,
            self.outbound,
            self.deadletter,
            self.health,
            *(self.reference(kind) for kind in REFERENCE_KINDS),
        )
