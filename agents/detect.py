"""Detection after each state batch: attendance rules on updated students, absence sweeps.

Nudges are sent before the detector forgets what it evaluated (``Detection.commit``), so a
crash in between re-evaluates and re-sends the same nudge ids, which the notifier delivers once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from agents.rules import attendance_breaches, attendance_nudge, vle_absence_nudge
from agents.state import ApplyResult, EngagementStore
from schemas.nudges import Nudge
from schemas.rules import AttendanceRateRule, RuleSet, VleAbsenceRule
from stream.eventtime import MS_PER_DAY


@dataclass
class Detection:
    """Nudges found in one batch, and the bookkeeping to do once they are safely sent."""

    nudges: list[Nudge] = field(default_factory=list)
    _after_send: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def commit(self) -> None:
        """Forget what was evaluated; call only after every nudge was acknowledged."""
        for step in self._after_send:
            await step()


class Detector:
    """Evaluates the rule set against the state after each batch."""

    def __init__(
        self, store: EngagementStore, rules: RuleSet, zone: ZoneInfo, *, grace_ms: int = 0
    ) -> None:
        self.store = store
        self.grace_ms = grace_ms
        self.zone = zone
        absence = rules.of_kind(VleAbsenceRule)
        self.absence: VleAbsenceRule | None = absence[0] if absence else None
        self.attendance: list[AttendanceRateRule] = rules.of_kind(AttendanceRateRule)

    @property
    def absence_ms(self) -> int:
        """The VLE absence threshold the state script reports gaps against."""
        days = self.absence.days if self.absence else 36_500
        return days * MS_PER_DAY

    async def evaluate(self, result: ApplyResult, partitions: Iterable[int]) -> Detection:
        """Find the nudges that the batch just applied makes due."""
        detection = Detection()
        for partition in sorted(set(partitions)):
            await self._attendance(partition, detection)
        if self.absence is not None:
            await self._absence(self.absence, result, detection)
        now_ms = int(time.time() * 1000)
        detection.nudges = [
            n.model_copy(update={"emitted_at_ms": now_ms}) for n in detection.nudges
        ]
        return detection

    async def _attendance(self, partition: int, detection: Detection) -> None:
        pending = await self.store.pending_attendance(partition)
        if not pending:
            return
        for rule in self.attendance:
            history = await self.store.attendance_history(pending, rule.window_days, rule.id)
            last_days: dict[str, int] = {}
            for item in pending:
                days, last_nudged = history[item.pseudonym]
                breaches = attendance_breaches(
                    rule, days, item.first_day, item.last_day, last_nudged
                )
                for window in breaches:
                    nudge = attendance_nudge(rule, item.pseudonym, window, self.zone)
                    detection.nudges.append(
                        nudge.model_copy(update={"published_at_ms": item.published_at_ms})
                    )
                    last_days[item.pseudonym] = window.end_day

            async def remember(rule_id: str = rule.id, days: dict[str, int] = last_days) -> None:
                await self.store.mark_nudged(rule_id, days)

            detection._after_send.append(remember)
        names = [item.pseudonym for item in pending]

        async def clear() -> None:
            await self.store.clear_pending(partition, names)

        detection._after_send.append(clear)

    async def _absence(
        self, rule: VleAbsenceRule, result: ApplyResult, detection: Detection
    ) -> None:
        for gap in result.gaps:
            detection.nudges.append(
                vle_absence_nudge(rule, gap.pseudonym, gap.last_seen_ms, self.zone)
            )
        # The watermark already waits for raw partitions that trail by less than the grace
        # period, so an absence is judged only on time every live part of the feed has reached.
        threshold = rule.days * MS_PER_DAY
        for (partition, source), watermark in sorted(result.watermarks.items()):
            if source != "vle":
                continue  # VLE absence is judged against the VLE feed's own progress
            due = await self.store.due_vle(partition, watermark - threshold)
            if not due:
                continue
            for pseudonym, since_ms in due:
                detection.nudges.append(vle_absence_nudge(rule, pseudonym, since_ms, self.zone))
            names = [pseudonym for pseudonym, _ in due]

            async def clear(partition: int = partition, names: list[str] = names) -> None:
                await self.store.clear_due(partition, names)

            detection._after_send.append(clear)
