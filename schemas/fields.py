"""Field types shared by the wire models: event times, event and student ids, short texts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator, StringConstraints
from pydantic_core import PydanticCustomError


def _text_or_datetime(value: object) -> object:
    """Refuse numbers and other JSON types where a timestamp string is expected.

    Pydantic would read ``12`` as 12 seconds after the epoch; a feed that sends a number here
    is broken, and silently dating its events to 1970 would hide that.
    """
    if isinstance(value, str | datetime):
        return value
    kind, message = "wrong_type", "expected an ISO-8601 timestamp string with a UTC offset"
    raise PydanticCustomError(kind, message)


EventTime = Annotated[AwareDatetime, BeforeValidator(_text_or_datetime)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]
StudentId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^\S+$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
