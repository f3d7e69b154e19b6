"""The retention job: erase students withdrawn past their grace, then expire by class.

Run by ``engagement retention run`` and once a day by the notifier's timer
(``sinks/service.py``). Each run is whole in itself and safe to repeat or to run from two
processes at once: a second erasure of a student finds their receipt and finishes the first,
a list trimmed twice loses nothing newer than its period.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr

from schemas.keys import EXEMPTIONS, Keys, Retention
from schemas.settings import Settings
from sinks.channels.producer import ProduceError, RecordProducer
from sinks.retention.erase import Publish, erase
from sinks.retention.expire import expire, keys_of
from sinks.retention.plan import periods, targets, withdrawn_past_grace
from sinks.retention.tombstone import REASON_WITHDRAWN, ErasureTombstone

log = logging.getLogger("engagement.retention")


@dataclass
class RetentionReport:
    """What one run removed, in counts only (it names nobody)."""

    expired: Counter[Retention] = field(default_factory=Counter)
    erased: int = 0
    postponed: int = 0  # erasures whose tombstone the broker did not take
    dry_run: bool = False

    def lines(self, by_class: Mapping[Retention, int]) -> list[str]:
        """One line per class with a period, then the erasures, for the operator."""
        verb = "would expire" if self.dry_run else "expired"
        out = [
            f"{name.value}: {verb} {self.expired.get(name, 0)} (older than {days} days)"
            for name, days in sorted(by_class.items())
        ]
        erased = "would erase" if self.dry_run else "erased"
        line = f"withdrawn past the grace period: {erased} {self.erased} student(s)"
        if self.postponed:
            line += f", {self.postponed} postponed (the interventions topic did not answer)"
        out.append(line)
        return out


def class_periods(settings: Settings) -> dict[Retention, int]:
    """Days per retention class the job applies; classes not named here are never touched."""
    return periods(
        interventions=settings.retain_interventions_days,
        review=settings.retain_review_days,
        preferences=settings.retain_preferences_days,
        audit=settings.audit_retention_days,
        ukvi=settings.ukvi_retention_days,
    )


async def withdrawn(client: aioredis.Redis, prefix: str, today: date, grace_days: int) -> list[str]:
    """The pseudonyms whose exemptions say they withdrew more than ``grace_days`` ago."""
    out = []
    pattern = EXEMPTIONS.pattern(prefix)
    for key in await keys_of(client, EXEMPTIONS, prefix):
        raw: dict[Any, Any] = await client.hgetall(key)
        fields = {_text(k): _text(v) for k, v in raw.items()}
        match = pattern.match(key)
        if match and withdrawn_past_grace(fields, today, grace_days):
            out.append(match.group("pseudonym"))
    return out


async def claim_run(client: aioredis.Redis, prefix: str, interval_s: float, now: datetime) -> bool:
    """Take this interval's run: True for exactly one caller until ``interval_s`` has passed,
    however often the notifiers restart or however many there are."""
    claimed = await client.set(
        Keys(prefix).retention_run(), now.isoformat(), nx=True, px=int(interval_s * 1000)
    )
    return bool(claimed)


def publisher(producer: RecordProducer, topic: str) -> Publish:
    """Tombstones to the interventions topic, keyed by their own random id (never a student's
    pseudonym, so the message key names nobody either); returns once the broker has it."""

    async def send(tombstone: ErasureTombstone) -> None:
        value = tombstone.model_dump_json().encode()
        await producer.send_many(topic, [(tombstone.tombstone_id.encode(), value)])

    return send


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


async def run_retention(  # each argument is one thing the run needs
    client: aioredis.Redis,
    prefix: str,
    key: SecretStr,
    *,
    by_class: Mapping[Retention, int],
    grace_days: int,
    now: datetime,
    today: date,
    publish: Publish | None,
    dry_run: bool = False,
) -> RetentionReport:
    """Erase the withdrawn past their grace, then expire every class with a period."""
    report = RetentionReport(dry_run=dry_run)
    for pseudonym in await withdrawn(client, prefix, today, grace_days):
        if dry_run:
            report.erased += 1
            continue
        try:
            await erase(client, prefix, key, pseudonym, reason=REASON_WITHDRAWN, now=now,
                        publish=publish)  # fmt: skip
        except ProduceError as exc:  # nothing of theirs was removed; the next run tries again
            log.warning("erasure postponed: the tombstone was not published (%s)", exc)
            report.postponed += 1
        else:
            report.erased += 1
    report.expired = await expire(client, prefix, by_class, now, dry_run=dry_run)
    log.info(
        "retention run: %d erased, %s",
        report.erased,
        json.dumps({k.value: v for k, v in sorted(report.expired.items())}),
    )
    return report


async def run_with_settings(
    client: aioredis.Redis,
    settings: Settings,
    now: datetime,
    publish: Publish | None,
    *,
    dry_run: bool = False,
) -> tuple[RetentionReport, dict[Retention, int]]:
    """One run configured by the settings object; the report and the periods it applied
    (a class whose families all expire by themselves, such as ukvi, is not listed)."""
    visited = {t.family.retention for t in targets(class_periods(settings))}
    by_class = {c: d for c, d in class_periods(settings).items() if c in visited}
    report = await run_retention(
        client,
        settings.key_prefix,
        settings.pseudonym_key,
        by_class=by_class,
        grace_days=settings.erasure_grace_days,
        now=now,
        today=now.astimezone(settings.zone).date(),
        publish=publish,
        dry_run=dry_run,
    )
    return report, by_class
