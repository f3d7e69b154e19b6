"""Reading one xAPI statement: its verb, object, context, actor, time and id (docs/formats/xapi.md).

Plain dict access with type checks, no model of the whole statement: the ingest service must
take 5,000 statements a second. Every helper either returns what it read or raises
:class:`Stop`, which carries the unit's outcome (a refusal naming the field, or an ignore);
sentences name fields, never values.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from agents.adapters.units import Actor, Ignored, Stop, content_id, utc_time
from schemas.common import Reason


def refuse(reason: Reason, detail: str) -> Stop:
    return Stop(reason, detail)


@lru_cache(maxsize=8192)
def bare(iri: str) -> str:
    """An IRI without its scheme, lower-cased: how the adapter compares IRIs, so that the
    ``http``/``https`` spellings of one Jisc term are one term."""
    text = iri.strip().lower()
    cut = text.find("://")
    return text[cut + 3 :] if cut >= 0 else text


@lru_cache(maxsize=8192)
def segment(iri: str) -> str:
    """The last path segment of an IRI, lower-cased (``…/verbs/loggedin`` → ``loggedin``)."""
    text = iri.strip().rstrip("/#")
    return text[max(text.rfind("/"), text.rfind("#")) + 1 :].lower()


def extensions(value: Any, where: str) -> dict[str, Any]:
    """An extensions object with its keys made comparable: Moodle's ``&46;`` decoded to ``.``,
    the scheme dropped and lower-cased (see :func:`bare`)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise refuse(Reason.WRONG_TYPE, f"{where} must be an object")
    return {_key(key): item for key, item in value.items()}


@lru_cache(maxsize=8192)
def _key(key: Any) -> str:
    return bare(str(key).replace("&46;", "."))


def jisc(ext: dict[str, Any], name: str) -> Any:
    """A Jisc extension by name, under either of the prefixes the recipes use."""
    found = ext.get("xapi.jisc.ac.uk/" + name)
    return ext.get("xapi.jisc.ac.uk/extensions/" + name) if found is None else found


def text_of(value: Any, limit: int = 128) -> str | None:
    """A non-empty string (or integer) of at most ``limit`` characters, stripped; else None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= limit else None


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise refuse(Reason.WRONG_TYPE, f"{where} must be an object")
    return value


@dataclass(frozen=True, slots=True)
class Statement:
    """The parts of a statement the adapter reads, each checked for its type once."""

    raw: dict[str, Any]
    verb: str
    """The verb id without its scheme (:func:`bare`)."""
    object_kind: str
    object_id: str
    definition_type: str
    object_ext: dict[str, Any]
    context: dict[str, Any]
    context_ext: dict[str, Any]
    result: dict[str, Any] | None

    @property
    def action(self) -> str:
        return segment(self.verb)

    @property
    def category(self) -> str:
        """The Jisc recipe category (``recipeCat`` or ``statementCat``), lower-cased."""
        value = jisc(self.context_ext, "recipecat") or jisc(self.context_ext, "statementcat")
        return value.strip().lower() if isinstance(value, str) else ""

    def context_activities(
        self, keys: tuple[str, ...] = ("parent", "grouping", "other", "category")
    ) -> list[dict[str, Any]]:
        """The context activities of ``keys``, parents first (a single object is taken as a
        list of one, as an LRS does)."""
        groups = _object(self.context.get("contextActivities"), "context.contextActivities")
        found: list[dict[str, Any]] = []
        for key in keys:
            items = groups.get(key)
            if isinstance(items, dict):
                items = [items]
            if isinstance(items, list):
                found.extend(item for item in items if isinstance(item, dict))
        return found


_OBJECT_KINDS = {
    name.lower(): name for name in ("Activity", "Agent", "Group", "SubStatement", "StatementRef")
}


def _object_of(raw: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """The object, its kind (``objectType``, any case; Activity when absent) and its id."""
    obj = raw.get("object")
    if obj is None:
        raise refuse(Reason.MISSING_FIELD, "required field 'object' is missing")
    if not isinstance(obj, dict):
        raise refuse(Reason.WRONG_TYPE, "object must be an object")
    given = obj.get("objectType", "Activity")
    if not isinstance(given, str):
        raise refuse(Reason.WRONG_TYPE, "object.objectType must be a string")
    kind = _OBJECT_KINDS.get(given.strip().lower())
    if kind is None:
        raise refuse(
            Reason.INVALID_VALUE,
            "object.objectType must be Activity, Agent, Group, SubStatement or StatementRef",
        )
    object_id = obj.get("id")
    if kind in ("Activity", "StatementRef"):
        if object_id is None:
            raise refuse(Reason.MISSING_FIELD, "required field 'object.id' is missing")
        if not isinstance(object_id, str) or not object_id.strip():
            raise refuse(Reason.WRONG_TYPE, "object.id must be a non-empty string")
    return obj, kind, object_id.strip() if isinstance(object_id, str) else ""


def parse(raw: dict[str, Any]) -> Statement:
    """The statement's verb, object and context, or a refusal naming the field that is wrong."""
    verb = raw.get("verb")
    if verb is None:
        raise refuse(Reason.MISSING_FIELD, "required field 'verb' is missing")
    if not isinstance(verb, dict):
        raise refuse(Reason.WRONG_TYPE, "verb must be an object")
    verb_id = verb.get("id")
    if verb_id is None:
        raise refuse(Reason.MISSING_FIELD, "required field 'verb.id' is missing")
    if not isinstance(verb_id, str) or not verb_id.strip():
        raise refuse(Reason.WRONG_TYPE, "verb.id must be an IRI string")
    obj, kind, object_id = _object_of(raw)
    definition = _object(obj.get("definition"), "object.definition")
    definition_type = definition.get("type")
    context = _object(raw.get("context"), "context")
    result = raw.get("result")
    if result is not None and not isinstance(result, dict):
        raise refuse(Reason.WRONG_TYPE, "result must be an object")
    return Statement(
        raw=raw,
        verb=bare(verb_id),
        object_kind=kind,
        object_id=object_id,
        definition_type=bare(definition_type) if isinstance(definition_type, str) else "",
        object_ext=extensions(definition.get("extensions"), "object.definition.extensions"),
        context=context,
        context_ext=extensions(context.get("extensions"), "context.extensions"),
        result=result,
    )


# -- the actor --------------------------------------------------------------------------------

_IFIS = ("account", "openid", "mbox_sha1sum", "mbox")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")


def _text_field(value: Any, where: str, number: bool = False) -> str:
    """A non-empty string; with ``number``, an integer is taken as its digits (some senders
    write a numeric account name as a JSON number)."""
    if value is None:
        raise refuse(Reason.MISSING_FIELD, f"required field '{where}' is missing")
    if number and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise refuse(Reason.WRONG_TYPE, f"{where} must be a non-empty string")
    return value.strip()


def _account(value: Any) -> Actor:
    if not isinstance(value, dict):
        raise refuse(Reason.WRONG_TYPE, "actor.account must be an object")
    home = _text_field(value.get("homePage"), "actor.account.homePage")
    name = _text_field(value.get("name"), "actor.account.name", number=True)
    keys = [f"{home}|{name}"]
    if home.endswith("/") and home.rstrip("/"):
        keys.append(f"{home.rstrip('/')}|{name}")
    return Actor(keys=tuple(keys), as_is=name)


def actor_of(raw: dict[str, Any]) -> Actor:
    """The actor's identity-map keys and as-is id. Names are never read; an e-mail address
    is a key for the identity map only, never an as-is student id."""
    value = raw.get("actor")
    if value is None:
        raise refuse(Reason.MISSING_FIELD, "required field 'actor' is missing")
    if not isinstance(value, dict):
        raise refuse(Reason.WRONG_TYPE, "actor must be an object")
    kind = value.get("objectType", "Agent")
    kind = kind.strip().lower() if isinstance(kind, str) else kind
    if kind == "group":
        raise Stop(Ignored.UNKNOWN_ACTOR, "the actor is a Group, not one student")
    if kind != "agent":
        raise refuse(Reason.INVALID_VALUE, "actor.objectType must be 'Agent' or 'Group'")
    present = [name for name in _IFIS if value.get(name) is not None]
    if not present:
        raise refuse(
            Reason.MISSING_FIELD,
            "the actor has no identifier: one of actor.account, actor.openid, "
            "actor.mbox_sha1sum or actor.mbox is required",
        )
    if len(present) > 1:
        fields = ", ".join(f"actor.{name}" for name in present)
        raise refuse(Reason.INVALID_VALUE, f"the actor has more than one identifier ({fields})")
    ifi = present[0]
    if ifi == "account":
        return _account(value["account"])
    text = _text_field(value[ifi], f"actor.{ifi}")
    if ifi == "openid":
        return Actor(keys=(text,), as_is=text)
    if ifi == "mbox_sha1sum":
        if not _SHA1.match(text):
            raise refuse(Reason.INVALID_VALUE, "actor.mbox_sha1sum must be 40 hexadecimal digits")
        return Actor(keys=(f"sha1:{text.lower()}",), as_is=None)
    if not text.lower().startswith("mailto:"):
        raise refuse(Reason.INVALID_VALUE, "actor.mbox must be a mailto: IRI")
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    return Actor(keys=(text, f"sha1:{digest}"), as_is=None)


def agent_key(value: Any) -> tuple[str, str] | None:
    """An Agent's identifier as a comparable pair (``account`` → home page and name), or None
    when ``value`` is not an Agent with one; never raises."""
    if not isinstance(value, dict):
        return None
    account = value.get("account")
    if isinstance(account, dict):
        home, name = account.get("homePage"), account.get("name")
        if isinstance(home, str) and isinstance(name, str | int):
            return "account", f"{home.strip().rstrip('/').lower()}|{str(name).strip()}"
    for ifi in _IFIS[1:]:
        if isinstance(value.get(ifi), str):
            return ifi, value[ifi].strip().lower()
    return None


def someone_else(value: Any, raw: dict[str, Any]) -> bool:
    """Whether ``value`` names a person (an Agent or Group object) other than the actor."""
    if not isinstance(value, dict):
        return False
    return agent_key(value) != agent_key(raw.get("actor")) or agent_key(value) is None


# -- time and id ------------------------------------------------------------------------------

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_BASIC = re.compile(
    r"^(\d{4})(\d{2})(\d{2})[Tt](\d{2})(\d{2})(\d{2})?([.,]\d+)?([Zz]|[+-]\d{2}(?:\d{2})?)$"
)
_LONG_FRACTION = re.compile(r"([.,]\d{9})\d+")


def _extended(value: str) -> str:
    """An ISO 8601 *basic* time (``20250114T101500Z``, which xAPI allows) in the extended
    form the parser reads, with at most nine fractional digits; other text as it is."""
    if len(value) > 64:  # no timestamp is that long: refused by the parser as it is
        return value
    found = _BASIC.match(value.strip())
    if found is not None:
        year, month, day, hour, minute, second, fraction, offset = found.groups()
        value = f"{year}-{month}-{day}T{hour}:{minute}:{second or '00'}{fraction or ''}{offset}"
    # ISO 8601 sets no limit on fractional digits; nanoseconds are more than enough.
    return _LONG_FRACTION.sub(r"\1", value)


def time_field(value: Any, where: str) -> str:
    """An ISO 8601 time with an offset as UTC text, or a refusal naming ``where``."""
    if not isinstance(value, str):
        raise refuse(Reason.WRONG_TYPE, f"{where} must be an ISO 8601 timestamp string")
    when = utc_time(_extended(value))
    if when is None:
        raise refuse(
            Reason.INVALID_VALUE, f"{where} is not an ISO 8601 timestamp with a UTC offset"
        )
    return when


def occurred_at(raw: dict[str, Any], received_at: datetime) -> str:
    """``timestamp``, else ``stored``, else the receipt time (as an LRS sets ``timestamp``)."""
    for name in ("timestamp", "stored"):
        value = raw.get(name)
        if value is not None:
            return time_field(value, name)
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    return received_at.astimezone(UTC).isoformat()


def event_id(raw: dict[str, Any]) -> str:
    """The statement's own UUID (lower-cased), else a hash of the statement's content."""
    value = raw.get("id")
    if value is None:
        return content_id("xapi", raw)
    if not isinstance(value, str):
        raise refuse(Reason.WRONG_TYPE, "id must be a UUID string")
    if not _UUID.match(value.strip()):
        raise refuse(Reason.INVALID_VALUE, "id is not a UUID")
    return value.strip().lower()


# -- IRIs as product fields -------------------------------------------------------------------

_KEEP_PARAMS = frozenset(
    {"id", "course_id", "courseid", "content_id", "contentid", "cmid", "d", "v"}
)
_PERSONAL_PATHS = ("/user/", "user.php", "/message/", "/profile")


def clean_iri(iri: str, actor: Actor | None = None) -> str:
    """An activity IRI fit to keep: no fragment, and of the query only the parameters that name
    the resource (``id``, ``course_id``, ``content_id``, …), none on people's pages. Empty when
    the IRI names the actor (an account name as one of its parts)."""
    base = iri.strip().partition("#")[0]
    path, sep, query = base.partition("?")
    if sep and not any(part in path.lower() for part in _PERSONAL_PATHS):
        kept = [p for p in query.split("&") if p.partition("=")[0].lower() in _KEEP_PARAMS]
        if kept:
            path = f"{path}?{'&'.join(kept)}"
    if actor is not None and actor.as_is and len(actor.as_is) >= 3:
        parts = set(re.split(r"[/?&=]", path))
        if actor.as_is in parts:
            return ""
    return path


def fit(value: str, limit: int, prefix: str) -> str:
    """``value`` when it fits ``limit`` characters, else a stable hash of it."""
    return value if len(value) <= limit else content_id(prefix, value)


def host(iri: Any) -> str | None:
    """The host of an IRI, lower-cased, without port or user."""
    if not isinstance(iri, str) or "://" not in iri:
        return None
    rest = iri.split("://", 1)[1]
    name = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2].split(":")[0].lower()
    return name or None
