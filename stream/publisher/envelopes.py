"""Pack checked events into Kafka messages: v1 envelopes of many events, or single keyed events.

Packing is pure (no broker), so the size limits and the cut points are unit-tested directly;
the Kafka producer only sends what comes out of here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import compress
from typing import Final, overload

from schemas.common import SCHEMA_VERSION, Reason
from stream.publisher.checks import MAX_EVENT_BYTES, Checked, check_event, registered_source
from stream.publisher.report import CountsLines, PublishReport, Refusal

MAX_REQUEST_BYTES: Final = 1_048_576  # producer max_request_size; the broker default allows it
RECORD_HEADROOM: Final = 1_024  # record and batch framing kept free under MAX_REQUEST_BYTES

Message = tuple[bytes | None, bytes]
"""One Kafka message as (key, value)."""


def pack_events(
    source: str,
    events: Iterable[object],
    report: PublishReport,
    *,
    envelope_size: int = 500,
    max_event_bytes: int = MAX_EVENT_BYTES,
    max_message_bytes: int = MAX_REQUEST_BYTES - RECORD_HEADROOM,
) -> Iterator[Message]:
    """Turn events into (key, value) messages, counting refusals in ``report``; no Kafka needed.

    Every event given is counted in ``report.read`` (or, for a file from
    :func:`~stream.publisher.files.read_file`, every line the file reader read), and ends as
    sent or refused; so ``report.adds_up`` holds however the events are.
    """
    # Envelopes hold up to envelope_size events, cut early rather than exceed max_message_bytes;
    # envelope_size=1 yields each event alone, keyed by student id.
    if envelope_size < 1:
        msg = f"envelope_size must be at least 1, got {envelope_size}"
        raise ValueError(msg)
    source = registered_source(source)
    packer = Packer(source, envelope_size, max_message_bytes)
    limit = min(max_event_bytes, packer.event_limit)  # an event must fit in one message
    given = 0
    try:
        for index, event in enumerate(events):
            given += 1
            checked = check_event(source, event, max_event_bytes=limit)
            if not isinstance(checked, Checked):
                report.refuse(refusal_at(index, event, checked))
                continue
            report.sent += 1
            message = packer.add(checked)
            if message is not None:
                report.messages += 1
                yield message
        message = packer.finish()
        if message is not None:
            report.messages += 1
            yield message
    finally:  # also when reading stopped early: what was read is counted
        if isinstance(events, CountsLines):
            report.count_lines(events)
        else:
            report.read += given


class Packer:
    """Collects checked events of one source into envelopes (or single keyed messages)."""

    def __init__(self, source: str, envelope_size: int, max_message_bytes: int) -> None:
        self.source = source
        self.envelope_size = envelope_size
        self.limit = max_message_bytes - 128  # room for the envelope's own fields
        self.pending: list[str] = []
        self.pending_bytes = 0
        # The largest event a message can carry: alone, or in an envelope with its comma.
        self.event_limit = max_message_bytes if envelope_size == 1 else self.limit - 1

    def add(self, checked: Checked) -> Message | None:
        """Take one event; return a message when one is complete."""
        return self._add(checked.text, checked.size, checked.student_id)

    def _add(self, text: str, size: int, student_id: str) -> Message | None:
        if self.envelope_size == 1:
            return student_id.encode(), text.encode()
        message = None
        if self.pending and self.pending_bytes + size + 1 > self.limit:
            message = self.finish()
        self.pending.append(text)
        self.pending_bytes += size + 1
        if len(self.pending) >= self.envelope_size:
            message = self.finish()  # only one of the two can happen when envelope_size > 1
        return message

    def add_run(self, run: CheckedRun) -> list[Message]:
        """Take a run of events; return the messages completed, exactly as :meth:`add` one
        event at a time would. A stretch that fills the envelope within the byte limit (the
        usual case) is taken whole, without a step per event."""
        texts, sizes, ids = run.texts, run.sizes, run.student_ids
        if self.envelope_size == 1:
            return [(k.encode(), t.encode()) for t, k in zip(texts, ids, strict=True)]
        messages: list[Message] = []
        start, count = 0, len(texts)
        while start < count:
            end = min(count, start + self.envelope_size - len(self.pending))
            stretch = sum(sizes[start:end]) + (end - start)  # each with its comma
            if self.pending_bytes + stretch <= self.limit:  # add() would not cut early
                self.pending.extend(texts[start:end])
                self.pending_bytes += stretch
                if len(self.pending) >= self.envelope_size:
                    messages.append((None, self._take()))
            else:
                for k in range(start, end):
                    message = self._add(texts[k], sizes[k], ids[k])
                    if message is not None:
                        messages.append(message)
            start = end
        return messages

    def finish(self) -> Message | None:
        """Return the partly filled envelope, if any, and start a new one."""
        if not self.pending:
            return None
        return None, self._take()

    def _take(self) -> bytes:
        envelope = _envelope(self.source, self.pending)
        self.pending, self.pending_bytes = [], 0
        return envelope


class CheckedRun(Sequence[Checked]):
    """Checked events kept as three parallel lists (text, size, student id), so that a batch
    of many events needs no object per event; an event is made only when asked for. Built
    with ``keep``, only the events whose ``keep`` entry is true are in the run."""

    def __init__(
        self,
        texts: list[str],
        sizes: list[int],
        student_ids: list[str],
        keep: Sequence[object] | None = None,
    ) -> None:
        if keep is not None:
            texts = list(compress(texts, keep))
            sizes = list(compress(sizes, keep))
            student_ids = list(compress(student_ids, keep))
        self.texts = texts
        self.sizes = sizes
        self.student_ids = student_ids

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, k: int) -> Checked: ...
    @overload
    def __getitem__(self, k: slice) -> Sequence[Checked]: ...
    def __getitem__(self, k: int | slice) -> Checked | Sequence[Checked]:
        if isinstance(k, slice):
            return CheckedRun(self.texts[k], self.sizes[k], self.student_ids[k])
        return Checked(self.texts[k], self.sizes[k], self.student_ids[k])

    def total_bytes(self) -> int:
        """The events' sizes, summed."""
        return sum(self.sizes)


def refusal_at(index: int, event: object, problem: tuple[Reason, str]) -> Refusal:
    """A refusal of the event at ``index``, naming its file line when it came from a file."""
    line = getattr(event, "line", None) if isinstance(event, dict) else None
    return Refusal(index, problem[0], problem[1], line)


def _envelope(source: str, texts: list[str]) -> bytes:
    """Wrap already-encoded events in a v1 envelope without re-encoding them."""
    sent_at = datetime.now(UTC).isoformat()
    head = (
        f'{{"schema_version":{SCHEMA_VERSION},"source":"{source!s}",'
        f'"sent_at":"{sent_at}","events":['
    )
    return (head + ",".join(texts) + "]}").encode()
