"""What every route of the API shares: the stores, the facts access needs, and audited reads.

One :class:`Api` per process lives on ``app.state.api`` (with ``app.state.redis`` and
``app.state.audit`` for routers that need only those). The routes read Redis through the
product's stores and the key register; the only thing the API writes besides the audit log
is a preference change, which it publishes on the preferences topic as ``engagement prefs``
and the student app do, so the notifier applies it before its next send.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from fastapi import HTTPException, Request
from kafka.errors import KafkaError

from agents.model.pseudonym import Pseudonymiser
from agents.model.reference import Enrolment
from agents.store.reference import ReferenceStore
from agents.store.state import EngagementStore
from schemas.access import Principal, Role
from schemas.interventions import InterventionRecord
from schemas.keys import Keys
from schemas.review import TeamsConfig
from schemas.rules import RuleSet
from schemas.settings import Settings
from sinks.channels.producer import ProduceError, RecordProducer
from sinks.stores.audit import AuditLog
from sinks.stores.interventions import InterventionLog
from sinks.stores.preferences import PreferenceStore
from stream.api.access import StudentFacts, audit_role, granted_by, review_teams

NOT_FOUND = "no such student, or not one you may see"


@dataclass
class Api:
    """The API's collaborators, built once per process."""

    settings: Settings
    redis: aioredis.Redis
    rules: RuleSet
    teams: TeamsConfig
    kafka_bootstrap: str | None = None
    pseudonymise: Pseudonymiser = field(init=False)
    audit: AuditLog = field(init=False)
    interventions: InterventionLog = field(init=False)
    reference: ReferenceStore = field(init=False)
    state: EngagementStore = field(init=False)
    preferences: PreferenceStore = field(init=False)
    keys: Keys = field(init=False)
    _producer: RecordProducer | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        settings, prefix = self.settings, self.settings.key_prefix
        self.pseudonymise = Pseudonymiser(settings.pseudonym_key)
        self.keys = Keys(prefix)
        self.audit = AuditLog(self.redis, prefix, retention_days=settings.audit_retention_days)
        self.interventions = InterventionLog(self.redis, prefix)
        self.reference = ReferenceStore(self.redis, prefix, self.pseudonymise, settings.zone)
        # Only its reads are used (load_student, load_students); the group names no key it reads.
        self.state = EngagementStore(
            self.redis, prefix=prefix, group="engagement-api", dedup_ttl_s=1, state_ttl_s=1
        )
        self.preferences = PreferenceStore(self.redis, prefix)

    async def publish(self, topic: str, key: str, value: str) -> None:
        """Send one record and wait for the broker's acknowledgement (the producer is made on
        first use, in a thread: connecting blocks)."""
        if self.kafka_bootstrap is None:
            raise HTTPException(503, "changes cannot be taken now: no broker is configured")
        if self._producer is None:
            options = self.settings.kafka_client_options()
            try:
                self._producer = await asyncio.to_thread(
                    RecordProducer,
                    self.kafka_bootstrap,
                    client_id="engagement-api",
                    client_options=options,
                )
            except KafkaError:
                raise HTTPException(503, "changes cannot be taken now: no broker answers") from None
        try:
            await self._producer.send_many(topic, [(key.encode(), value.encode())])
        except ProduceError:
            raise HTTPException(503, "the change could not be taken now; try again") from None

    async def close(self) -> None:
        """Close the producer (if one was made) and the Redis connections: nothing may be left
        open when the event loop closes (uvloop refuses to close a loop with open sockets)."""
        if self._producer is not None:
            await asyncio.to_thread(self._producer.close)
        await self.redis.aclose(close_connection_pool=True)  # a pool passed in stays open else


async def api_of(request: Request) -> Api:
    """The dependency that gives a route the process's :class:`Api` (a coroutine, so FastAPI
    calls it on the event loop rather than handing it to a worker thread on every request)."""
    found: Api = request.app.state.api
    return found


def now() -> datetime:
    """The wall-clock time of a read, for the audit."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Held:
    """What is held about one student that the access rules and the views read."""

    pseudonym: str
    enrolment: Enrolment | None
    records: list[InterventionRecord]
    has_state: bool

    def facts(self, student_id: str) -> StudentFacts:
        """The facts the access rules decide on."""
        queued = [r.queue for r in self.records if r.queue]
        routes = [r.route.value for r in self.records if r.queue]
        return StudentFacts(
            student_id=student_id,
            on_record=self.enrolment is not None or self.has_state or bool(self.records),
            personal_tutor=self.enrolment.personal_tutor if self.enrolment else None,
            sponsored_visa=bool(self.enrolment and self.enrolment.sponsored_visa),
            review_teams=review_teams(queued, routes),
        )


async def held(api: Api, pseudonym: str) -> Held:
    """Roster entry, intervention records and whether state exists, in one round trip."""
    async with api.redis.pipeline(transaction=False) as pipe:
        decode = api.reference.add_enrolment_read(pipe, pseudonym)
        pipe.lrange(api.keys.interventions(pseudonym), 0, -1)
        pipe.exists(api.keys.state(pseudonym))
        roster, rows, state = await pipe.execute()
    records = [InterventionRecord.model_validate_json(row) for row in rows]
    return Held(pseudonym, decode(roster), records, bool(state))


async def staff_read(
    api: Api, principal: Principal, student_id: str, action: str
) -> tuple[Held, Role]:
    """The data held about ``student_id`` if ``principal`` may read it, audited either way;
    a refusal is a 404 worded as for a student who does not exist."""
    pseudonym = api.pseudonymise(student_id)
    found = await held(api, pseudonym)
    granted = granted_by(principal, found.facts(student_id), api.teams)
    await api.audit.record(
        who=reader(api, principal),
        role=audit_role(principal, granted).value,
        pseudonym=pseudonym,
        action=action,
        now=now(),
        outcome="read" if granted is not None else "refused",
    )
    if granted is None:
        raise HTTPException(404, NOT_FOUND)
    return found, granted


def reader(api: Api, principal: Principal) -> str:
    """Who the audit names: a member of staff by their id; a student by their pseudonym
    (the audit log holds no student id)."""
    if principal.has(Role.STUDENT) and len(principal.roles) == 1:
        return api.pseudonymise(principal.subject)
    return principal.subject


def dumps(rows: list[dict[str, Any]]) -> str:
    """JSON lines, for the export."""
    return "".join(json.dumps(row, sort_keys=True, default=str) + "\n" for row in rows)
