"""Statements from Moodle's logstore_xapi plug-in, judged by the Moodle event they were made from.

The plug-in (GitHub ``xAPI-vle/moodle-logstore_xapi``, every version since 2016) writes the
Moodle event's class into each statement, in the context extension
``http://lrs.learninglocker.net/define/extensions/info`` as ``event_name``
(``\\mod_quiz\\event\\attempt_submitted``). The xAPI form of an event loses what the Moodle
log adapter decides with (the educational level, ``relateduserid``), but the class is enough
for the rules that depend on it alone, which are the Moodle log adapter's own
(:mod:`agents.adapters.moodle_rules`), so that one Moodle sending its log or its statements
gets the same outcomes (docs/formats/xapi.md, "Statements from Moodle"):

- an assessment event (a submitted or reviewed quiz attempt, a SCORM status, a grade) is
  refused ``assessment_data``, even when the statement itself carries no score;
- "log in as" is ignored as impersonation; a survey, questionnaire or poll component
  (``mod_choice`` too) as a survey;
- enrolments, group and cohort memberships, notes, badges and account changes are ignored:
  as a staff action when the statement says someone else did it (see
  :func:`agents.adapters.xapi_kinds.check_ignored`), otherwise as not engagement;
- completion records (derived from another action that is sent too) and looks at grades or
  assessment feedback are ignored as not engagement.

The first versions (2015-2018, the Jisc learning-data hub's first Moodle feeds) wrote the
whole log row as well, in ``…/define/extensions/moodle_logstore_standard_log`` (with the
event as ``eventname``): with it, the Moodle log adapter's row rules apply too (the system or
a script acting, ``realuserid``, ``edulevel``, ``relateduserid``, ``anonymous``, a grade in
``other``).
"""

from __future__ import annotations

import re
from typing import Any, Final

from agents.adapters.moodle_rules import (
    DERIVED_CLASSES,
    IMPERSONATION_CLASSES,
    PLATFORM_CLASSES,
    STAFF_ON_STUDENT,
    SURVEY_COMPONENTS,
    SYSTEM_ORIGINS,
    forbidden_in_other,
    is_assessment,
    is_result_view,
)
from agents.adapters.units import Ignored, Stop
from agents.adapters.xapi_parts import Statement, refuse
from schemas.common import Reason

INFO: Final = "lrs.learninglocker.net/define/extensions/info"
"""The plug-in's context extension (keys are compared without scheme, lower-cased)."""
LOG_ROW: Final = "lrs.learninglocker.net/define/extensions/moodle_logstore_standard_log"
"""The log row the first versions of the plug-in wrote."""
_EVENTNAME: Final = re.compile(r"\\?([A-Za-z][A-Za-z0-9_]{0,99})\\event\\([A-Za-z0-9_]{1,150})")
_BACKSLASHES: Final = re.compile(r"\\{2,}")
_WHERE: Final = "the Moodle event (context extension info, event_name)"
_ROW: Final = "the Moodle log row (context extension moodle_logstore_standard_log)"


def _log_row(st: Statement) -> dict[str, Any] | None:
    row = st.context_ext.get(LOG_ROW)
    return row if isinstance(row, dict) else None


def moodle_event(st: Statement) -> tuple[str, str] | None:
    """(component, class) of the Moodle event a logstore_xapi statement was made from, both
    lower-cased; None for any other statement or an event name that is not a class."""
    info = st.context_ext.get(INFO)
    name = info.get("event_name") if isinstance(info, dict) else None
    row = _log_row(st)
    if name is None and row is not None:
        name = row.get("eventname")
    if not isinstance(name, str) or len(name) > 300:
        return None
    found = _EVENTNAME.fullmatch(_BACKSLASHES.sub("\\\\", name.strip()))
    return (found.group(1).lower(), found.group(2).lower()) if found else None


def _number(value: Any) -> int | None:
    """A log column as a number (the plug-in wrote some as text), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return value if isinstance(value, int) else None


def check_moodle_assessment(st: Statement) -> None:
    """Refuse a statement made from a Moodle assessment or result event, or whose log row
    holds a grade or special-category data in ``other``."""
    found = moodle_event(st)
    # A survey's "attempt_submitted" is a survey's, as the Moodle log adapter reads it.
    if found is not None and found[0] not in SURVEY_COMPONENTS and is_assessment(*found):
        raise refuse(Reason.ASSESSMENT_DATA, f"{_WHERE} reports an assessment or a result")
    row = _log_row(st)
    other = row.get("other") if row is not None else None
    forbidden = forbidden_in_other(other) if isinstance(other, str) else None
    if forbidden is not None:
        what = "a result" if forbidden[0] is Reason.ASSESSMENT_DATA else "special-category data"
        raise refuse(forbidden[0], f"{_ROW}, column 'other', holds {what}")


def _row_ignored(row: dict[str, Any], classname: str) -> tuple[Ignored, str] | None:
    """The Moodle log adapter's row rules (agents/adapters/moodle.py), on a log row."""
    userid, level = _number(row.get("userid")), _number(row.get("edulevel"))
    related = _number(row.get("relateduserid"))
    if (userid is not None and userid <= 0) or row.get("origin") in SYSTEM_ORIGINS:
        return Ignored.SYSTEM_ACTION, f"{_ROW} says the system or a script acted"
    if (_number(row.get("realuserid")) or 0) > 0:
        return Ignored.IMPERSONATION, f"{_ROW} has a realuserid: someone was logged in as"
    acting_on_other = related is not None and userid is not None and related != userid
    if level == 1 or (acting_on_other and classname in STAFF_ON_STUDENT):
        return Ignored.STAFF_ACTION, f"{_ROW} says a teacher acted (edulevel, relateduserid)"
    if _number(row.get("anonymous")) or (level == 0 and classname not in PLATFORM_CLASSES):
        return Ignored.NOT_ENGAGEMENT, f"{_ROW} says the event is not learning activity"
    return None


def check_moodle_ignored(st: Statement) -> None:
    """Ignore a statement made from a Moodle event that is not the student's own learning."""
    found = moodle_event(st)
    if found is None:
        return
    component, classname = found
    row = _log_row(st)
    by_row = _row_ignored(row, classname) if row is not None else None
    if by_row is not None:
        raise Stop(*by_row)
    if classname in IMPERSONATION_CLASSES:
        raise Stop(Ignored.IMPERSONATION, f'{_WHERE} starts "log in as" another user')
    if component in SURVEY_COMPONENTS:
        detail = f"{_WHERE} is a survey, questionnaire or poll: answers are not kept"
        raise Stop(Ignored.SURVEY, detail)
    if classname in STAFF_ON_STUDENT:
        detail = f"{_WHERE} changes an enrolment, a membership, a note or an account"
        raise Stop(Ignored.NOT_ENGAGEMENT, detail)
    if classname in DERIVED_CLASSES:
        detail = f"{_WHERE} is a completion record derived from another action"
        raise Stop(Ignored.NOT_ENGAGEMENT, detail)
    if is_result_view(component, classname):
        detail = f"{_WHERE} is a look at grades or assessment feedback"
        raise Stop(Ignored.NOT_ENGAGEMENT, detail)


__all__ = ["INFO", "LOG_ROW", "check_moodle_assessment", "check_moodle_ignored", "moodle_event"]
