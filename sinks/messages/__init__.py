"""Student-facing message templates: one wording per channel, optional per-rule overrides.

``templates`` renders a prompt nudge for the one channel it is sent on (pure); ``loader`` reads
and validates the messages file at start-up, with the checks on each wording in ``checks``.
"""

from sinks.messages.checks import CHANNEL_KEYS, KIND_METRICS, PLACEHOLDERS, REQUIRED_LINKS
from sinks.messages.loader import (
    DEFAULT_MESSAGES,
    SCHEMA_VERSION,
    MessagesFileError,
    load_messages,
)
from sinks.messages.templates import (
    INSTITUTION_FIELDS,
    METRIC_PREFIX,
    NOT_KNOWN,
    SMS_MAX_CHARS,
    Institution,
    MessageTemplates,
    Rendering,
    Template,
    format_day,
    format_number,
)

__all__ = [
    "CHANNEL_KEYS",
    "DEFAULT_MESSAGES",
    "INSTITUTION_FIELDS",
    "KIND_METRICS",
    "METRIC_PREFIX",
    "NOT_KNOWN",
    "PLACEHOLDERS",
    "REQUIRED_LINKS",
    "SCHEMA_VERSION",
    "SMS_MAX_CHARS",
    "Institution",
    "MessageTemplates",
    "MessagesFileError",
    "Rendering",
    "Template",
    "format_day",
    "format_number",
    "load_messages",
]
