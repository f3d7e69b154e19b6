"""What a dead letter may show of a refused input: allow-listed fields, never an identity.

Dead letters are read by feed owners and ops staff, who need to see what was wrong, not who it
was about. So an excerpt shows, per event schema, only the fields on that schema's allow-list
(``EXCERPT_FIELDS``), and of those only values that do not look like an identifier. The
schema's other fields (the student id, a VLE resource path that can name a user) show as
``"[redacted]"``; fields the schema does not know are left out and only counted, because
their names can be identifiers too. Text that is not JSON (broken JSON, a Python repr, a CSV
line on a JSON topic) is read for ``key: value`` / ``key=value`` pairs and the same rules
apply. An event id is kept only when it is opaque; otherwise (it holds the student's id, an
e-mail address, a long number …) it is replaced by ``h_`` and a keyed hash, the same for the
same id, so that letters about one event can still be matched.

"Looks like an identifier" means: equal to or containing a value found under an identifying
key of the same input (``IDENTIFYING_KEYS``: student id, student number, UPN, SIS id, e-mail,
actor, IP address …), or shaped like one (five or more digits in a row, an ``@``, an IRI,
an IPv4 or IPv6 address).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from agents.rawjson import MAX_DEPTH
from schemas.common import normalise_name
from schemas.feeds import AttendanceMark, CardSwipe, LibraryActivity, RawEvent, VleActivity

REDACTED: Final = "[redacted]"
LEFT_OUT: Final = "[left out]"
EXCERPT_CHARS: Final = 512
_SCAN_CHARS = 65_536  # how much of a text is read for pairs
_VALUE_CHARS = 64  # longest value an excerpt shows

_COMMON = frozenset({"schema_version", "source", "event_id", "occurred_at"})
EXCERPT_FIELDS: Final[Mapping[type[RawEvent], frozenset[str]]] = {
    CardSwipe: _COMMON | {"reader_id", "building", "direction"},
    AttendanceMark: _COMMON
    | {"session_id", "module", "expected_start", "expected_end", "status", "capture_method"},
    # Not "resource": a VLE path can carry a user's name or number (/user/view.php?id=...).
    VleActivity: _COMMON | {"platform", "course", "action"},
    LibraryActivity: _COMMON | {"activity", "service", "item_type"},
}
"""Per event schema, the fields a dead-letter excerpt shows. Never the student id."""
ENVELOPE_FIELDS: Final = frozenset({"schema_version", "source", "sent_at", "events"})
_TIME_FIELDS = frozenset({"occurred_at", "expected_start", "expected_end", "sent_at"})

# Keys (compared as normalise_name gives them) whose values identify a person or a device.
IDENTIFYING_KEYS: Final = frozenset(
    {
        "studentid", "studentnumber", "studentno", "studentref", "student", "upn",
        "userprincipalname", "sid", "sisid", "sisuserid", "sisloginid", "sisstudentid",
        "integrationid", "lispersonsourcedid", "personsourcedid", "personid", "userid",
        "username", "user", "login", "loginid", "loginname", "account", "accountname",
        "accountid", "actor", "agent", "mbox", "mboxsha1sum", "openid", "homepage", "email",
        "emailaddress", "mail", "name", "fullname", "displayname", "firstname", "lastname",
        "givenname", "familyname", "surname", "forename", "preferredname", "ip", "ipaddress",
        "ipaddr", "clientip", "remoteip", "remoteaddr", "remoteaddress", "sourceip",
        "xforwardedfor", "macaddress", "cardnumber", "cardid", "cardserial", "candidatenumber",
        "ucasid", "ucaspersonalid", "husid", "hesaid", "uln", "ninumber", "nino", "phone",
        "mobile", "telephone", "postcode", "address", "dateofbirth", "dob",
    }
)  # fmt: skip

_SHAPES = re.compile(
    r"\d{5,}|@|\b[a-z][a-z0-9+.-]*://|\bmailto:|\b\d{1,3}(?:\.\d{1,3}){3}\b"
    r"|\b(?:[0-9a-f]{1,4}:){3,}[0-9a-f]{0,4}|::",
    re.IGNORECASE,
)
# E-mail addresses, IRIs and IP addresses: removed from every sentence a dead letter carries.
_CONTACTS = re.compile(
    r"[^\s@'\"<>(),;]+@[^\s@'\"<>(),;]+|\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+|\bmailto:[^\s'\"<>]+"
    r"|\b\d{1,3}(?:\.\d{1,3}){3}\b",
    re.IGNORECASE,
)
_ISO_TIME = re.compile(
    r"[+-]?\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_OPAQUE = re.compile(r"[!-~]{1,128}")  # printable ASCII without spaces
_UUID = re.compile(
    r"(?:urn:uuid:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)
_PAIR = re.compile(
    r"""(?<![\w.:-])(["']?)([A-Za-z_$@][\w$@.-]{0,63})\1\s*[:=]\s*"""
    r"""("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[^\s,;{}\[\]()]+)"""
)
_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9 _-]{0,63}")
_PARTS = re.compile(r"[/@:?=#&\s]+")
# The keys the legacy text redaction knows; kept as a last pass over every excerpt.
_IDENTIFYING_TEXT = re.compile(
    r"""((?<![\w-])(["']?)(?:student_?id|studentid|student_?(?:number|no)|user_?name|user_?id"""
    r"""|upn|sid|sis_?\w*|e-?mail(?:_?address)?|name|actor|mbox\w*|account|login\w*"""
    r"""|ip(?:_?address)?)\2\s*[:=]\s*)"""
    r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|-?[0-9][0-9.eE+-]*|true|false|null"""
    r"""|[^\s,;}\])"']+)""",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Last pass over a text excerpt: identifying keys' values, e-mails, IRIs, IPs; shortened."""
    text = _IDENTIFYING_TEXT.sub(rf'\1"{REDACTED}"', text)
    return _CONTACTS.sub(REDACTED, text)[:EXCERPT_CHARS]


def clean(text: str) -> str:
    """Text a dead letter can carry: lone surrogates (not Unicode) written as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def excerpt_fields(model: type[RawEvent]) -> frozenset[str]:
    """The allow-list of a schema; a schema without one shows the fields every event has."""
    return EXCERPT_FIELDS.get(model, _COMMON)


def _add(found: set[str], value: object) -> None:
    """Remember an identifying value, and the parts of it that identify on their own."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return
    text = str(value).strip().casefold()
    if not text:
        return
    found.add(text)
    if "@" in text or "://" in text or text.startswith("mailto:"):
        # jbloggs@example.ac.uk, https://sso.example.ac.uk/users/jbloggs: "jbloggs" alone too.
        local = text.removeprefix("mailto:").split("@", 1)[0] if "@" in text else ""
        parts = [p for p in _PARTS.split(text) if p]
        for part in (local, parts[-1] if parts else ""):
            if len(part) >= 4:
                found.add(part)


def identities(payload: Any) -> frozenset[str]:
    """Every value under an identifying key anywhere in a parsed input (case-folded)."""
    found: set[str] = set()
    stack: list[tuple[Any, bool, int]] = [(payload, False, 0)]
    budget = 10_000
    while stack and budget:
        budget -= 1
        value, identifying, depth = stack.pop()
        if depth > MAX_DEPTH:
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                named = identifying or normalise_name(str(key)) in IDENTIFYING_KEYS
                stack.append((item, named, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, identifying, depth + 1) for item in value[:1000])
        elif identifying:
            _add(found, value)
    return frozenset(found)


def text_identities(text: str) -> frozenset[str]:
    """Every value paired with an identifying key in a text that is not JSON."""
    found: set[str] = set()
    for match in _PAIR.finditer(text[:_SCAN_CHARS]):
        if normalise_name(match.group(2)) in IDENTIFYING_KEYS:
            _add(found, _unquote(match.group(3)))
    return frozenset(found)


def looks_identifying(text: str, known: Iterable[str] = ()) -> bool:
    """Whether ``text`` is or holds a known identifier, or is shaped like one."""
    if _SHAPES.search(text):
        return True
    folded = text.casefold()
    return any(k == folded or (len(k) >= 3 and k in folded) for k in known)


def _unquote(token: str) -> object:
    if token[:1] == '"':
        try:
            return json.loads(token)
        except ValueError:
            return token[1:-1]
    if token[:1] == "'":
        return token[1:-1]
    try:
        return json.loads(token)  # numbers, true, false, null
    except ValueError:
        return token


class Redactor:
    """Builds the excerpt, event id and sentence of dead letters for one event schema."""

    def __init__(self, model: type[RawEvent], hasher: Callable[[str], str]) -> None:
        self.allowed = excerpt_fields(model)
        self.schema = frozenset(model.model_fields)
        self._hash = hasher

    def event_id(self, value: object, known: Iterable[str] = ()) -> str | None:
        """The event id as a dead letter may carry it: itself if opaque, else a keyed hash."""
        if not isinstance(value, str):
            return None
        if self.opaque(value, known):
            return value
        digest = self._hash("event_id:" + value.encode("utf-8", "surrogatepass").hex())
        return "h_" + digest[-24:]

    def text_event_id(self, text: str, known: Iterable[str] = ()) -> str | None:
        """The event id found in a text that is not JSON, as a dead letter may carry it."""
        for match in _PAIR.finditer(text[:_SCAN_CHARS]):
            if match.group(2) == "event_id":
                return self.event_id(_unquote(match.group(3)), known)
        return None

    @staticmethod
    def opaque(value: str, known: Iterable[str] = ()) -> bool:
        """An id that says nothing about a person: printable ASCII, no identifier inside."""
        if not _OPAQUE.fullmatch(value):
            return False
        folded = value.casefold()
        if any(k == folded or (len(k) >= 3 and k in folded) for k in known):
            return False
        return bool(_UUID.fullmatch(value)) or not _SHAPES.search(value)

    def excerpt(self, payload: Any, known: Iterable[str] = (), *, envelope: bool = False) -> str:
        """The excerpt of a parsed input: an event (or an envelope's own fields)."""
        known = tuple(known)
        if not isinstance(payload, dict):
            return self._dump(self._describe(payload))
        allowed = ENVELOPE_FIELDS if envelope else self.allowed
        shown: dict[str, object] = {}
        left_out = 0
        for key, value in payload.items():
            if key in allowed:
                shown[key] = self._value(key, value, known)
            elif key in self.schema and not envelope:
                shown[key] = REDACTED
            else:
                left_out += 1
        return self._dump(shown, left_out)

    def excerpt_text(self, text: str, known: Iterable[str] = ()) -> str:
        """The excerpt of a text that is not JSON: its allow-listed ``key: value`` pairs."""
        known = tuple(known)
        shown: dict[str, object] = {}
        left_out = 0
        for match in _PAIR.finditer(text[:_SCAN_CHARS]):
            key = match.group(2)
            if key in self.allowed:
                shown.setdefault(key, self._value(key, _unquote(match.group(3)), known))
            elif key in self.schema:
                shown.setdefault(key, REDACTED)
            else:
                left_out += 1
        return self._dump(shown, left_out)

    def sentence(self, text: str, known: Iterable[str] = ()) -> str:
        """A dead letter's sentence with every known identifier and contact detail removed."""
        for value in sorted(known, key=len, reverse=True):
            if len(value) >= 3:
                text = re.sub(re.escape(value), REDACTED, text, flags=re.IGNORECASE)
        return clean(_CONTACTS.sub(REDACTED, text))

    def key_path(self, keys: Iterable[str | int], known: Iterable[str] = ()) -> str:
        """A path of keys as a sentence may show it: keys that could identify someone hidden.

        A schema field or a plain word (``context``, ``assessment``) is shown; a key that
        is or holds an identifier, or has anything but letters, digits and ``_ -`` in it
        (``joe.bloggs@example.ac.uk``), is ``[key]``.
        """
        known = tuple(known)
        shown = ""
        for key in keys:
            if isinstance(key, int):
                shown += f"[{key}]"
                continue
            plain = key in self.schema or (
                _PLAIN_KEY.fullmatch(key) is not None and not looks_identifying(key, known)
            )
            shown += ("." if shown else "") + (key if plain else "[key]")
        return shown

    def _value(self, key: str, value: object, known: tuple[str, ...]) -> object:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return REDACTED if looks_identifying(str(value), known) else value
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if isinstance(value, str):
            if key == "event_id":
                return self.event_id(value, known)
            text = value.strip()
            if key in _TIME_FIELDS and _ISO_TIME.fullmatch(text):
                folded = text.casefold()
                if not any(k == folded for k in known):
                    return clean(text)
            if looks_identifying(value, known):
                return REDACTED
            short = value[:_VALUE_CHARS] + ("…" if len(value) > _VALUE_CHARS else "")
            return clean(short)
        return self._describe(value)

    @staticmethod
    def _describe(value: object) -> str:
        if isinstance(value, dict):
            return f"[an object of {len(value)} fields]"
        if isinstance(value, list):
            return f"[a list of {len(value)} items]"
        if isinstance(value, str):
            return f"[a string of {len(value)} characters]"
        return f"[{type(value).__name__}]"

    @staticmethod
    def _dump(shown: object, left_out: int = 0) -> str:
        if isinstance(shown, dict) and left_out:
            shown = {**shown, LEFT_OUT: left_out}
        return redact(json.dumps(shown, ensure_ascii=True, default=str))
