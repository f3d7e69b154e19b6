"""What one publish did: events sent, messages used, events refused and a sentence for each."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from schemas.common import Reason
from schemas.errors import EngagementError

EXAMPLES_KEPT: Final = 10


class PublishError(EngagementError):
    """Kafka refused or lost messages, or topics could not be created; the message says which."""


@dataclass(frozen=True)
class Refusal:
    """Why one event was not sent, where it was, and a sentence a data owner can act on."""

    index: int
    reason: Reason
    detail: str
    line: int | None = None

    def sentence(self) -> str:
        """The refusal as one readable sentence naming its position."""
        where = f"line {self.line}" if self.line is not None else f"event {self.index}"
        return f"{where} refused ({self.reason.value}): {self.detail}"


@dataclass
class PublishReport:
    """What one publish call did: events sent, messages used, events refused and why."""

    sent: int = 0
    messages: int = 0
    raw: int = 0
    refused: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[Refusal] = field(default_factory=list)

    def refuse(self, refusal: Refusal) -> None:
        """Count a refusal, keeping the first few for the report."""
        self.refused += 1
        self.reasons[refusal.reason.value] += 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(refusal)

    def merge(self, other: PublishReport) -> None:
        """Add another report's figures to this one."""
        self.sent += other.sent
        self.messages += other.messages
        self.raw += other.raw
        self.refused += other.refused
        self.reasons.update(other.reasons)
        room = EXAMPLES_KEPT - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])

    @property
    def sentences(self) -> list[str]:
        """The kept refusals as sentences."""
        return [refusal.sentence() for refusal in self.examples]

    def summary(self) -> str:
        """A few lines for a terminal: totals, then refusals by reason with examples."""
        lines = [
            f"sent {self.sent} events in {self.messages} messages"
            + (f" (+{self.raw} raw payloads)" if self.raw else "")
            + f"; refused {self.refused}"
        ]
        lines += [f"  {reason}: {count}" for reason, count in self.reasons.most_common()]
        lines += [f"  - {sentence}" for sentence in self.sentences]
        return "\n".join(lines)
