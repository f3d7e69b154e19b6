"""What the key register says about one key family, and how a key is built and recognised."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Final, Literal


class Retention(StrEnum):
    """Why a key is kept, and so how long it may be kept."""

    RULE_STATE = "rule_state"  # per-student day buckets and rule state: what the rules need
    DEDUP = "dedup"  # event ids already counted
    IDENTITY = "identity"  # pseudonym → student id, for delivery only
    REFERENCE = "reference"  # roster, timetable and exemptions from the records systems
    PREFERENCES = "preferences"  # opt-outs and their history
    INTERVENTIONS = "interventions"  # the log of record and its delivery marks
    NOTIFICATION = "notification"  # cooldowns and deferred prompts: short-lived send state
    REVIEW = "review"  # the human review queue
    AUDIT = "audit"  # who read or decided what
    OFFSETS = "offsets"  # progress: applied offsets, watermarks, decided days
    SOURCE_HEALTH = "source_health"  # counts per source, location and hour; gaps found
    UKVI = "ukvi"  # visa-sponsorship attendance records (own, longer period) (the `ukvi` family)


About = Literal["name", "entries", "value", "no"]
"""How a family relates to one student: its name carries the pseudonym; entries inside a
shared key do (set members, hash fields or values); its value does; or it holds nobody's."""

# What a placeholder in a template may match. Pseudonyms, record and nudge ids have fixed
# shapes, so that ``{p}:iv:{pseudonym}`` never claims ``{p}:iv:outbox``.
_FIELD_PATTERNS: Final = {
    "pseudonym": r"p_[0-9a-f]{32}",
    "record_id": r"r_[0-9a-f]{32}",
    "receipt_id": r"e_[0-9a-f]{32}",
    "nudge_id": r"n_[0-9a-f]{32}",
    "partition": r"\d+",
    "day": r"-?\d+",
    "slot": r"\d+",
    "source": r"[a-z_]+",
    "group": r"[^:]+",
    "change_id": r"[^:]+",
    "session_id": r"[0-9a-f]{64}",
    "queue": r".+",
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class KeyFamily:
    """One key pattern and what the register says about it."""

    name: str
    template: str  # e.g. "{p}:s:{pseudonym}"
    redis_type: Literal["string", "hash", "set", "zset", "list"]
    holds: str
    about: About
    retention: Retention
    expiry: str
    hash_tag: str  # the placeholder (or literal) whose value decides the slot

    @cached_property
    def fields(self) -> tuple[str, ...]:
        """The placeholders of the template, in order, without the prefix."""
        return tuple(f for f in _PLACEHOLDER.findall(self.template) if f != "p")

    def key(self, prefix: str, **values: object) -> str:
        """The key for these placeholder values."""
        if len(values) != len(self.fields) or not values.keys() >= set(self.fields):
            missing = set(self.fields) - values.keys()
            msg = f"key {self.name} needs {', '.join(sorted(missing)) or 'only its fields'}"
            raise ValueError(msg)
        return self.template.format(p=prefix, **values)

    def pattern(self, prefix: str) -> re.Pattern[str]:
        """A regular expression matching exactly the keys of this family."""
        parts = _PLACEHOLDER.split(self.template)
        out = []
        for i, part in enumerate(parts):
            if i % 2 == 0:
                out.append(re.escape(part))
            elif part == "p":
                out.append(re.escape(prefix))
            else:
                out.append(f"(?P<{part}>{_FIELD_PATTERNS[part]})")
        return re.compile("".join(out) + r"\Z")

    def glob(self, prefix: str, **values: object) -> str:
        """A SCAN MATCH pattern: given placeholders filled in, the others as ``*``."""
        filled = {f: str(values[f]) if f in values else "*" for f in self.fields}
        return self.template.format(p=prefix, **filled)
