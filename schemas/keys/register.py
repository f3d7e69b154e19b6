"""The register itself: one declaration per key family, in the order the data flows.

``{p}`` is the deployment's key prefix (``ENGAGEMENT_KEY_PREFIX``). Columns: name, template,
Redis type, what it holds, how it is about a student, retention class, expiry, hash tag.
"""

from __future__ import annotations

from typing import Final, Literal

from schemas.keys.family import About, KeyFamily, Retention


def _family(  # one positional argument per column of the register, in the table's order
    name: str,
    template: str,
    redis_type: Literal["string", "hash", "set", "zset", "list"],
    holds: str,
    about: About,
    retention: Retention,
    expiry: str,
    hash_tag: str,
) -> KeyFamily:
    family = KeyFamily(name, template, redis_type, holds, about, retention, expiry, hash_tag)
    _REGISTER.append(family)
    return family


_REGISTER: list[KeyFamily] = []

# -- engagement state (the worker) ----------------------------------------------------------
STATE = _family(
    "state", "{p}:s:{pseudonym}", "hash",
    "One student's day counts per source (d:{day}:{source}), attendance marks per day "
    "(a:{day}), register corrections made on a later day (ac), first and last seen per "
    "source, which generation each seen key holds (sg), rule state (rs).",
    "name", Retention.RULE_STATE, "ENGAGEMENT_STATE_TTL_DAYS (60) after the last event",
    "pseudonym",
)  # fmt: skip
SEEN = _family(
    "seen", "{p}:seen:{pseudonym}:{slot}", "hash",
    "What one student's events were, in one generation (slot 0 or 1) spanning "
    "ENGAGEMENT_DEDUP_TTL_DAYS of event time: feed and event id → what the event said, both "
    "hashed when long (de-duplication); each attendance session → its latest mark per day (a "
    "correction replaces the earlier mark). Earlier releases kept per-day sets here.",
    "name", Retention.DEDUP,
    "ENGAGEMENT_DEDUP_TTL_DAYS (14) after the last write; emptied when the slot is reused",
    "pseudonym",
)  # fmt: skip
MEMBERS = _family(
    "members", "{p}:members:{partition}", "set",
    "The pseudonyms of the students on one signals partition (whom the rules decide).",
    "entries", Retention.RULE_STATE, "none", "partition",
)  # fmt: skip
OFFSETS = _family(
    "offsets", "{p}:offsets:{group}", "hash",
    "Signals partition → last applied offset, written with the state it produced.",
    "no", Retention.OFFSETS, "none", "group",
)  # fmt: skip
WATERMARKS = _family(
    "watermarks", "{p}:wm:{group}", "hash",
    "Signals partition → watermark (highest event time, ms).",
    "no", Retention.OFFSETS, "none", "group",
)  # fmt: skip
FIRST_DAY = _family(
    "first_day", "{p}:firstday:{group}", "string",
    "The earliest day with data, where source-health checks begin.",
    "no", Retention.OFFSETS, "none", "group",
)  # fmt: skip
DECIDED = _family(
    "decided", "{p}:decided:{group}", "hash",
    "Signals partition → last day whose decisions were made.",
    "no", Retention.OFFSETS, "none", "group",
)  # fmt: skip
FEEDS = _family(
    "feeds", "{p}:feeds:{group}", "hash",
    "Raw feed partition → progress, last send time and caught-up flag, shared by ingests.",
    "no", Retention.OFFSETS, "none", "group",
)  # fmt: skip
ACTIVITY = _family(
    "activity", "{p}:act:{source}:{day}", "hash",
    "Events of one source on one day by location and local hour (source health).",
    "no", Retention.SOURCE_HEALTH, "35 days", "source",
)  # fmt: skip
HEALTH_DONE = _family(
    "health_done", "{p}:health:{group}", "string",
    "The last day whose source-health checks were made and published.",
    "no", Retention.SOURCE_HEALTH, "none", "group",
)  # fmt: skip
GAPS = _family(
    "gaps", "{p}:gaps:{group}:{day}", "hash",
    "Source gaps found for one day, by gap id.",
    "no", Retention.SOURCE_HEALTH, "140 days", "group",
)  # fmt: skip
IDENTITY = _family(
    "identity", "{p}:id:{pseudonym}", "string",
    "The student id behind a pseudonym, read only to address a message.",
    "name", Retention.IDENTITY, "ENGAGEMENT_STATE_TTL_DAYS (60), refreshed while active",
    "pseudonym",
)  # fmt: skip

# -- reference data (the worker's loader) -----------------------------------------------------
ROSTER = _family(
    "roster", "{p}:roster:{pseudonym}", "string",
    "One student's enrolment: course, modules, personal tutor, sponsored flag, term start.",
    "name", Retention.REFERENCE, "none: replaced or deleted by the roster topic", "pseudonym",
)  # fmt: skip
TIMETABLE = _family(
    "timetable", "{p}:tt:{day}", "hash",
    "Timetabled sessions of one day, by session id.",
    "no", Retention.REFERENCE, "none: replaced or deleted by the timetable topic", "day",
)  # fmt: skip
TIMETABLE_DAYS = _family(
    "timetable_days", "{p}:ttday", "hash",
    "Session id → its day, to find a session again when it is deleted.",
    "no", Retention.REFERENCE, "none", "ttday",
)  # fmt: skip
EXEMPTIONS = _family(
    "exemptions", "{p}:ex:{pseudonym}", "hash",
    "One student's exemptions (authorised absence, placement, break in learning), by id.",
    "name", Retention.REFERENCE, "none: replaced or deleted by the exemptions topic",
    "pseudonym",
)  # fmt: skip
EXEMPTION_OWNERS = _family(
    "exemption_owners", "{p}:exwho", "hash",
    "Exemption id → the pseudonym it belongs to, to delete it again.",
    "entries", Retention.REFERENCE, "none", "exwho",
)  # fmt: skip
ACTORS = _family(
    "actors", "{p}:actors", "hash",
    "The identity map: an LMS account, IRI or platform user id → the student id it is "
    "(read by the ingest service under the map identity policy).",
    "entries", Retention.IDENTITY, "none: replaced or deleted by the identity topic", "actors",
)  # fmt: skip

# -- the notifier ---------------------------------------------------------------------------------
INTERVENTIONS = _family(
    "interventions", "{p}:iv:{pseudonym}", "list",
    "One student's intervention records, oldest first (what they may read).",
    "name", Retention.INTERVENTIONS, "none", "pseudonym",
)  # fmt: skip
OUTBOX = _family(
    "outbox", "{p}:iv:outbox", "list",
    "Records appended but not yet acknowledged by the interventions topic.",
    "entries", Retention.INTERVENTIONS, "none: emptied as the topic acknowledges", "outbox",
)  # fmt: skip
OUTBOX_LOCK = _family(
    "outbox_lock", "{p}:iv:outbox:lock", "string",
    "Held by the one notifier publishing the outbox.",
    "no", Retention.NOTIFICATION, "10 s, renewed per batch", "outbox",
)  # fmt: skip
RECORDED = _family(
    "recorded", "{p}:recorded:{record_id}", "string",
    "Set once when a record is appended: the stage was decided.",
    "no", Retention.INTERVENTIONS, "none", "record_id",
)  # fmt: skip
SENDING = _family(
    "sending", "{p}:sending:{record_id}", "string",
    "The channel of a delivery begun and not yet recorded, and how many were begun (channel|n).",
    "no", Retention.NOTIFICATION, "none: deleted by the record", "record_id",
)  # fmt: skip
COOLDOWN = _family(
    "cooldown", "{p}:cooldown:{pseudonym}", "string",
    "The nudge and time of the student's last automated prompt.",
    "name", Retention.NOTIFICATION, "twice ENGAGEMENT_PROMPT_COOLDOWN_HOURS", "pseudonym",
)  # fmt: skip
DEFERRED = _family(
    "deferred", "{p}:deferred", "zset",
    "Nudge ids of prompts deferred by quiet hours, scored by when they are due.",
    "no", Retention.NOTIFICATION, "none: removed when delivered", "deferred",
)  # fmt: skip
DEFERRED_NUDGE = _family(
    "deferred_nudge", "{p}:deferred:nudge:{nudge_id}", "string",
    "A deferred prompt's nudge, until it is delivered.",
    "value", Retention.NOTIFICATION, "none: removed when delivered", "nudge_id",
)  # fmt: skip
PREFERENCES = _family(
    "preferences", "{p}:prefs:{pseudonym}", "string",
    "One student's opt-outs per channel.",
    "name", Retention.PREFERENCES, "none", "pseudonym",
)  # fmt: skip
PREFERENCE_HISTORY = _family(
    "preference_history", "{p}:prefs:{pseudonym}:history", "list",
    "Every change to one student's preferences: time, source and result.",
    "name", Retention.PREFERENCES, "none", "pseudonym",
)  # fmt: skip
PREFERENCE_APPLIED = _family(
    "preference_applied", "{p}:prefs:applied:{change_id}", "string",
    "A preference change already applied (each change applies once).",
    "no", Retention.PREFERENCES, "90 days", "change_id",
)  # fmt: skip
REVIEW_ITEM = _family(
    "review_item", "{p}:review:item:{nudge_id}", "hash",
    "One invitation or referral waiting for staff, with its escalation and decision marks.",
    "value", Retention.REVIEW, "none", "nudge_id",
)  # fmt: skip
REVIEW_QUEUE = _family(
    "review_queue", "{p}:review:queue:{queue}", "zset",
    "Nudge ids waiting in one tutor's or team's queue, by age.",
    "no", Retention.REVIEW, "none", "review",
)  # fmt: skip
REVIEW_OPEN = _family(
    "review_open", "{p}:review:open", "zset",
    "Nudge ids nobody has decided, by age (escalation).",
    "no", Retention.REVIEW, "none", "review",
)  # fmt: skip
AUDIT = _family(
    "audit", "{p}:audit", "list",
    "Who listed, viewed or decided review items, and when.",
    "entries", Retention.AUDIT, "none", "audit",
)  # fmt: skip

REGISTER: Final = tuple(_REGISTER)
FAMILIES: Final = {family.name: family for family in REGISTER}


def family_of(key: str, prefix: str) -> KeyFamily | None:
    """The family a key belongs to, or None if the register does not declare it."""
    for family in REGISTER:
        if family.pattern(prefix).match(key):
            return family
    return None
