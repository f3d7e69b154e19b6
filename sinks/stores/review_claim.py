"""Claiming a review item, and passing one to the team lead at once: what the API adds to the
review queue (``sinks.stores.review``), kept apart so the queue's module stays small.

A claim says who is dealing with an item: it is stored on the item's hash (``claimed_by``,
``claimed_at``), shown in listings, and audited as every read of an item is. Nobody else may
claim or decide a claimed item, except the lead of the route's team (or the lead it was
escalated to), who may take it over. An escalation by a member of staff is the escalation the
timer would make later (the same script and the same record id), made now with the person's
note; an item escalates once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from schemas.interventions import InterventionRecord, Outcome, Stage
from sinks.review.rules import ReviewError, sentence
from sinks.stores.interventions import new_record, record_id
from sinks.stores.review import ReviewQueue, _aware, _ms, _text

CLAIMED_BY: Final = "claimed_by"
CLAIMED_AT: Final = "claimed_at"


@dataclass(frozen=True)
class Claim:
    """Who took an item, and when."""

    staff_id: str
    at: datetime


async def claims(queue: ReviewQueue, nudge_ids: list[str]) -> dict[str, Claim]:
    """The claims on these items, one round trip; unclaimed items are left out."""
    async with queue.redis.pipeline(transaction=False) as pipe:
        for nudge_id in nudge_ids:
            pipe.hmget(queue.keys.review_item(nudge_id), [CLAIMED_BY, CLAIMED_AT])
        replies = await pipe.execute()
    out = {}
    for nudge_id, (who, at) in zip(nudge_ids, replies, strict=True):
        if who is not None and at is not None:
            out[nudge_id] = Claim(_text(who), datetime.fromisoformat(_text(at)))
    return out


async def claim(queue: ReviewQueue, nudge_id: str, staff_id: str, now: datetime) -> Claim:
    """``staff_id`` takes an undecided item they may act on (audited); a claim by someone
    else is refused unless ``staff_id`` leads the team, who takes it over."""
    item = await queue.show(nudge_id, staff_id, now)  # permitted, and audited as a read
    if item.decided:
        msg = f"review item {nudge_id} is already decided: see the student's records"
        raise ReviewError(msg, "already_decided")
    await queue.check_claim(item, staff_id)
    at = _aware(now)
    async with queue.redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            queue.keys.review_item(nudge_id),
            mapping={CLAIMED_BY: staff_id, CLAIMED_AT: at.isoformat()},
        )
        await pipe.execute()
    return Claim(staff_id, at)


async def escalate_now(
    queue: ReviewQueue, nudge_id: str, staff_id: str, note: str | None, now: datetime
) -> InterventionRecord:
    """Pass an undecided item to its team's lead now, with ``staff_id``'s note; once."""
    item = await queue.show(nudge_id, staff_id, now)
    if item.decided:
        msg = f"review item {nudge_id} is already decided: see the student's records"
        raise ReviewError(msg, "already_decided")
    await queue.check_claim(item, staff_id)
    team = queue.teams.team_for(item.route)
    if team is None or queue.leads(item, staff_id):
        msg = "you lead this item's team (or took it as an escalation): decide it instead"
        raise ReviewError(msg, "invalid")
    if item.escalated_to is not None:
        msg = f"review item {nudge_id} has already gone to the team lead {item.escalated_to}"
        raise ReviewError(msg, "already_decided")
    # The sweep's own claim (review_escalate.lua): whichever comes first escalates, once.
    claimed = await queue._claim_script(
        keys=[
            queue.keys.review_item(nudge_id),
            queue.keys.review_open(),
            queue.keys.review_queue(f"lead:{team.lead}"),
            queue.recorded_key(record_id(nudge_id, Stage.REVIEW)),
        ],
        args=[nudge_id, team.lead, _aware(now).isoformat(), _ms(item.queued_at)],
    )
    if claimed is None:
        msg = f"review item {nudge_id} was decided just now: see the student's records"
        raise ReviewError(msg, "already_decided")
    lead, at = _text(claimed[0]), datetime.fromisoformat(_text(claimed[1]))
    words = f" Note: {sentence(note)}" if note and note.strip() else ""
    record = new_record(
        item,
        item.summary,
        Stage.ESCALATION,
        Outcome.ESCALATED,
        "escalated_by_staff",
        f"Passed to the team lead {lead} by {queue.rules.role(item, staff_id)}.{words}",
        at,
        queue=f"lead:{lead}",
        staff_id=staff_id,
    )
    added = await queue.append(record)  # the timer's later attempt finds this record
    await queue.redis.zrem(queue.keys.review_open(), nudge_id)
    if not added:
        msg = f"review item {nudge_id} has already gone to the team lead {lead}"
        raise ReviewError(msg, "already_decided")
    return record
