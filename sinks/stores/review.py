"""The human review queue: invitations and referrals wait here for a member of staff.

Nothing beyond a prompt reaches a student automatically (DESIGN 6). The notifier enqueues an
invitation or referral (and writes the ``queued_for_review`` record); staff list, read and
decide items, each decision becoming an intervention record (DESIGN 8); an item nobody decides
in time goes to the lead of its route's team. Every read of an item is audited (DESIGN 12).

Keys: the ``review_item``, ``review_queue``, ``review_open`` and ``audit`` families of the key
register (``schemas/keys.py``). An item hash holds ``item`` (the ReviewItem as queued, JSON,
written once), ``escalated_to`` and ``escalated_at`` (set once, by the escalation that claims
it) and ``decided``. Queues are ``tutor:<staff id>``, ``team:<team>`` and ``lead:<staff id>``;
listing reads only the queues a person works, never the whole store. The review record's
``recorded`` key is the authority on "decided" (a process that dies after appending a decision
and before marking the item still leaves it hidden, and the next listing tidies up).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import redis.asyncio as aioredis

from agents.store.scripts import script
from schemas.interventions import InterventionRecord, Outcome, StaffAction, Stage
from schemas.keys import Keys
from schemas.nudges import Nudge, Route, Tier
from schemas.review import ReviewItem, TeamsConfig
from sinks.review.rules import ReviewError, ReviewRules, duration
from sinks.stores.interventions import new_record, record_id

log = logging.getLogger(__name__)

ESCALATION_BATCH: Final = 500
# Referrals are more serious than invitations, so they are listed first.
_SEVERITY: Final = {Tier.REFERRAL: 0, Tier.INVITATION: 1}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class ClaimedError(ReviewError):
    """The item is claimed by someone else (``holder``); the message names them."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message, "invalid")
        self.holder = holder


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        msg = f"a timezone-aware time is needed, got {moment!r}"
        raise ValueError(msg)
    return moment


class ReviewQueue:
    """Review queues per personal tutor and per team, in Redis; see the module docstring."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        teams: TeamsConfig,
        append: Callable[[InterventionRecord], Awaitable[bool]],
        *,
        recorded_key: Callable[[str], str] | None = None,
        audit_retention_days: int | None = None,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        # How long its reads stay in the audit log (ENGAGEMENT_AUDIT_RETENTION_DAYS; None: the
        # setting's default).
        self.audit_retention_days = audit_retention_days
        self.teams = teams
        self.rules = ReviewRules(teams)
        self.append = append
        # Must name the key the intervention log sets when it appends a record.
        self.keys = Keys(prefix)
        self.recorded_key = recorded_key or self.keys.recorded
        self._enqueue_script = script(client, "review_enqueue")
        self._claim_script = script(client, "review_escalate")

    # -- keys -------------------------------------------------------------------------------

    def _item_key(self, nudge_id: str) -> str:
        return self.keys.review_item(nudge_id)

    def _queue_key(self, queue: str) -> str:
        return self.keys.review_queue(queue)

    @property
    def _open_key(self) -> str:
        return self.keys.review_open()

    async def waiting(self) -> int:
        """Items nobody has decided and that have not yet gone to a team lead."""
        return int(await self.redis.zcard(self._open_key))

    @property
    def audit_key(self) -> str:
        """The Redis list of audit entries (JSON), oldest first."""
        return self.keys.audit()

    def _decided_key(self, nudge_id: str) -> str:
        return self.recorded_key(record_id(nudge_id, Stage.REVIEW))

    def queue_for(self, route: Route, tutor: str | None) -> str:
        """The queue an item on ``route`` joins (see ``ReviewRules.queue_for``)."""
        return self.rules.queue_for(route, tutor)

    def may_act(self, item: ReviewItem, staff_id: str) -> bool:
        """Whether ``staff_id`` may read and decide ``item``."""
        return self.rules.may_act(item, staff_id)

    def leads(self, item: ReviewItem, staff_id: str) -> bool:
        """Whether ``staff_id`` leads the item's team (or took it as an escalation)."""
        team = self.teams.team_for(item.route)
        return item.escalated_to == staff_id or (team is not None and team.lead == staff_id)

    async def check_claim(self, item: ReviewItem, staff_id: str) -> None:
        """Refuse ``staff_id`` acting on an item someone else claimed; the lead may."""
        holder = await self.redis.hget(self._item_key(item.nudge_id), "claimed_by")
        if holder is not None and _text(holder) != staff_id and not self.leads(item, staff_id):
            msg = (
                f"review item {item.nudge_id} is claimed by {_text(holder)}: ask them, or the lead"
            )
            raise ClaimedError(msg, _text(holder))

    # -- reading ----------------------------------------------------------------------------

    def _build(self, fields: dict[str, str], recorded: bool) -> ReviewItem:
        data = json.loads(fields["item"])
        data["escalated_to"] = fields.get("escalated_to")
        data["escalated_at"] = fields.get("escalated_at")
        data["decided"] = recorded or fields.get("decided") == "1"
        return ReviewItem.model_validate(data)

    async def _load(self, nudge_ids: Sequence[str]) -> list[ReviewItem | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for nudge_id in nudge_ids:
                pipe.hgetall(self._item_key(nudge_id))
                pipe.exists(self._decided_key(nudge_id))
            replies = await pipe.execute()
        out: list[ReviewItem | None] = []
        for raw, recorded in zip(replies[::2], replies[1::2], strict=True):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            out.append(self._build(fields, bool(recorded)) if "item" in fields else None)
        return out

    async def get(self, nudge_id: str) -> ReviewItem | None:
        """The item about ``nudge_id`` (decided or not), or None. Not audited: internal use."""
        (item,) = await self._load([nudge_id])
        return item

    async def visible_to(self, staff_id: str, *, now: datetime | None = None) -> list[ReviewItem]:
        """Undecided items ``staff_id`` may act on, referrals first, then oldest queued first.

        With ``now`` the listing is audited (a list shows individual data): the CLI and API
        pass it; internal callers that show nothing to a person leave it out.
        """
        queues = self.rules.queues_of(staff_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zrange(self._queue_key(queue), 0, -1)
            members = await pipe.execute()
        where: dict[str, list[str]] = {}
        for queue, ids in zip(queues, members, strict=True):
            for nudge_id in map(_text, ids):
                where.setdefault(nudge_id, []).append(queue)
        nudge_ids = list(where)
        items = await self._load(nudge_ids)
        visible, stale = [], []
        for nudge_id, item in zip(nudge_ids, items, strict=True):
            if item is None or item.decided:
                stale.append((nudge_id, item))
            else:
                visible.append(item)
        await self._tidy(stale, where)
        visible.sort(key=lambda i: (_SEVERITY[i.tier], i.queued_at, i.nudge_id))
        if now is not None:
            await self._audit(staff_id, "list", now, nudge_ids=[i.nudge_id for i in visible])
        return visible

    async def _tidy(
        self, stale: list[tuple[str, ReviewItem | None]], where: dict[str, list[str]]
    ) -> None:
        """Finish what a process that died after recording a decision left undone."""
        if not stale:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for nudge_id, item in stale:
                if item is not None:
                    pipe.hset(self._item_key(nudge_id), "decided", "1")
                    pipe.zrem(self._open_key, nudge_id)
                for queue in where[nudge_id]:
                    pipe.zrem(self._queue_key(queue), nudge_id)
            await pipe.execute()

    async def _audit(self, staff_id: str, action: str, now: datetime, **extra: Any) -> None:
        entry = {"staff_id": staff_id, "action": action, "at": _aware(now).isoformat(), **extra}
        await self.redis.rpush(self.audit_key, json.dumps(entry, sort_keys=True))
        # The same read in the audit log, once per student it showed (or tried to): each
        # student's "who has looked at my data" includes the review queue's reads.
        from sinks.stores.audit import DEFAULT_RETENTION_DAYS, AuditLog

        ids = [*extra.get("nudge_ids", ()), *([extra["nudge_id"]] if "nudge_id" in extra else [])]
        found = await self._load(ids) if ids else []
        shown = {item.pseudonym for item in found if item is not None}
        days = self.audit_retention_days or DEFAULT_RETENTION_DAYS
        audit = AuditLog(self.redis, self.prefix, retention_days=days)
        await audit.record_many(
            who=staff_id,
            role="staff",
            pseudonyms=sorted(shown),
            action=f"review {action.removesuffix('_refused')}",
            now=now,
            outcome="refused" if action.endswith("_refused") else "read",
        )

    async def _permitted(self, nudge_id: str, staff_id: str) -> ReviewItem:
        item = await self.get(nudge_id)
        if item is None:
            msg = f"no review item for nudge {nudge_id}: check the id in `engagement review list`"
            raise ReviewError(msg, "not_found")
        if not self.rules.may_act(item, staff_id):
            msg = (
                f"{staff_id} may not see review item {nudge_id}: it is not in a queue they work "
                "and was not escalated to them"
            )
            raise ReviewError(msg, "forbidden")
        return item

    async def show(self, nudge_id: str, staff_id: str, now: datetime) -> ReviewItem:
        """One item in full, for someone allowed to act on it; every attempt is audited."""
        try:
            item = await self._permitted(nudge_id, staff_id)
        except ReviewError as exc:
            await self._audit(staff_id, "show_refused", now, nudge_id=nudge_id, why=exc.kind)
            raise
        await self._audit(staff_id, "show", now, nudge_id=nudge_id)
        return item

    # -- writing ----------------------------------------------------------------------------

    async def enqueue(self, nudge: Nudge, queue: str, now: datetime) -> ReviewItem:
        """Put ``nudge`` in ``queue`` once; a repeat returns the item as first queued."""
        if nudge.tier is Tier.PROMPT:
            msg = f"nudge {nudge.nudge_id} is a prompt: prompts are never queued for review"
            raise ReviewError(msg, "invalid")
        kind, _, owner = queue.partition(":")
        if not owner or kind not in ("tutor", "team"):
            msg = f"queue {queue!r} is not 'tutor:<staff id>' or 'team:<team>': use queue_for()"
            raise ReviewError(msg, "invalid")
        item = ReviewItem(
            nudge_id=nudge.nudge_id,
            pseudonym=nudge.pseudonym,
            rule_id=nudge.rule_id,
            rule_version=nudge.rule_version,
            tier=nudge.tier,
            route=nudge.route,
            queue=queue,
            queued_at=_aware(now),
            created_at=nudge.created_at,
            summary=nudge.explanation.summary,
            explanation=nudge.explanation,
        )
        raw = await self._enqueue_script(
            keys=[self._item_key(nudge.nudge_id), self._queue_key(queue), self._open_key],
            args=[item.model_dump_json(), _ms(now), nudge.nudge_id],
        )
        fields = {_text(k): _text(v) for k, v in zip(raw[::2], raw[1::2], strict=True)}
        recorded = await self.redis.exists(self._decided_key(nudge.nudge_id))
        return self._build(fields, bool(recorded))

    async def decide(
        self,
        nudge_id: str,
        staff_id: str,
        action: StaffAction,
        *,
        reason: str | None,
        referred_to: str | None,
        now: datetime,
    ) -> InterventionRecord:
        """Record what ``staff_id`` did about an item; each item is decided once."""
        item = await self._permitted(nudge_id, staff_id)
        reason, referred_to = self.rules.check_decision(action, reason, referred_to)
        await self.check_claim(item, staff_id)  # a claim (review_claim.py) holds others off
        if item.decided:
            msg = f"review item {nudge_id} is already decided: see the student's records"
            raise ReviewError(msg, "already_decided")
        record = new_record(
            item,
            item.summary,
            Stage.REVIEW,
            Outcome.STAFF_DECISION,
            action.value,
            self.rules.decision_detail(item, staff_id, action, reason, referred_to),
            _aware(now),
            queue=item.queue,
            staff_id=staff_id,
            action=action,
            referred_to=referred_to,
        )
        added = await self.append(record)
        await self._mark_decided(item)
        if not added:
            msg = f"review item {nudge_id} is already decided (by someone else just now)"
            raise ReviewError(msg, "already_decided")
        return record

    async def _mark_decided(self, item: ReviewItem) -> None:
        # A concurrent escalation may have added it to a lead's queue since it was read; the
        # lead's next listing sees the `recorded` key and tidies that entry away.
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._item_key(item.nudge_id), "decided", "1")
            pipe.zrem(self._queue_key(item.queue), item.nudge_id)
            pipe.zrem(self._open_key, item.nudge_id)
            if item.escalated_to:
                pipe.zrem(self._queue_key(f"lead:{item.escalated_to}"), item.nudge_id)
            await pipe.execute()

    async def escalate_due(
        self, now: datetime, *, limit: int = ESCALATION_BATCH
    ) -> list[InterventionRecord]:
        """Pass items undecided for ``escalate_after_hours`` to their team lead, once each.

        Safe to run from several processes at once: the claim is atomic, and every caller
        builds the same record from the claimed values, which the log appends once. Returns
        the records this call appended.
        """
        cutoff = _aware(now) - timedelta(hours=self.teams.escalate_after_hours)
        due = await self.redis.zrangebyscore(self._open_key, "-inf", _ms(cutoff), 0, limit)
        records = []
        for nudge_id in map(_text, due):
            record = await self._escalate(nudge_id, now)
            if record is not None:
                records.append(record)
        return records

    async def _escalate(self, nudge_id: str, now: datetime) -> InterventionRecord | None:
        item = await self.get(nudge_id)
        if item is None or item.decided:
            await self.redis.zrem(self._open_key, nudge_id)
            return None
        team = self.teams.team_for(item.route)
        if team is None:  # the teams file is checked against the routes at start-up
            log.error("no team for route %s: item %s cannot escalate", item.route, nudge_id)
            return None
        claimed = await self._claim_script(
            keys=[
                self._item_key(nudge_id),
                self._open_key,
                self._queue_key(f"lead:{team.lead}"),
                self._decided_key(nudge_id),
            ],
            args=[nudge_id, team.lead, now.isoformat(), _ms(item.queued_at)],
        )
        if claimed is None:
            return None
        lead, at = _text(claimed[0]), datetime.fromisoformat(_text(claimed[1]))
        record = new_record(
            item,
            item.summary,
            Stage.ESCALATION,
            Outcome.ESCALATED,
            "not_acted_on",
            f"Not acted on within {duration(self.teams.escalate_after_hours)}; "
            f"passed to the team lead {lead}.",
            at,
            queue=f"lead:{lead}",
        )
        # Appended before the item leaves the open set: a process that dies in between leaves
        # it there, and the next sweep appends the same record (or learns it already exists).
        added = await self.append(record)
        await self.redis.zrem(self._open_key, nudge_id)
        return record if added else None
