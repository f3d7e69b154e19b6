"""Importing vendor exports through a mapping: one file (``engagement publish FILE --mapping``)
or every file that lands in a folder (``engagement watch DIR --mapping``).

A watched file is imported once it has stopped growing (its size and modification time are the
same at two looks a poll apart, so a file still being copied in is left alone), then moved to
``done/`` — or ``failed/`` when it could not be read at all or the broker did not take it — with
its per-unit report beside it (``<name>.report.json``). Files whose name starts with ``.`` or
ends in ``.part``/``.tmp`` are never taken. Re-importing a file after a crash counts nothing
twice: events are de-duplicated by feed and event id.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

from schemas.mappings import Mapping
from stream.ingest.files import FileReport
from stream.ingest.imports import Lookup, PreparedBatch, prepare_export
from stream.publisher import Checked, Publisher
from stream.publisher.envelopes import CheckedRun
from stream.publisher.report import InputFileError, PublishError

ReferenceSend = Callable[[str, str, bytes], None]  # kind, key, value
# Events sent before the import waits for the broker's acknowledgements: the Kafka client keeps
# every unacknowledged message in memory, so a broker slower than the import would otherwise
# let a large export fill the process's memory.
IN_FLIGHT_BYTES = 16 * 1_048_576
_SIZE = attrgetter("size")
_SKIP_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")


def import_file(
    path: Path,
    mapping: Mapping,
    publisher: Publisher,
    send_reference: ReferenceSend,
    lookup: Lookup | None,
    *,
    progress: bool = False,
) -> FileReport:
    """Import one export; the report holds every row's outcome with its line."""
    report = BatchReport()
    total = max(path.stat().st_size, 1)
    shown = 0.0
    queued = 0  # bytes of events sent and perhaps not yet acknowledged
    with path.open("rb") as stream, _fewer_collections():
        for batch in prepare_export(stream, mapping, lookup, publisher.max_event_bytes):
            events: Sequence[Checked] = []
            if isinstance(batch, PreparedBatch):  # the fast path: no unit for accepted rows
                run = report.add_batch(batch)
                events, size = run, run.total_bytes()
            else:
                events = []
                for prepared in batch:
                    report.add(prepared.line, prepared.unit)
                    if prepared.checked is not None:
                        events.append(prepared.checked)
                    elif prepared.reference is not None:
                        send_reference(mapping.produces, *prepared.reference)
                size = sum(map(_SIZE, events))
            if events:
                publisher.publish_checked(mapping.produces, events)
                queued += size
                if queued > IN_FLIGHT_BYTES:  # the producer buffers without limit: wait
                    publisher.flush()
                    queued = 0
            if progress and time.monotonic() - shown > 0.5:
                shown = time.monotonic()
                done = min(stream.tell() / total, 1.0)
                line = f"\r{path.name}: {done:4.0%}, {report.count:,} rows"
                print(line, end="", file=sys.stderr)
    publisher.flush()
    if progress:
        print(f"\r{path.name}: 100%, {report.count:,} rows", file=sys.stderr)
    return report


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """An import makes millions of short-lived objects and no reference cycles: the cyclic
    garbage collector's passes over them find nothing, yet took ~15% of its CPU time at the
    default threshold. It runs less often during an import, as before after."""
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


class BatchReport(FileReport):
    """A file's report that takes a fast-path batch whole: an accepted row's line is written
    as :meth:`FileReport.add` writes it, without making its unit first."""

    def add_batch(self, batch: PreparedBatch) -> CheckedRun:
        """Report every row of ``batch``, in order; return its events to send, in order."""
        first, others = batch.first, batch.others
        accepted = _ACCEPTED.replace("%s", json.dumps(batch.mapping.produces).replace("%", "%%"))
        rows = zip(batch.lines, range(first, first + len(batch)), strict=True)
        lines = list(map(accepted.__mod__, rows))
        vouched = batch.vouched
        texts, sizes, ids = vouched.texts, vouched.sizes, vouched.student_ids
        copied = False
        for k, prepared in others.items():  # the rows decided row by row
            unit = prepared.unit
            lines[k] = json.dumps({"line": prepared.line, **unit.report()}) + "\n"
            self.tally[str(unit.outcome)] += 1
            if unit.reason:
                self.reasons[f"{unit.outcome}: {unit.reason}"] += 1
            checked = prepared.checked
            if checked is not None:
                if not copied:  # the batch keeps its own lists
                    texts, sizes, ids, copied = texts.copy(), sizes.copy(), ids.copy(), True
                texts[k], sizes[k], ids[k] = checked.text, checked.size, checked.student_id
        self._spill.write("".join(lines))
        self.count += len(lines)
        self.tally["accepted"] += len(lines) - len(others)
        return CheckedRun(texts, sizes, ids, keep=texts)  # the rows with an event


_ACCEPTED = '{"line": %d, "index": %d, "outcome": "accepted", "as": %s}\n'  # as json.dumps


def ready_files(folder: Path, sizes: dict[Path, tuple[int, float]]) -> list[Path]:
    """Files that have not changed since the last look (``sizes`` keeps the looks)."""
    ready = []
    seen = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix in _SKIP_SUFFIXES:
            continue
        if path.name.endswith(".report.json"):
            continue
        stat = path.stat()
        look = (stat.st_size, stat.st_mtime)
        seen[path] = look
        if sizes.get(path) == look:
            ready.append(path)
    sizes.clear()
    sizes.update(seen)
    return ready


def settle(path: Path, folder: Path, report: FileReport | None, error: str | None) -> Path:
    """Move an imported file to done/ or failed/ with its report; return where it went."""
    target = folder / ("failed" if error is not None else "done")
    target.mkdir(exist_ok=True)
    moved = target / path.name
    if moved.exists():
        moved = target / f"{path.stem}.{int(time.time())}{path.suffix}"
    # The report first, then the file: whoever sees the file in done/ or failed/ finds its
    # report beside it.
    (report or FileReport()).write_json(target / f"{moved.name}.report.json", error)
    path.rename(moved)
    return moved


def watch(
    folder: Path,
    mapping: Mapping,
    open_publisher: Callable[[], Any],
    send_reference: ReferenceSend,
    lookup: Lookup | None,
    *,
    poll_s: float = 2.0,
    once: bool = False,
) -> int:
    """Import every file that lands in ``folder`` until stopped (``once``: until none is left)."""
    sizes: dict[Path, tuple[int, float]] = {}
    imported = 0
    while True:
        ready = ready_files(folder, sizes)
        for path in ready:
            report, error = None, None
            try:
                with open_publisher() as publisher:
                    report = import_file(path, mapping, publisher, send_reference, lookup)
            except (InputFileError, PublishError, OSError) as exc:
                error = str(exc)
            moved = settle(path, folder, report, error)
            sizes.pop(path, None)
            imported += 1
            summary = report.summary().splitlines()[0] if report is not None else ""
            outcome = f"failed: {error}" if error else summary
            print(f"{path.name} → {moved.parent.name}/: {outcome}", flush=True)
        if once and not sizes:
            return imported
        time.sleep(poll_s)
