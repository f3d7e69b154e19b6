"""The key register: every Redis key the product writes, declared once.

Each family says what it holds, whether it is about one student (and how: by its name, by
entries inside a shared key, or inside its value), its retention class, its expiry and the
part of the name that is its hash tag (the part that will decide its Redis Cluster slot).
Stores build every key through ``Keys``; Lua scripts receive every key through ``KEYS``.
Erasure, subject-access export and retention read this register; a test checks that a
running system holds no key that is not declared here.

``{p}`` is the deployment's key prefix (``ENGAGEMENT_KEY_PREFIX``).
"""

from __future__ import annotations

from schemas.keys.family import About, KeyFamily, Retention
from schemas.keys.register import (
    ACTIVITY,
    ACTORS,
    AUDIT,
    AUDIT_LOG,
    AUDIT_STUDENT,
    COOLDOWN,
    CORRECTIONS,
    CORRECTIONS_OWNERS,
    CORRECTIONS_QUEUE,
    CORRECTIONS_STUDENT,
    DECIDED,
    DEFERRED,
    DEFERRED_NUDGE,
    ERASURE_RECEIPT,
    EXEMPTION_OWNERS,
    EXEMPTIONS,
    FAMILIES,
    FEEDS,
    FIRST_DAY,
    GAPS,
    HEALTH_DONE,
    IDENTITY,
    INTERVENTIONS,
    MEMBERS,
    OFFSETS,
    OUTBOX,
    OUTBOX_LOCK,
    PREFERENCE_APPLIED,
    PREFERENCE_HISTORY,
    PREFERENCES,
    READERS,
    RECORDED,
    REGISTER,
    RETENTION_RUN,
    REVIEW_ITEM,
    REVIEW_OPEN,
    REVIEW_QUEUE,
    ROSTER,
    ROSTER_IDENTITY,
    SEEN,
    SENDING,
    SESSION,
    STATE,
    TIMETABLE,
    TIMETABLE_DAYS,
    UKVI,
    WATERMARKS,
    family_of,
)

__all__ = [
    "ACTIVITY",
    "AUDIT",
    "AUDIT_LOG",
    "AUDIT_STUDENT",
    "COOLDOWN",
    "CORRECTIONS",
    "CORRECTIONS_OWNERS",
    "CORRECTIONS_QUEUE",
    "CORRECTIONS_STUDENT",
    "DECIDED",
    "DEFERRED",
    "DEFERRED_NUDGE",
    "ERASURE_RECEIPT",
    "EXEMPTIONS",
    "EXEMPTION_OWNERS",
    "FAMILIES",
    "FEEDS",
    "FIRST_DAY",
    "GAPS",
    "HEALTH_DONE",
    "IDENTITY",
    "INTERVENTIONS",
    "MEMBERS",
    "OFFSETS",
    "OUTBOX",
    "OUTBOX_LOCK",
    "PREFERENCES",
    "PREFERENCE_APPLIED",
    "PREFERENCE_HISTORY",
    "READERS",
    "RECORDED",
    "REGISTER",
    "RETENTION_RUN",
    "REVIEW_ITEM",
    "REVIEW_OPEN",
    "REVIEW_QUEUE",
    "ROSTER",
    "ROSTER_IDENTITY",
    "SEEN",
    "SENDING",
    "SESSION",
    "STATE",
    "TIMETABLE",
    "TIMETABLE_DAYS",
    "UKVI",
    "WATERMARKS",
    "About",
    "KeyFamily",
    "Keys",
    "Retention",
    "family_of",
    "register_table",
]


class Keys:
    """Key names under one prefix, one method per family; stores build keys only here."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def state(self, pseudonym: str) -> str:
        """One student's state hash."""
        return STATE.key(self.prefix, pseudonym=pseudonym)

    def seen(self, pseudonym: str, slot: int | str) -> str:
        """One generation (0 or 1) of what one student's events were (de-duplication)."""
        return SEEN.key(self.prefix, pseudonym=pseudonym, slot=slot)

    def members(self, partition: int | str) -> str:
        """Students on one signals partition."""
        return MEMBERS.key(self.prefix, partition=partition)

    def offsets(self, group: str) -> str:
        """Applied offsets of one consumer group."""
        return OFFSETS.key(self.prefix, group=group)

    def watermarks(self, group: str) -> str:
        """Watermarks of one consumer group."""
        return WATERMARKS.key(self.prefix, group=group)

    def first_day(self, group: str) -> str:
        """The earliest day with data."""
        return FIRST_DAY.key(self.prefix, group=group)

    def decided(self, group: str) -> str:
        """Last decided day per partition."""
        return DECIDED.key(self.prefix, group=group)

    def feeds(self, group: str) -> str:
        """Raw feeds' shared progress."""
        return FEEDS.key(self.prefix, group=group)

    def activity(self, source: str, day: int | str) -> str:
        """One source's activity on one day."""
        return ACTIVITY.key(self.prefix, source=source, day=day)

    def health_done(self, group: str) -> str:
        """The last day whose source health was checked."""
        return HEALTH_DONE.key(self.prefix, group=group)

    def gaps(self, group: str, day: int | str) -> str:
        """Gaps found for one day."""
        return GAPS.key(self.prefix, group=group, day=day)

    def identity(self, pseudonym: str) -> str:
        """The student id behind a pseudonym."""
        return IDENTITY.key(self.prefix, pseudonym=pseudonym)

    def roster(self, pseudonym: str) -> str:
        """One student's roster entry."""
        return ROSTER.key(self.prefix, pseudonym=pseudonym)

    def roster_identity(self, pseudonym: str) -> str:
        """The student id of a student on the roster (authorised re-identification only)."""
        return ROSTER_IDENTITY.key(self.prefix, pseudonym=pseudonym)

    def timetable(self, day: int | str) -> str:
        """One day's timetabled sessions."""
        return TIMETABLE.key(self.prefix, day=day)

    def timetable_days(self) -> str:
        """Session id → day."""
        return TIMETABLE_DAYS.key(self.prefix)

    def exemptions(self, pseudonym: str) -> str:
        """One student's exemptions."""
        return EXEMPTIONS.key(self.prefix, pseudonym=pseudonym)

    def exemption_owners(self) -> str:
        """Exemption id → pseudonym."""
        return EXEMPTION_OWNERS.key(self.prefix)

    def ukvi(self, pseudonym: str) -> str:
        """One sponsored student's daily attendance record for UKVI."""
        return UKVI.key(self.prefix, pseudonym=pseudonym)

    def actors(self) -> str:
        """The identity map: actor key → student id."""
        return ACTORS.key(self.prefix)

    def readers(self) -> str:
        """The reader map: reader id → building and campus."""
        return READERS.key(self.prefix)

    def interventions(self, pseudonym: str) -> str:
        """One student's intervention records."""
        return INTERVENTIONS.key(self.prefix, pseudonym=pseudonym)

    def outbox(self) -> str:
        """Records not yet on the topic."""
        return OUTBOX.key(self.prefix)

    def outbox_lock(self) -> str:
        """The outbox publisher's lock."""
        return OUTBOX_LOCK.key(self.prefix)

    def recorded(self, record_id: str) -> str:
        """Set when a record is appended."""
        return RECORDED.key(self.prefix, record_id=record_id)

    def erasure_receipt(self, receipt_id: str) -> str:
        """That a student's data was erased, and when (by a keyed hash of the pseudonym)."""
        return ERASURE_RECEIPT.key(self.prefix, receipt_id=receipt_id)

    def retention_run(self) -> str:
        """When the retention job last began (one run per interval across notifiers)."""
        return RETENTION_RUN.key(self.prefix)

    def sending(self, record_id: str) -> str:
        """A delivery begun and not yet recorded."""
        return SENDING.key(self.prefix, record_id=record_id)

    def cooldown(self, pseudonym: str) -> str:
        """The student's last automated prompt."""
        return COOLDOWN.key(self.prefix, pseudonym=pseudonym)

    def deferred(self) -> str:
        """Deferred prompts by due time."""
        return DEFERRED.key(self.prefix)

    def deferred_nudge(self, nudge_id: str) -> str:
        """A deferred prompt's nudge."""
        return DEFERRED_NUDGE.key(self.prefix, nudge_id=nudge_id)

    def preferences(self, pseudonym: str) -> str:
        """One student's preferences."""
        return PREFERENCES.key(self.prefix, pseudonym=pseudonym)

    def preference_history(self, pseudonym: str) -> str:
        """One student's preference changes."""
        return PREFERENCE_HISTORY.key(self.prefix, pseudonym=pseudonym)

    def preference_applied(self, change_id: str) -> str:
        """A preference change already applied."""
        return PREFERENCE_APPLIED.key(self.prefix, change_id=change_id)

    def audit_log(self) -> str:
        """The global audit log of reads of individual data."""
        return AUDIT_LOG.key(self.prefix)

    def audit_student(self, pseudonym: str) -> str:
        """The audit entries about one student."""
        return AUDIT_STUDENT.key(self.prefix, pseudonym=pseudonym)

    def review_item(self, nudge_id: str) -> str:
        """One review item."""
        return REVIEW_ITEM.key(self.prefix, nudge_id=nudge_id)

    def review_queue(self, queue: str) -> str:
        """One tutor's or team's queue."""
        return REVIEW_QUEUE.key(self.prefix, queue=queue)

    def review_open(self) -> str:
        """Undecided review items."""
        return REVIEW_OPEN.key(self.prefix)

    def corrections(self, pseudonym: str, change_id: str) -> str:
        """One correction a student asked for."""
        return CORRECTIONS.key(self.prefix, pseudonym=pseudonym, change_id=change_id)

    def corrections_owners(self) -> str:
        """Correction id → the pseudonym of the student who asked."""
        return CORRECTIONS_OWNERS.key(self.prefix)

    def corrections_queue(self) -> str:
        """Every correction, by the time it was asked for."""
        return CORRECTIONS_QUEUE.key(self.prefix)

    def corrections_student(self, pseudonym: str) -> str:
        """The corrections one student asked for."""
        return CORRECTIONS_STUDENT.key(self.prefix, pseudonym=pseudonym)

    def audit(self) -> str:
        """The audit list."""
        return AUDIT.key(self.prefix)

    def session(self, id_hash: str) -> str:
        """One signed-in browser's session, by the SHA-256 of its cookie's id."""
        return SESSION.key(self.prefix, session_id=id_hash)


def register_table() -> str:
    """The register as a Markdown table (``engagement keys``; docs/keys.md is its output)."""
    about = {
        "name": "yes: its name",
        "entries": "entries in it",
        "value": "yes: its value",
        "no": "no",
    }
    rows = [
        "| family | key | type | holds | about one student | retention | expiry | hash tag |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows.extend(
        f"| {f.name} | `{f.template}` | {f.redis_type} | {f.holds} | {about[f.about]} "
        f"| {f.retention.value} | {f.expiry} | `{f.hash_tag}` |"
        for f in REGISTER
    )
    return "\n".join(rows) + "\n"
