"""Shared pieces of every wire schema: versions, refusal reasons, the forbidden-field policy."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

SCHEMA_VERSION: Final = 1


class WireModel(BaseModel):
    """Base for every payload on a topic: frozen, and unknown fields are dropped (minimisation)."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


class Source(StrEnum):
    """Names of the feeds the product ships with, for code that names one (``Source.VLE``).

    Which feeds exist is the registry in :mod:`schemas.sources`: enumerate that, never this
    enum, so that a feed added there is seen everywhere.
    """

    SWIPE = "swipe"
    ATTENDANCE = "attendance"
    VLE = "vle"
    LIBRARY = "library"


class Reason(StrEnum):
    """Machine-readable reasons an input is refused; every dead letter carries one."""

    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    OVERSIZED = "oversized"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    FORBIDDEN_FIELD = "forbidden_field"
    ASSESSMENT_DATA = "assessment_data"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    PROCESSING_ERROR = "processing_error"
    TOO_LATE = "too_late"
    CORRECTION_TOO_LATE = "correction_too_late"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    FUTURE_DATED = "future_dated"
    IMPLAUSIBLE_TIME = "implausible_time"


# Field names that carry assessment results or special-category personal data (UK GDPR art. 9).
# The policies forbid both: analytics never feed assessment, and sensitive data is not taken in.
# Names are compared after lower-casing and removing everything but letters and digits, so
# "Final_Result", "finalResult" and "final-result" are all caught.
ASSESSMENT_FIELDS = frozenset(
    {
        "grade", "grades", "gradepoint", "gradebook", "score", "scores", "rawscore",
        "scaledscore", "result", "results", "finalresult", "finalmark", "exammark",
        "assessmentmark", "assessmentresult", "examresult", "marks", "percentage", "gpa",
        "classification", "degreeclassification",
        # Caliper (Score.scoreGiven, Result.resultScore) and Canvas (course_grade_change,
        # grade_change, outcome results). A task's maxScore is the task's, not a result.
        "scoregiven", "resultscore", "currentscore", "finalscore", "unpostedcurrentscore",
        "unpostedfinalscore", "currentgrade", "finalgrade", "unpostedcurrentgrade",
        "unpostedfinalgrade", "enteredscore", "enteredgrade", "scoregivenbefore",
        "gradegiven", "achievedscore", "rawgrade", "finalgradeoverride", "oldscore",
        "oldgrade", "oldcurrentscore", "oldfinalscore", "oldunpostedcurrentscore",
        "oldunpostedfinalscore", "originalscore", "normalscore", "totalscore", "penaltyscore",
        "extracreditscore", "curvedtotalscore", "curvefactor",
    }
)  # fmt: skip
SPECIAL_CATEGORY_FIELDS = frozenset(
    {
        "ethnicity", "ethnic", "ethnicorigin", "race", "religion", "religiousbelief", "belief",
        "disability", "disabled", "health", "medical", "medicalcondition", "sexuality",
        "sexualorientation", "genderidentity", "politicalopinion", "politicalopinions",
        "tradeunion", "tradeunionmembership", "biometric", "genetic", "geneticdata",
    }
)  # fmt: skip
# VLE actions that report an assessment outcome rather than engagement.
ASSESSMENT_ACTIONS = frozenset({"graded", "scored", "assignmentgraded", "gradeupdated", "marked"})

_NON_ALNUM = re.compile(r"[^a-z0-9]")


@lru_cache(maxsize=8192)
def normalise_name(name: str) -> str:
    """Lower-case a field or action name and strip separators so spelling variants compare equal."""
    return _NON_ALNUM.sub("", name.lower())


def find_forbidden(payload: Any, path: str = "") -> tuple[Reason, str] | None:
    """Return (reason, dotted path) of the first forbidden field anywhere in ``payload``, if any."""
    if isinstance(payload, dict):
        for key, value in payload.items():
            name = normalise_name(str(key))
            where = f"{path}.{key}" if path else str(key)
            if name in ASSESSMENT_FIELDS:
                return Reason.ASSESSMENT_DATA, where
            if name in SPECIAL_CATEGORY_FIELDS:
                return Reason.FORBIDDEN_FIELD, where
            if isinstance(value, dict | list):
                found = find_forbidden(value, where)
                if found is not None:
                    return found
    elif isinstance(payload, list):
        for index, item in enumerate(payload):
            if isinstance(item, dict | list):
                found = find_forbidden(item, f"{path}[{index}]")
                if found is not None:
                    return found
    return None


# Severity order when pydantic reports several problems: the first one present is reported.
_SEVERITY = (
    Reason.UNKNOWN_SCHEMA_VERSION,
    Reason.MISSING_FIELD,
    Reason.WRONG_TYPE,
    Reason.INVALID_VALUE,
)


def classify_validation_error(exc: ValidationError) -> tuple[Reason, str]:
    """Map a pydantic error to a refusal reason and a sentence naming the field to fix."""
    found: dict[Reason, str] = {}
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"]) or "(event)"
        kind = error["type"]
        if loc == "schema_version":
            reason = Reason.UNKNOWN_SCHEMA_VERSION
            text = (
                f"schema_version {error.get('input')!r} is not supported; this worker reads "
                f"version {SCHEMA_VERSION}: upgrade the worker or publish version {SCHEMA_VERSION}"
            )
        elif kind == "missing":
            reason, text = Reason.MISSING_FIELD, f"required field '{loc}' is missing"
        elif kind == "wrong_type" or kind.endswith("_type"):
            reason, text = Reason.WRONG_TYPE, f"field '{loc}': {error['msg']}"
        else:
            reason, text = Reason.INVALID_VALUE, f"field '{loc}': {error['msg']}"
        found.setdefault(reason, text)
    count = exc.error_count()
    for reason in _SEVERITY:
        if reason in found:
            more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
            return reason, found[reason] + more
    return Reason.INVALID_VALUE, str(exc)  # pragma: no cover - pydantic always reports errors
