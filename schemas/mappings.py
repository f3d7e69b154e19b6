"""Declarative source mappings: a TOML file that turns a vendor's export into product events.

A mapping names what it produces (a feed, or reference records), how its input is read, how
its times are read (vendor exports are often local time without an offset), whose row it is
(the identity column and policy), which product field comes from which column, value maps for
vendor codes, and rules for rows that are not a student's own engagement. The shipped presets
are in ``schemas/presets/``; docs/sources/ describes each, and docs/sources/mappings.md the
format. A file that is not valid stops start-up with the file, line and field to fix.
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.errors import ConfigError
from schemas.reference import LOOKUP_TABLES, REFERENCE_MODELS
from schemas.sources import SOURCES

PRESETS = Path(__file__).resolve().parent / "presets"
IGNORE_REASONS = (
    "unknown_actor", "staff_action", "system_action", "impersonation", "survey",
    "not_engagement",
)  # fmt: skip  # agents.adapters.units.Ignored, less those that need a format's own knowledge


class MappingError(ConfigError):
    """A mapping file that cannot be used; the message names the file, line and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Input(_Strict):
    """How the export is read."""

    format: Literal["csv", "json"] = "csv"
    delimiter: str = Field(default="auto", pattern=r"^(auto|.)$")
    encoding: Literal["auto", "utf-8", "cp1252"] = "auto"
    header_row: int = Field(default=1, ge=1, le=50)


class Times(_Strict):
    """How times without an offset are read, and the two hours a clock change makes odd."""

    zone: str = "UTC"
    formats: tuple[str, ...] = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S")
    date_formats: tuple[str, ...] = ("%Y-%m-%d", "%d/%m/%Y")
    ambiguous: Literal["earlier", "later", "refuse"] = "earlier"
    nonexistent: Literal["refuse", "shift_forward"] = "refuse"

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {value!r} (an IANA name such as Europe/London)"
            raise ValueError(msg) from None
        return value

    @field_validator("date_formats")
    @classmethod
    def _date_formats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            msg = "give at least one date format"
            raise ValueError(msg)
        for fmt in value:
            try:
                date(2026, 10, 25).strftime(fmt)
            except ValueError:
                msg = f"{fmt!r} is not a strptime format"
                raise ValueError(msg) from None
        return value

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            msg = "give at least one time format"
            raise ValueError(msg)
        for fmt in value:
            try:
                datetime(2026, 10, 25, 1, 30, 5, tzinfo=UTC).strftime(fmt)
            except ValueError:
                msg = f"{fmt!r} is not a strptime format"
                raise ValueError(msg) from None
        return value


class Identity(_Strict):
    """Whose row it is."""

    column: str
    policy: Literal["as-is", "map"] = "as-is"
    map_prefix: str = ""


class Condition(_Strict):
    """A test of one cell: exactly one of ``in``, ``not_in``, ``empty``, ``matches``."""

    column: str
    in_: tuple[str, ...] | None = Field(default=None, alias="in")
    not_in: tuple[str, ...] | None = None
    empty: bool | None = None
    matches: str | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        given = [x for x in (self.in_, self.not_in, self.empty, self.matches) if x is not None]
        if len(given) != 1:
            msg = "a condition takes exactly one of in, not_in, empty, matches"
            raise ValueError(msg)
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as exc:
                msg = f"matches is not a regular expression ({exc})"
                raise ValueError(msg) from None
        return self


class Ignore(_Strict):
    """Rows matching ``when`` are ignored with ``reason``."""

    reason: Literal[
        "unknown_actor", "staff_action", "system_action", "impersonation", "survey",
        "not_engagement",
    ]  # fmt: skip
    when: Condition


class FieldRule(_Strict):
    """Where one product field comes from."""

    column: str | None = None
    template: str | None = None
    value: str | None = None
    map: str | None = None
    time: bool = False
    default: str | None = None
    strip_prefix: str | None = None
    extract: str | None = None  # a regular expression: the cell becomes its first group
    map_default: str | None = None  # a code not in the map becomes this instead of refusing
    hash: bool = False  # the text becomes a content id (exports without an event id)
    split: str | None = Field(
        default=None, min_length=1
    )  # the cell is a list (modules "CS101;CS102"), split on this
    date: bool = False  # a calendar date, read with [time] date_formats, no zone
    # Looked up at import time in a reference table (the reader map): the cell is the entry's
    # key and becomes the entry's ``take`` value; a cell not in the table is kept and noted, or
    # refuses the row (``missing``).
    reference: str | None = None
    take: str | None = None
    missing: Literal["keep", "refuse"] = "keep"

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        if sum(x is not None for x in (self.column, self.template, self.value)) != 1:
            msg = "a field takes exactly one of column, template, value"
            raise ValueError(msg)
        if self.extract is not None:
            try:
                found = re.compile(self.extract)
            except re.error as exc:
                msg = f"extract is not a regular expression ({exc})"
                raise ValueError(msg) from None
            if found.groups < 1:
                msg = "extract needs a group: the part of the cell to keep, in (...)"
                raise ValueError(msg)
        if sum((self.time, self.date, self.split is not None)) > 1:
            msg = "a field is at most one of time, date, split"
            raise ValueError(msg)
        self._check_reference()
        return self

    def _check_reference(self) -> None:
        if self.reference is None:
            if self.take is not None or "missing" in self.model_fields_set:
                msg = "take and missing go with reference (the table to look the cell up in)"
                raise ValueError(msg)
            return
        table = LOOKUP_TABLES.get(self.reference)
        if table is None:
            msg = f"reference {self.reference!r} is none of {', '.join(LOOKUP_TABLES)}"
            raise ValueError(msg)
        if self.time or self.date or self.split is not None or self.hash:
            msg = "a looked-up field is text: not time, date, split or hash"
            raise ValueError(msg)
        values = set(REFERENCE_MODELS[self.reference].model_fields)
        values -= {table.key_field, "schema_version"}
        if self.take is not None and self.take not in values:
            msg = f"take {self.take!r} is none of {', '.join(sorted(values))}"
            raise ValueError(msg)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns this field reads."""
        if self.column is not None:
            return (self.column,)
        if self.template is not None:
            return tuple(re.findall(r"\{([^{}]+)\}", self.template))
        return ()


Produces = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")]


class Mapping(_Strict):
    """One mapping file."""

    schema_version: Literal[1]
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,47}$")
    description: str = Field(min_length=10)
    produces: Produces
    input: Input = Input()
    time: Times = Times()
    identity: Identity | None = None
    fields: dict[str, FieldRule]
    maps: dict[str, dict[str, str]] = {}
    ignore: tuple[Ignore, ...] = ()

    @field_validator("fields", mode="before")
    @classmethod
    def _field_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"column": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Mapping:
        model = self.model
        known = set(model.model_fields)
        for name, rule in self.fields.items():
            if name not in known:
                msg = f"fields.{name}: not a field of {self.produces} ({', '.join(sorted(known))})"
                raise ValueError(msg)
            if rule.map is not None and rule.map not in self.maps:
                msg = f"fields.{name}: map {rule.map!r} is not defined under [maps]"
                raise ValueError(msg)
        return self

    @property
    def model(self) -> type[BaseModel]:
        """The model each row becomes."""
        if self.produces in SOURCES:
            return SOURCES[self.produces].model
        if self.produces in REFERENCE_MODELS:
            return REFERENCE_MODELS[self.produces]
        kinds = [*SOURCES, *REFERENCE_MODELS]
        msg = f"produces: {self.produces!r} is none of {', '.join(kinds)}"
        raise ValueError(msg)

    @property
    def is_reference(self) -> bool:
        """Whether rows become reference records rather than events."""
        return self.produces in REFERENCE_MODELS

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns without which no row can be read (those of fields without a default)."""
        out: dict[str, None] = {}
        for rule in self.fields.values():
            if rule.default is None:
                out.update(dict.fromkeys(rule.columns))
        if self.identity is not None:
            out[self.identity.column] = None
        for ignore in self.ignore:  # without it, rows the rule must ignore would be taken
            out[ignore.when.column] = None
        return tuple(out)


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest key of ``loc`` that the text names (a good guess for TOML)."""
    for part in reversed([p for p in loc if isinstance(p, str)]):
        for pattern in (rf"^\s*{re.escape(part)}\s*=", rf"^\s*\[+\s*[\w.]*{re.escape(part)}\s*\]+"):
            found = re.search(pattern, text, re.MULTILINE)
            if found:
                return text.count("\n", 0, found.start()) + 1
    return None


def parse_mapping(text: str, where: str) -> Mapping:
    """A mapping from TOML text; ``where`` names the file in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{where}: not valid TOML: {exc}"
        raise MappingError(msg) from None
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        lines = [f"{where}: the mapping is not valid:"]
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            named = re.match(r"([\w.]+): (.*)", message, re.DOTALL) if not loc else None
            if named:  # a check of the whole mapping names the field in its message
                loc, message = tuple(named.group(1).split(".")), named.group(2)
            field = ".".join(str(p) for p in loc) or "(file)"
            line = _line_of(text, loc)
            at = f"line {line}, " if line else ""
            lines.append(f"  - {at}{field}: {message}")
        raise MappingError("\n".join(lines)) from None


def load_mapping(name_or_path: str) -> Mapping:
    """A shipped preset by name (``celcat-register``) or a mapping file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS / f"{name_or_path}.toml"
        if not path.exists():
            names = ", ".join(sorted(p.stem for p in PRESETS.glob("*.toml"))) or "none"
            msg = f"no mapping called {name_or_path!r}; the presets are: {names}"
            raise MappingError(msg)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"{path}: cannot be read ({exc.strerror or exc})"
        raise MappingError(msg) from None
    return parse_mapping(text, str(path))
