"""The one batched read before each decision: every fact the policy may need, one round trip.

Each store adds its own read to a shared pipeline (it knows its keys and how to decode what
it holds). A read that fails alone (a reply that is an error, a value that cannot be decoded)
does not stop the others: the fact is marked unreadable and its error is kept, to be raised if
and when the decision needs that fact, exactly where the notifier used to read it. Redis being
unreachable fails the whole read, and the notifier waits and reads again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agents.store.reference import ReferenceStore
from agents.store.state import EngagementStore
from schemas.interventions import Stage
from schemas.nudges import Nudge, Route, Tier
from schemas.preferences import Preferences
from sinks.policy import Fact, Facts
from sinks.stores.deferred import DeferredPrompts
from sinks.stores.interventions import InterventionLog
from sinks.stores.preferences import PreferenceStore


@dataclass(frozen=True)
class Reading:
    """The facts, plus what the policy must not see: the student id (needed to deliver) and
    why each unreadable fact could not be read."""

    facts: Facts
    student_id: str | None
    errors: Mapping[Fact, Exception]


class FactReader:
    """Reads a nudge's facts from the stores, which share one Redis client."""

    def __init__(
        self,
        log: InterventionLog,
        preferences: PreferenceStore,
        deferred: DeferredPrompts,
        identities: EngagementStore,
        references: ReferenceStore,
    ) -> None:
        self.log = log
        self.preferences = preferences
        self.deferred = deferred
        self.identities = identities
        self.references = references

    async def read(self, nudge: Nudge, stage: Stage, now: datetime) -> Reading:
        """Everything ``nudge`` can need at ``stage``, read in one pipeline."""
        # What a nudge of this tier can need; which of it is needed is the policy's to say.
        async with self.log.redis.pipeline(transaction=False) as pipe:
            reads: dict[Fact, Callable[[Any], Any]] = {
                "status": self.log.add_status_read(pipe, nudge.nudge_id, stage)
            }
            if nudge.tier is Tier.PROMPT:
                reads["preferences"] = self.preferences.add_read(pipe, nudge.pseudonym)
                reads["recipient"] = self.identities.add_identity_read(pipe, nudge.pseudonym)
                if stage is Stage.NOTIFIER:
                    reads["deferred_until"] = self.deferred.add_due_read(pipe, nudge.nudge_id)
            elif nudge.route is Route.PERSONAL_TUTOR:
                reads["tutor"] = self.references.add_enrolment_read(pipe, nudge.pseudonym)
            replies = await pipe.execute(raise_on_error=False)
        values: dict[Fact, Any] = {}
        errors: dict[Fact, Exception] = {}
        for (name, decode), reply in zip(reads.items(), replies, strict=True):
            try:
                if isinstance(reply, Exception):
                    raise reply
                values[name] = decode(reply)
            except Exception as exc:  # kept, and raised only if the decision needs this fact
                errors[name] = exc
        status, sending_channel, begun = values.get("status", (None, None, 0))
        enrolment = values.get("tutor")
        student_id = values.get("recipient")
        facts = Facts(
            stage=stage,
            now=now,
            status=status,
            sending_channel=sending_channel,
            begun=begun,
            deferred_until=values.get("deferred_until"),
            tutor=enrolment.personal_tutor if enrolment is not None else None,
            recipient_known=student_id is not None,
            preferences=values.get("preferences", Preferences()),
            unreadable=frozenset(errors),
        )
        return Reading(facts, student_id, errors)
