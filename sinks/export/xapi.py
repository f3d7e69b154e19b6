"""Intervention records as Jisc xAPI "case" statements: one case per nudge, notes for decisions.

The shapes follow Jisc's case recipes (``jiscdev/xapi``, ``recipes/case/uxapi``, profile 1.1):
case create / update / close and note create. Mapping per record (see ``docs/export.md``):

- notifier stage (the nudge's first decision): case ``create`` + ``note``, and ``close`` when
  the outcome ends the matter without a human (delivered, suppressed, failed, shadow);
- a later stage with one of those outcomes (a deferred prompt's delivery): ``note`` (+ ``close``);
- escalated: case ``update`` + ``note`` naming the new queue, by the system;
- staff decision: ``note`` + ``close`` by the member of staff.

The mapping is pure and deterministic: statement ids are UUIDv5 of the record id and the
statement kind, so a re-export repeats the same ids and a learning record store de-duplicates.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from schemas.interventions import InterventionRecord, Outcome, StaffAction, Stage
from schemas.nudges import Tier

# Jisc vocabulary, as used by the case recipes.
VERB_CREATE: Final = "http://activitystrea.ms/schema/1.0/create"
VERB_UPDATE: Final = "http://xapi.jisc.ac.uk/update"
VERB_CLOSE: Final = "http://xapi.jisc.ac.uk/close"
TYPE_CASE: Final = "http://xapi.jisc.ac.uk/case"
TYPE_NOTE: Final = "http://xapi.jisc.ac.uk/intervention/note"
EXT_RECIPE_CAT: Final = "http://xapi.jisc.ac.uk/recipeCat"
EXT_VERSION: Final = "http://xapi.jisc.ac.uk/version"
EXT_CASE_TARGET: Final = "http://xapi.jisc.ac.uk/case-target"
EXT_MODE: Final = "http://xapi.jisc.ac.uk/mode"
EXT_WEIGHTING: Final = "http://xapi.jisc.ac.uk/weighting"
EXT_TYPE: Final = "http://xapi.jisc.ac.uk/type"
RECIPE_CAT: Final = "Case"
PROFILE_VERSION: Final = "1.1"

# Our own extension: which rule decided what. ".invalid" is reserved (RFC 2606), so the IRI
# can never be claimed by someone else; xAPI extension IRIs need not resolve.
EXT_INTERVENTION: Final = "https://engagement-stream.invalid/xapi/intervention"
# Namespace for statement ids; changing it would make every re-export a new set of statements.
STATEMENT_NAMESPACE: Final = uuid.uuid5(
    uuid.NAMESPACE_URL, "https://engagement-stream.invalid/xapi/statement"
)
DEFAULT_PLATFORM: Final = "engagement-stream"
# Jisc "weighting" is an integer importance; the tier is the product's measure of it.
WEIGHTING: Final = {Tier.PROMPT: 1, Tier.INVITATION: 2, Tier.REFERRAL: 3}
# Outcomes after which no human is waiting to act: the case is closed by the system.
CLOSING: Final = frozenset({Outcome.DELIVERED, Outcome.SUPPRESSED, Outcome.FAILED, Outcome.SHADOW})
PSEUDONYM_REMOVED: Final = "[pseudonym removed]"

_ACTION_WORDS: Final = {
    StaffAction.CONTACTED: "contacted the student",
    StaffAction.MEETING_BOOKED: "booked a meeting with the student",
    StaffAction.NO_ACTION: "took no action",
    StaffAction.REFERRED: "referred the student",
}


def statement_id(record_id: str, kind: str) -> str:
    """Deterministic statement id for one kind of statement ("case-create", ...) of a record."""
    return str(uuid.uuid5(STATEMENT_NAMESPACE, f"{record_id}:{kind}"))


def case_activity_id(homepage: str, nudge_id: str) -> str:
    """The case's activity id: one case per nudge."""
    return f"{_base(homepage)}/case/{nudge_id}"


def case_statements(
    record: InterventionRecord,
    *,
    student_id: str | None,
    homepage: str,
    platform: str = DEFAULT_PLATFORM,
) -> list[dict[str, Any]]:
    """The xAPI statements for one intervention record, in the order an LRS should store them.

    ``student_id`` is the real id behind the record's pseudonym, or None when that mapping has
    expired: the case target is then the pseudonym under ``{homepage}/pseudonym``.
    """
    build = _Builder(record, student_id=student_id, homepage=_base(homepage), platform=platform)
    if record.outcome is Outcome.STAFF_DECISION:
        staff = build.staff_actor()
        return [build.note(staff, build.staff_text()), build.close(staff)]
    system = build.system_actor()
    if record.outcome is Outcome.ESCALATED:
        return [build.update(system), build.note(system, build.escalation_text())]
    statements = []
    if record.stage is Stage.NOTIFIER:
        statements.append(build.create(system))
    statements.append(build.note(system, build.decision_text()))
    if record.outcome in CLOSING:
        statements.append(build.close(system))
    return statements


def _base(homepage: str) -> str:
    if not homepage.startswith(("https://", "http://")):
        msg = f"homepage must be an absolute http(s) URL, got {homepage!r}"
        raise ValueError(msg)
    return homepage.rstrip("/")


def _agent(name: str, homepage: str) -> dict[str, Any]:
    return {"objectType": "Agent", "account": {"name": name, "homePage": homepage}}


class _Builder:
    """Assembles the statements of one record; every statement shares its context."""

    def __init__(
        self, record: InterventionRecord, *, student_id: str | None, homepage: str, platform: str
    ) -> None:
        self.record = record
        self.student_id = student_id
        self.homepage = homepage
        self.platform = platform
        self.case_id = case_activity_id(homepage, record.nudge_id)

    # Actors -------------------------------------------------------------------------------

    def system_actor(self) -> dict[str, Any]:
        return _agent(self.platform, self.homepage)

    def staff_actor(self) -> dict[str, Any]:
        # A staff decision always names its author; fall back to the system rather than drop
        # the record from the export if an old or hand-written record does not.
        if self.record.staff_id is None:
            return self.system_actor()
        return _agent(self.record.staff_id, self.homepage)

    def target(self) -> dict[str, Any]:
        if self.student_id is not None:
            return _agent(self.student_id, self.homepage)
        return _agent(self.record.pseudonym, f"{self.homepage}/pseudonym")

    # Statements ---------------------------------------------------------------------------

    def create(self, actor: dict[str, Any]) -> dict[str, Any]:
        return self._statement(
            "case-create",
            actor,
            _verb(VERB_CREATE, "created"),
            self._case_object(),
            {
                EXT_MODE: "automated",
                EXT_WEIGHTING: WEIGHTING[self.record.tier],
                EXT_CASE_TARGET: {"actor": self.target()},
            },
        )

    def update(self, actor: dict[str, Any]) -> dict[str, Any]:
        return self._statement(
            "case-update",
            actor,
            _verb(VERB_UPDATE, "updated"),
            self._case_object(),
            {EXT_TYPE: "escalation", EXT_WEIGHTING: WEIGHTING[self.record.tier]},
        )

    def close(self, actor: dict[str, Any]) -> dict[str, Any]:
        return self._statement(
            "case-close", actor, _verb(VERB_CLOSE, "closed"), self._case_object()
        )

    def note(self, actor: dict[str, Any], text: str) -> dict[str, Any]:
        note_object = {
            "objectType": "Activity",
            "id": f"{self.case_id}/note/{self.record.record_id}",
            "definition": {"type": TYPE_NOTE, "name": {"en": "Note"}},
        }
        statement = self._statement(
            "note-create", actor, _verb(VERB_CREATE, "created"), note_object
        )
        statement["result"] = {"response": self._scrub(text)}
        statement["context"]["contextActivities"] = {"parent": [{"id": self.case_id}]}
        return statement

    # Note text ----------------------------------------------------------------------------

    def decision_text(self) -> str:
        message = self.record.message
        if message is None:
            return self.record.detail
        heading = f"Message ({message.channel.value})"
        if message.subject:
            heading += f', subject "{message.subject}"'
        return f"{self.record.detail}\n\n{heading}:\n{message.body}"

    def escalation_text(self) -> str:
        queue = self.record.queue
        moved = f"Escalated to the review queue {queue}." if queue else "Escalated."
        return f"{moved} {self.record.detail}"

    def staff_text(self) -> str:
        record = self.record
        who = record.staff_id or "A member of staff"
        did = _ACTION_WORDS[record.action] if record.action else "decided"
        text = f"{who} {did}"
        if record.referred_to:
            text += f" to {record.referred_to}"
        return f"{text} (reason: {record.reason}). {record.detail}"

    # Shared parts -------------------------------------------------------------------------

    def _case_object(self) -> dict[str, Any]:
        return {
            "objectType": "Activity",
            "id": self.case_id,
            "definition": {"type": TYPE_CASE, "name": {"en": "Case"}},
        }

    def _statement(
        self,
        kind: str,
        actor: dict[str, Any],
        verb: dict[str, Any],
        obj: dict[str, Any],
        extensions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        record = self.record
        return {
            "id": statement_id(record.record_id, kind),
            "actor": actor,
            "verb": verb,
            "object": obj,
            "timestamp": record.decided_at.isoformat(),
            "context": {
                "platform": self.platform,
                "extensions": {
                    EXT_RECIPE_CAT: RECIPE_CAT,
                    EXT_VERSION: PROFILE_VERSION,
                    **(extensions or {}),
                    EXT_INTERVENTION: self._provenance(),
                },
            },
        }

    def _provenance(self) -> dict[str, Any]:
        record = self.record
        found: dict[str, Any] = {
            "record_id": record.record_id,
            "rule_id": record.rule_id,
            "rule_version": record.rule_version,
            "tier": record.tier.value,
            "route": record.route.value,
            "stage": record.stage.value,
            "outcome": record.outcome.value,
            "reason": record.reason,
            "channels": [channel.value for channel in record.channels],
        }
        optional = {
            "queue": record.queue,
            "action": record.action.value if record.action else None,
            "referred_to": record.referred_to,
        }
        found.update({key: value for key, value in optional.items() if value is not None})
        return found

    def _scrub(self, text: str) -> str:
        # Free text comes from our own templates, which never quote the pseudonym; this makes
        # sure a future template cannot leak it into the student-records system.
        return text.replace(self.record.pseudonym, PSEUDONYM_REMOVED)


def _verb(iri: str, display: str) -> dict[str, Any]:
    return {"id": iri, "display": {"en": display}}
