"""Structured logs: one JSON object per line, with the ids that tie lines together.

Every line has ``ts`` (UTC), ``level``, ``logger``, ``role`` and ``message``; a line about a
nudge, record or event carries ``nudge_id``, ``record_id`` or ``event_id`` as fields (passed
with ``extra=``), so one decision can be followed from the worker to the notifier. Student
ids never appear: the code logs pseudonymous ids only (nudge ids are hashes), and a test
scans the processes' logs for the ids it published.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Final

CORRELATION_FIELDS: Final = ("nudge_id", "record_id", "event_id", "gap_id", "stage")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def __init__(self, role: str = "engagement") -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "role": self.role,
            "message": record.getMessage(),
        }
        for name in CORRELATION_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def logging_config(level: str, role: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for a worker or the notifier."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter, "role": role}
        if fmt == "json"
        else {"format": f"%(asctime)s {role} %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "level": level,
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level, "handlers": ["default"]},
    }
