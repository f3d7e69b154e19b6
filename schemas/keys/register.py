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
ROSTER_IDENTITY = _family(
    "roster_identity", "{p}:rid:{pseudonym}", "string",
    "The student id of a student on the roster, read only for an authorised person (the "
    "compliance reports name the students they list, also those whose activity has expired).",
    "name", Retention.REFERENCE, "none: written and deleted with the roster entry", "pseudonym",
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
UKVI = _family(
    "ukvi", "{p}:ukvi:{pseudonym}", "hash",
    "One sponsored student's attendance record for UKVI, one field per closed day with a "
    "contact point or any activity (day → timetabled sessions s, marks present p, late l, "
    "absent a, excused e, other engagement events n, exemption x, data gap g), and their "
    "student id (id).",
    "name", Retention.UKVI,
    "ENGAGEMENT_UKVI_RETENTION_DAYS (400) after the last day written", "pseudonym",
)  # fmt: skip
ACTORS = _family(
    "actors", "{p}:actors", "hash",
    "The identity map: an LMS account, IRI or platform user id → the student id it is "
    "(read by the ingest service under the map identity policy).",
    "entries", Retention.IDENTITY, "none: replaced or deleted by the identity topic", "actors",
)  # fmt: skip
READERS = _family(
    "readers", "{p}:readers", "hash",
    "The reader map: a door or gate reader, as the access-control export names it, → its "
    "building and campus (read by imports whose mapping looks a field up in it).",
    "no", Retention.REFERENCE, "none: replaced or deleted by the readers topic", "readers",
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
ERASURE_RECEIPT = _family(
    "erasure_receipt", "{p}:erased:{receipt_id}", "string",
    "That a student's data was erased: when, why, and the id of the tombstone on the "
    "interventions topic; named by a keyed hash of the pseudonym that differs from it, so it is "
    "found again only from the student's id and the deployment's key (docs/retention.md).",
    "no", Retention.INTERVENTIONS, "ENGAGEMENT_RETAIN_INTERVENTIONS_DAYS (365) after the erasure",
    "receipt_id",
)  # fmt: skip
RETENTION_RUN = _family(
    "retention_run", "{p}:retention:run", "string",
    "When the retention job last began: taken by one notifier at a time, once per interval.",
    "no", Retention.OFFSETS, "ENGAGEMENT_RETENTION_INTERVAL_S (1 day)", "retention",
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
AUDIT_LOG = _family(
    "audit_log", "{p}:audit:log", "list",
    "Every read (and refused read) of one student's data through the API: who, role, whose "
    "(pseudonym), what, when, outcome; oldest first, appended only.",
    "entries", Retention.AUDIT, "entries older than ENGAGEMENT_AUDIT_RETENTION_DAYS (2190) are "
    "trimmed on write", "audit",
)  # fmt: skip
AUDIT_STUDENT = _family(
    "audit_student", "{p}:audit:s:{pseudonym}", "list",
    "The audit entries about one student, oldest first (who has looked at my data).",
    "name", Retention.AUDIT, "ENGAGEMENT_AUDIT_RETENTION_DAYS (2190) after the last entry; "
    "older entries trimmed on write", "pseudonym",
)  # fmt: skip
REVIEW_ITEM = _family(
    "review_item", "{p}:review:item:{nudge_id}", "hash",
    "One invitation or referral waiting for staff, with its escalation, claim and decision "
    "marks.",
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
CORRECTIONS = _family(
    "corrections", "{p}:correction:{pseudonym}:{change_id}", "hash",
    "One correction a student asked for (attended a session, or not my activity): kind, day, "
    "session, note, status, who decided it, when and why, and the event id of the attendance "
    "mark an accepted one published.",
    "name", Retention.REVIEW, "none", "pseudonym",
)  # fmt: skip
CORRECTIONS_OWNERS = _family(
    "corrections_owners", "{p}:corrections:owners", "hash",
    "Correction id → the pseudonym of the student who asked (staff decide by id).",
    "entries", Retention.REVIEW, "none", "corrections",
)  # fmt: skip
CORRECTIONS_QUEUE = _family(
    "corrections_queue", "{p}:corrections:queue", "zset",
    "Every correction id, by the time it was asked for (staff list the open ones).",
    "no", Retention.REVIEW, "none", "corrections",
)  # fmt: skip
CORRECTIONS_STUDENT = _family(
    "corrections_student", "{p}:corrections:s:{pseudonym}", "zset",
    "The ids of the corrections one student asked for, by the time they asked.",
    "name", Retention.REVIEW, "none", "pseudonym",
)  # fmt: skip
AUDIT = _family(
    "audit", "{p}:audit", "list",
    "Who listed, viewed or decided review items, and when.",
    "entries", Retention.AUDIT, "none", "audit",
)  # fmt: skip

# -- the API's sign-in --------------------------------------------------------------------------
SESSION = _family(
    "session", "{p}:session:{session_id}", "string",
    "One signed-in browser of the pages, named by the SHA-256 of its cookie's random id (so a "
    "copy of Redis opens no session): the person's id (a student id for a student), roles and "
    "the session's CSRF token.",
    "value", Retention.IDENTITY, "ENGAGEMENT_SESSION_HOURS (8); deleted at sign-out",
    "session_id",
)  # fmt: skip

REGISTER: Final = tuple(_REGISTER)
FAMILIES: Final = {family.name: family for family in REGISTER}


def family_of(key: str, prefix: str) -> KeyFamily | None:
    """The family a key belongs to, or None if the register does not declare it."""
    for family in REGISTER:
        if family.pattern(prefix).match(key):
            return family
    return None
