"""Publisher library: validate raw events, pack them into envelopes and send them to Kafka.

Validation and packing (:func:`check_event` in ``checks``, :func:`pack_events` in
``envelopes``) are pure, so they are tested without a broker; :class:`Publisher`
(``producer``) only hands the resulting payloads to kafka-python; ``files`` reads events
from JSON-lines, CSV and TSV files, counting every line. Every input ends sent, refused with a
reason, or skipped, and :class:`PublishReport` says how they add up. Topic creation lives in
:mod:`stream.topics`.
"""

from stream.publisher.checks import MAX_DEPTH, MAX_EVENT_BYTES, Checked, Unreadable, check_event
from stream.publisher.envelopes import MAX_REQUEST_BYTES, RECORD_HEADROOM, Message, pack_events
from stream.publisher.files import MAX_LINE_CHARS, FileEvents, publish_file, read_file
from stream.publisher.producer import BATCH_BYTES, Publisher
from stream.publisher.report import (
    EXAMPLES_KEPT,
    InputFileError,
    PublishError,
    PublishReport,
    Refusal,
)

__all__ = [
    "BATCH_BYTES",
    "EXAMPLES_KEPT",
    "MAX_DEPTH",
    "MAX_EVENT_BYTES",
    "MAX_LINE_CHARS",
    "MAX_REQUEST_BYTES",
    "RECORD_HEADROOM",
    "Checked",
    "FileEvents",
    "InputFileError",
    "Message",
    "PublishError",
    "PublishReport",
    "Publisher",
    "Refusal",
    "Unreadable",
    "check_event",
    "pack_events",
    "publish_file",
    "read_file",
]
