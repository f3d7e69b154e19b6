"""Retention and erasure: expiry by retention class, erasure of one student, the daily job."""

from sinks.retention.erase import Erasure, erase, read_receipt
from sinks.retention.job import RetentionReport, class_periods, publisher, run_with_settings
from sinks.retention.tombstone import ErasureError, ErasureReceipt, ErasureTombstone

__all__ = [
    "Erasure",
    "ErasureError",
    "ErasureReceipt",
    "ErasureTombstone",
    "RetentionReport",
    "class_periods",
    "erase",
    "publisher",
    "read_receipt",
    "run_with_settings",
]
