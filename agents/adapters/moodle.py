"""Moodle's standard log (``logstore_standard_log`` rows) as VLE activity.

A row is one logged event (admin/tool/log/store/standard/db/install.xml): a JSON object
with the table's columns, numbers as numbers or as text; a JSON array is a batch, one unit per
row; :func:`rows_from_csv` reads the table's CSV export into such rows. The mapping, in short
(docs/formats/moodle.md has every choice and why):

- time: ``timecreated`` (epoch seconds) in UTC;
- event id: ``moodle-log-<id>``; a row without an id gets a hash of its columns;
- actor: ``userid`` as ``moodle:<userid>`` (the ``as-is`` id is the number itself);
- course: ``moodle-course-<courseid>``, or "(platform)" for the site (0 or 1) and none;
- action: ``<component>:<event class>`` (``mod_forum:discussion_viewed``);
- resource: ``<component>/<objecttable>/<objectid>``, else the course module;
- graded and assessed events, submitted quiz attempts and any grade in ``other`` are refused;
  surveys, system rows, "log in as", teaching-level and staff-on-student events, anonymous
  rows and level-0 events other than logging in and out are ignored. ``other``, ``ip`` and
  ``origin`` are never copied into anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from agents.adapters.moodle_csv import (
    COLUMNS,
    MALFORMED,
    malformed_detail,
    numbered_rows_from_csv,
    rows_from_csv,
)
from agents.adapters.moodle_rules import (
    DERIVED_CLASSES,
    IMPERSONATION_CLASSES,
    PLATFORM_CLASSES,
    STAFF_ON_STUDENT,
    SURVEY_COMPONENTS,
    SYSTEM_ORIGINS,
    TEACHER_EDITS,
    forbidden_in_other,
    is_assessment,
    is_result_view,
)
from agents.adapters.units import (
    Actor,
    AdaptContext,
    Ignored,
    Stop,
    Unit,
    content_id,
    epoch_time,
    guarded,
)
from schemas.common import SCHEMA_VERSION, Reason, find_forbidden

__all__ = [
    "COLUMNS",
    "MALFORMED",
    "NO_COURSE",
    "PLATFORM",
    "adapt",
    "numbered_rows_from_csv",
    "rows_from_csv",
]

PLATFORM: Final = "moodle"
NO_COURSE: Final = "(platform)"
"""The course of an event outside a course: logins, and the site front page (course 1)."""
_SITE_COURSES: Final = frozenset({0, 1})
_CONTEXT_MODULE: Final = 70
"""Moodle's CONTEXT_MODULE: ``contextinstanceid`` is then the course module id."""
_RESTORE_SENTINELS: Final = frozenset({-31337, -31338})
"""``objectid`` of a log row copied by a course restore whose object could not be mapped
(``\\core\\event\\base::NOT_MAPPED`` and ``NOT_FOUND``)."""
_COLUMN_SET: Final = frozenset(COLUMNS)

_NULL_TEXT: Final = frozenset({"", "null", "\\n", "none"})
"""How exports spell SQL NULL: empty, ``NULL`` (Workbench, phpMyAdmin), ``\\N`` (mysqldump)."""
_WHOLE: Final = re.compile(r"[+-]?\d{1,18}(?:\.0*)?")
_LIMIT: Final = 10**18
_EVENTNAME: Final = re.compile(r"\\?([A-Za-z][A-Za-z0-9_]{0,99})\\event\\([A-Za-z0-9_]{1,150})")
_BACKSLASHES: Final = re.compile(r"\\{2,}")
_TABLE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,49}")
_PATH_PART: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(?:\[\d{1,6}\])*")


@dataclass(frozen=True, slots=True)
class _Row:
    """The columns the adapter decides with, parsed and checked."""

    id: int | None
    component: str
    classname: str
    edulevel: int
    userid: int
    occurred_at: str
    courseid: int | None
    relateduserid: int | None
    realuserid: int | None
    anonymous: bool
    objecttable: str | None
    objectid: int | None
    contextlevel: int | None
    contextinstanceid: int | None
    origin: str | None


def adapt(payload: Any, ctx: AdaptContext) -> list[Unit]:
    """One outcome per log row: a lone object is one unit, an array one unit per item."""
    items = payload if isinstance(payload, list) else [payload]
    return [_safe_unit(index, item, ctx) for index, item in enumerate(items)]


def _safe_unit(index: int, item: Any, ctx: AdaptContext) -> Unit:
    return guarded(index, lambda: _unit(index, item, ctx), "a logstore_standard_log row")


def _unit(index: int, item: Any, ctx: AdaptContext) -> Unit:
    """The outcome of one row, checks in the order docs/formats/moodle.md gives."""
    if not isinstance(item, dict):
        return Unit.refused(index, Reason.NOT_AN_OBJECT, "a log row must be a JSON object")
    if MALFORMED in item:
        return Unit.refused(index, Reason.INVALID_VALUE, malformed_detail(item))
    row = _parse(item)
    if row.component in SURVEY_COMPONENTS:
        detail = (
            f"component '{row.component}' is a survey, questionnaire or poll: participation "
            "is not counted and answers are never kept"
        )
        return Unit.ignored(index, Ignored.SURVEY, detail)
    if is_assessment(row.component, row.classname):
        detail = f"event '{row.classname}' reports a grade, an assessment or a result"
        return Unit.refused(index, Reason.ASSESSMENT_DATA, detail)
    if row.classname in TEACHER_EDITS:
        detail = f"event '{row.classname}' is a teacher editing a quiz, whatever its edulevel"
        return Unit.ignored(index, Ignored.STAFF_ACTION, detail)
    _refuse_forbidden(item)
    ignored = _ignored(row)
    if ignored is not None:
        return Unit.ignored(index, ignored[0], ignored[1])
    return Unit.accepted(index, "vle", _event(item, row, ctx), _actor(row))


# -- columns --------------------------------------------------------------------------------


def _parse(item: dict[str, Any]) -> _Row:
    """The row's columns, or :class:`Stop` naming the first one that is wrong."""
    eventname = _text(item, "eventname")
    if eventname is None:
        raise Stop(Reason.MISSING_FIELD, "required column 'eventname' is missing or empty")
    # Exports that escape backslashes (mysqldump, some CSV tools) double them.
    match = _EVENTNAME.fullmatch(_BACKSLASHES.sub("\\\\", eventname))
    if match is None:
        detail = "column 'eventname' is not a Moodle event class name (\\component\\event\\name)"
        raise Stop(Reason.INVALID_VALUE, detail)
    edulevel = _int(item, "edulevel", required=True)
    if edulevel not in (0, 1, 2):
        raise Stop(Reason.INVALID_VALUE, "column 'edulevel' must be 0, 1 or 2")
    userid = _int(item, "userid", required=True)
    timecreated = _int(item, "timecreated", required=True)
    occurred_at = epoch_time(timecreated) if timecreated is not None and timecreated > 0 else None
    if occurred_at is None:
        detail = "column 'timecreated' must be a positive number of seconds since 1970"
        raise Stop(Reason.INVALID_VALUE, detail)
    objecttable = _text(item, "objecttable")
    if objecttable is not None and not _TABLE.fullmatch(objecttable):
        raise Stop(Reason.INVALID_VALUE, "column 'objecttable' is not a table name")
    origin = _text(item, "origin")
    assert userid is not None  # noqa: S101 - required=True refuses a missing userid
    return _Row(
        id=_int(item, "id"),
        component=match.group(1).lower(),
        classname=match.group(2).lower(),
        edulevel=edulevel,
        userid=userid,
        occurred_at=occurred_at,
        courseid=_int(item, "courseid"),
        relateduserid=_int(item, "relateduserid"),
        realuserid=_int(item, "realuserid"),
        anonymous=bool(_int(item, "anonymous")),
        objecttable=objecttable,
        objectid=_int(item, "objectid"),
        contextlevel=_int(item, "contextlevel"),
        contextinstanceid=_int(item, "contextinstanceid"),
        origin=origin.lower() if origin is not None else None,
    )


def _int(item: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    """A whole-number column: a JSON number or its text (CSV), None when NULL or absent."""
    value = item.get(name)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _NULL_TEXT:
            value = None
        elif _WHOLE.fullmatch(text):
            value = int(text.split(".", 1)[0])
        else:
            raise Stop(Reason.WRONG_TYPE, f"column '{name}' must be a whole number")
    elif isinstance(value, float) and value.is_integer() and abs(value) < _LIMIT:
        value = int(value)
    if value is None:
        if required:
            raise Stop(Reason.MISSING_FIELD, f"required column '{name}' is missing or empty")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Stop(Reason.WRONG_TYPE, f"column '{name}' must be a whole number")
    if abs(value) >= _LIMIT:
        raise Stop(Reason.INVALID_VALUE, f"column '{name}' is out of range")
    return value


def _text(item: dict[str, Any], name: str) -> str | None:
    """A text column, None when NULL, empty or absent."""
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Stop(Reason.WRONG_TYPE, f"column '{name}' must be text")
    text = value.strip()
    return None if text.lower() in _NULL_TEXT else text


# -- assessment data in the columns or in ``other`` ------------------------------------------


def _refuse_forbidden(item: dict[str, Any]) -> None:
    """Refuse a row that carries a result or special-category data anywhere: an extra column,
    or a key of ``other`` (JSON, PHP-serialised, or decoded by the sender)."""
    extra = {key: value for key, value in item.items() if key not in _COLUMN_SET}
    found = find_forbidden(extra) if extra else None
    other = item.get("other")
    if found is None and isinstance(other, str):
        found = forbidden_in_other(other)
    elif found is None and isinstance(other, dict | list):
        found = find_forbidden(other, "other")
    if found is None:
        return
    reason, where = found
    what = "a grade or a result" if reason is Reason.ASSESSMENT_DATA else "special-category data"
    raise Stop(reason, f"field '{_safe_path(where)}' holds {what}, which is never taken in")


def _safe_path(path: str) -> str:
    """A dotted field path with every part that is not a plain identifier shown as ``*``: a
    key of ``other`` can be data (a name, an id), and a sentence never shows data."""
    return ".".join(part if _PATH_PART.fullmatch(part) else "*" for part in path.split("."))


# -- whose action it is ---------------------------------------------------------------------


def _ignored(row: _Row) -> tuple[Ignored, str] | None:
    """Why a row is not the student's own engagement, or None when it is."""
    for check in (_system, _impersonation, _staff, _not_engagement):
        found = check(row)
        if found is not None:
            return found
    return None


def _system(row: _Row) -> tuple[Ignored, str] | None:
    if row.userid <= 0:
        detail = "column 'userid' is Moodle's not-logged-in (0) or system (-1) user"
        return Ignored.SYSTEM_ACTION, detail
    if row.origin in SYSTEM_ORIGINS:
        detail = "column 'origin' says a script, a scheduled task or a course restore wrote it"
        return Ignored.SYSTEM_ACTION, detail
    if row.objectid in _RESTORE_SENTINELS:
        detail = "column 'objectid' marks a row copied from a course backup, not a new action"
        return Ignored.SYSTEM_ACTION, detail
    return None


def _impersonation(row: _Row) -> tuple[Ignored, str] | None:
    if row.realuserid is not None and row.realuserid > 0:
        detail = "column 'realuserid' is set: someone else was logged in as the user"
        return Ignored.IMPERSONATION, detail
    if row.classname in IMPERSONATION_CLASSES:
        return Ignored.IMPERSONATION, "event 'user_loggedinas' starts \"log in as\" a user"
    return None


def _staff(row: _Row) -> tuple[Ignored, str] | None:
    if row.edulevel == 1:
        detail = f"edulevel 1 (teaching): event '{row.classname}' is a teacher's action"
        return Ignored.STAFF_ACTION, detail
    acting_on_other = row.relateduserid is not None and row.relateduserid != row.userid
    if acting_on_other and row.classname in STAFF_ON_STUDENT:
        detail = f"event '{row.classname}' is one user (userid) acting on another (relateduserid)"
        return Ignored.STAFF_ACTION, detail
    return None


def _not_engagement(row: _Row) -> tuple[Ignored, str] | None:
    if row.anonymous:
        detail = "column 'anonymous' is set: Moodle promises not to attribute the event"
        return Ignored.NOT_ENGAGEMENT, detail
    if row.classname in DERIVED_CLASSES:
        detail = f"event '{row.classname}' is a completion record derived from another action"
        return Ignored.NOT_ENGAGEMENT, detail
    if is_result_view(row.component, row.classname):
        detail = f"event '{row.classname}' is a look at grades or assessment feedback"
        return Ignored.NOT_ENGAGEMENT, detail
    if row.edulevel == 0 and row.classname not in PLATFORM_CLASSES:
        detail = f"edulevel 0 (other): event '{row.classname}' is not learning activity"
        return Ignored.NOT_ENGAGEMENT, detail
    return None


# -- the product event ----------------------------------------------------------------------


def _event(item: dict[str, Any], row: _Row, ctx: AdaptContext) -> dict[str, Any]:
    platform = (ctx.platform or PLATFORM)[:128]
    return {
        "schema_version": SCHEMA_VERSION,
        "source": "vle",
        "event_id": _event_id(item, row),
        "occurred_at": row.occurred_at,
        "platform": platform,
        "course": _course(row),
        "action": f"{row.component}:{row.classname}"[:128],
        "resource": _resource(row),
    }


def _event_id(item: dict[str, Any], row: _Row) -> str:
    """``moodle-log-<id>``; without an id, a hash of the row's columns (numbers and their text
    hash alike, so a JSON row and its CSV line are one event)."""
    if row.id is not None and row.id > 0:
        return f"moodle-log-{row.id}"
    canonical = {name: _canonical(item.get(name)) for name in COLUMNS if name != "id"}
    return content_id(PLATFORM, canonical)


def _canonical(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, int) or value.is_integer() else str(value)
    if isinstance(value, str):
        text = value.strip()
        return None if text.lower() in _NULL_TEXT else text
    return value


def _course(row: _Row) -> str:
    if row.courseid is None or row.courseid in _SITE_COURSES or row.courseid < 0:
        return NO_COURSE
    return f"moodle-course-{row.courseid}"


def _resource(row: _Row) -> str:
    """What was acted on: the logged record, else the course module; never a user."""
    if row.classname in PLATFORM_CLASSES:
        return ""
    if row.objecttable is not None and row.objectid is not None and row.objecttable != "user":
        return f"{row.component}/{row.objecttable}/{row.objectid}"
    if row.contextlevel == _CONTEXT_MODULE and row.contextinstanceid:
        return f"{row.component}/course_modules/{row.contextinstanceid}"
    return ""


def _actor(row: _Row) -> Actor:
    return Actor(keys=(f"moodle:{row.userid}",), as_is=str(row.userid))
