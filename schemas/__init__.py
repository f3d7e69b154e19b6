"""Pydantic models for every topic and every accepted external format."""

from schemas.common import SCHEMA_VERSION, Reason, Source, find_forbidden
from schemas.deadletter import DeadLetter
from schemas.events import (
    MODEL_BY_SOURCE,
    AnyRawEvent,
    AttendanceMark,
    CardSwipe,
    Envelope,
    VleActivity,
)
from schemas.interventions import InterventionRecord, Outcome
from schemas.nudges import Channel, Explanation, Nudge, Tier
from schemas.preferences import Preferences
from schemas.signals import Signal, SignalBatch
from schemas.sources import SOURCES, SourceKind, SourceRegistry

__all__ = [
    "MODEL_BY_SOURCE",
    "SCHEMA_VERSION",
    "SOURCES",
    "AnyRawEvent",
    "AttendanceMark",
    "CardSwipe",
    "Channel",
    "DeadLetter",
    "Envelope",
    "Explanation",
    "InterventionRecord",
    "Nudge",
    "Outcome",
    "Preferences",
    "Reason",
    "Signal",
    "SignalBatch",
    "Source",
    "SourceKind",
    "SourceRegistry",
    "Tier",
    "VleActivity",
    "find_forbidden",
]
