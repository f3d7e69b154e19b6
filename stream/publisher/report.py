"""What one publish did: what was read, sent, refused or skipped, and a sentence for each refusal.

Every input is counted once: ``read = sent + raw + refused + skipped``. For a file, ``read`` is
the number of lines the reader went through (counted by the reader, not by what it yielded),
so a line lost on the way would show as a gap in the summary instead of disappearing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from schemas.common import Reason
from schemas.errors import EngagementError

EXAMPLES_KEPT: Final = 10


class PublishError(EngagementError):
    """Kafka refused or lost messages, or topics could not be created; the message says which."""


class InputFileError(EngagementError, ValueError):
    """A file of events cannot be opened or is of an unknown type; the message says which."""


@runtime_checkable
class CountsLines(Protocol):
    """An input that counts its own lines: every line read, and those skipped without an event."""

    lines: int
    skipped: Counter[str]


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
    """What one publish call did: inputs read; events sent, refused and why; lines skipped."""

    sent: int = 0
    messages: int = 0
    raw: int = 0
    refused: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[Refusal] = field(default_factory=list)
    read: int = 0
    """Inputs read: lines of a file (header and blank lines included), or items given."""
    skipped: int = 0
    """Lines that hold no event (a CSV header, a blank line), by ``skips``."""
    skips: Counter[str] = field(default_factory=Counter)
    unit: str = "inputs"
    """What ``read`` counts: "lines" for a file, "inputs" otherwise."""

    def refuse(self, refusal: Refusal) -> None:
        """Count a refusal, keeping the first few for the report."""
        self.refused += 1
        self.reasons[refusal.reason.value] += 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(refusal)

    def count_lines(self, source: CountsLines) -> None:
        """Take the line counts of a file once it was read to its end (or as far as it got)."""
        self.unit = "lines"
        self.read += source.lines
        self.skipped += sum(source.skipped.values())
        self.skips.update(source.skipped)

    @property
    def accounted(self) -> int:
        """Inputs with an outcome: sent, sent raw, refused or skipped."""
        return self.sent + self.raw + self.refused + self.skipped

    @property
    def adds_up(self) -> bool:
        """Whether every input read has exactly one outcome."""
        return self.read == self.accounted

    def merge(self, other: PublishReport) -> None:
        """Add another report's figures to this one."""
        if other.unit != self.unit:  # a file's lines merged with items given: both are inputs
            self.unit = other.unit if not self.read else "inputs"
        self.sent += other.sent
        self.messages += other.messages
        self.raw += other.raw
        self.refused += other.refused
        self.reasons.update(other.reasons)
        room = EXAMPLES_KEPT - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])
        self.read += other.read
        self.skipped += other.skipped
        self.skips.update(other.skips)

    @property
    def sentences(self) -> list[str]:
        """The kept refusals as sentences."""
        return [refusal.sentence() for refusal in self.examples]

    def tally(self) -> str:
        """One line saying how the inputs read add up, or by how much they do not."""
        parts = [f"{self.sent} sent"]
        if self.raw:
            parts.append(f"{self.raw} raw")
        parts.append(f"{self.refused} refused")
        skipped = f"{self.skipped} skipped"
        if self.skips:
            skipped += " (" + ", ".join(f"{n} {why}" for why, n in sorted(self.skips.items())) + ")"
        parts.append(skipped)
        sums = " + ".join(parts)
        if self.adds_up:
            return f"read {self.read} {self.unit} = {sums}"
        gap = self.read - self.accounted
        return (
            f"read {self.read} {self.unit}, but {sums} = {self.accounted}: "
            f"{abs(gap)} {self.unit} {'have no outcome' if gap > 0 else 'counted twice'}; "
            "this is a bug, please report it"
        )

    def summary(self) -> str:
        """A few lines for a terminal: totals, how they add up, refusals by reason with examples."""
        lines = [
            f"sent {self.sent} events in {self.messages} messages"
            + (f" (+{self.raw} raw payloads)" if self.raw else "")
            + f"; refused {self.refused}"
            + (f"; skipped {self.skipped}" if self.skipped else ""),
            self.tally(),
        ]
        lines += [f"  {reason}: {count}" for reason, count in self.reasons.most_common()]
        lines += [f"  - {sentence}" for sentence in self.sentences]
        return "\n".join(lines)
