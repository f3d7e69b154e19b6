"""Who works which review queue, who may read and decide an item, and the words of a
decision: the review queue's rules, without Redis (the store is ``sinks.stores.review``)."""

from __future__ import annotations

from typing import Final, Literal

from schemas.errors import EngagementError
from schemas.interventions import StaffAction
from schemas.nudges import Route
from schemas.review import ReviewItem, TeamsConfig, queue_name

MAX_NOTE: Final = 1000

ErrorKind = Literal["not_found", "forbidden", "invalid", "already_decided"]


class ReviewError(EngagementError):
    """A review request cannot be done; ``kind`` says why, the message what to do."""

    def __init__(self, message: str, kind: ErrorKind) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


def sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def duration(hours: float) -> str:
    """``72 hours``, ``30 minutes``, ``1.8 seconds``: the delay in words."""
    for size, unit in ((1.0, "hour"), (1 / 60, "minute"), (1 / 3600, "second")):
        if hours >= size or unit == "second":
            amount = round(hours / size, 2)
            return f"{amount:g} {unit}{'' if amount == 1 else 's'}"
    raise AssertionError  # pragma: no cover - the loop always returns


class ReviewRules:
    """The review rules of one teams configuration (see docs/review.md)."""

    def __init__(self, teams: TeamsConfig) -> None:
        self.teams = teams

    def queue_for(self, route: Route, tutor: str | None) -> str:
        """The queue an item on ``route`` joins: the student's tutor's, else the team's."""
        queue = queue_name(route, tutor)
        if queue is None:
            msg = f"route {route.value!r} goes to the student, never to a review queue"
            raise ReviewError(msg, "invalid")
        return queue

    def queues_of(self, staff_id: str) -> list[str]:
        """Every queue ``staff_id`` works: own tutees, own teams, items escalated to them."""
        queues = [f"tutor:{staff_id}", f"lead:{staff_id}"]
        queues += [
            f"team:{name}" for name, team in self.teams.teams.items() if team.works(staff_id)
        ]
        return queues

    def may_act(self, item: ReviewItem, staff_id: str) -> bool:
        """Whether ``staff_id`` may read and decide ``item`` (see docs/review.md)."""
        kind, _, owner = item.queue.partition(":")
        team = self.teams.teams.get(owner) if kind == "team" else None
        route_team = self.teams.team_for(item.route)
        return (
            item.escalated_to == staff_id
            or (kind == "tutor" and owner == staff_id)
            or (team is not None and team.works(staff_id))
            or (route_team is not None and route_team.lead == staff_id)
        )

    def role(self, item: ReviewItem, staff_id: str) -> str:
        kind, _, owner = item.queue.partition(":")
        if kind == "tutor" and owner == staff_id:
            return f"personal tutor {staff_id}"
        route_team = self.teams.team_for(item.route)
        if item.escalated_to == staff_id or (route_team and route_team.lead == staff_id):
            return f"team lead {staff_id}"
        return f"{owner.replace('_', ' ')} team member {staff_id}"

    def decision_detail(
        self,
        item: ReviewItem,
        staff_id: str,
        action: StaffAction,
        reason: str | None,
        referred_to: str | None,
    ) -> str:
        """A sentence the student could read (they can: records are visible to them)."""
        role = self.role(item, staff_id)
        note = f" Note: {sentence(reason)}" if reason else ""
        if action is StaffAction.CONTACTED:
            return f"{role[0].upper()}{role[1:]} got in touch with the student.{note}"
        if action is StaffAction.MEETING_BOOKED:
            return f"{role[0].upper()}{role[1:]} booked a meeting with the student.{note}"
        if action is StaffAction.NO_ACTION:
            return f"Reviewed by {role}; no action needed: {sentence(reason or '')}"
        return f"Referred on to {referred_to} by {role}.{note}"

    @staticmethod
    def check_decision(
        action: StaffAction, reason: str | None, referred_to: str | None
    ) -> tuple[str | None, str | None]:
        reason = (reason or "").strip() or None
        referred_to = (referred_to or "").strip() or None
        if action is StaffAction.NO_ACTION and reason is None:
            msg = (
                "no_action needs a reason (--reason TEXT): say why no contact is needed; "
                "the student can read it"
            )
            raise ReviewError(msg, "invalid")
        if action is StaffAction.REFERRED and referred_to is None:
            msg = "referred needs the service referred on to (--service NAME)"
            raise ReviewError(msg, "invalid")
        if action is not StaffAction.REFERRED and referred_to is not None:
            msg = f"a service (--service) goes with action referred, not {action.value}"
            raise ReviewError(msg, "invalid")
        if reason is not None and len(reason) > MAX_NOTE:
            msg = f"the reason is {len(reason)} characters; keep it under {MAX_NOTE}"
            raise ReviewError(msg, "invalid")
        return reason, referred_to
