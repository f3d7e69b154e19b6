"""The subject-access export: everything held about one student, as JSON and CSV in one zip.

Assembled from the key register (``agents.store.register.student_keys``: every key about
the pseudonym and every entry about them in a shared key), so a new key family is exported
without a change here; with the intervention records, review items and audit entries also
as CSV tables a spreadsheet opens.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime
from typing import Any, Final

from agents.store.register import student_keys
from schemas.keys import family_of
from sinks.retention import read_receipt
from stream.api.routes_common import Api, Held

ZIP_TYPE: Final = "application/zip"
README: Final = """Everything the engagement service holds about you, on {when}.

export.json      everything, by the key it is stored under (what each key holds:
                 the service's documentation, "The key register")
interventions.csv  every decision about a nudge about you (also in export.json)
review_items.csv   invitations and referrals that went to staff
access_log.csv     who has read your data, when, and whether they were allowed
stored_data.csv    every stored value, one row per field or entry

If your data was erased, export.json says when and why ("erasure").
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _value(api: Api, key: str, pseudonym: str, *, shared: bool) -> Any:
    """A key's content (for a shared key, only the entries about the student)."""
    kind = _text(await api.redis.type(key))
    if kind == "string":
        raw = await api.redis.get(key)
        return None if raw is None else _decoded(_text(raw))
    if kind == "hash":
        fields = {_text(k): _text(v) for k, v in (await api.redis.hgetall(key)).items()}
        if shared:
            fields = {k: v for k, v in fields.items() if v == pseudonym}
        return {k: _decoded(v) for k, v in sorted(fields.items())}
    if kind == "list":
        rows = [_text(r) for r in await api.redis.lrange(key, 0, -1)]
        return [_decoded(r) for r in rows if not shared or pseudonym in r]
    if kind == "set":
        members = sorted(_text(m) for m in await api.redis.smembers(key))
        return [m for m in members if not shared or m == pseudonym]
    if kind == "zset":
        pairs: list[Any] = await api.redis.zrange(key, 0, -1, withscores=True)
        scored = [(_text(member), score) for member, score in pairs]
        return [[m, s] for m, s in scored if not shared or m == pseudonym]
    return None


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _flat(stored: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, item in stored.items():
        family, value = item["family"], item["value"]
        if isinstance(value, dict):
            rows += [
                {"key": key, "family": family, "field": k, "value": v} for k, v in value.items()
            ]
        elif isinstance(value, list):
            rows += [
                {"key": key, "family": family, "field": i, "value": v} for i, v in enumerate(value)
            ]
        else:
            rows.append({"key": key, "family": family, "field": "", "value": value})
    return rows


async def export_zip(api: Api, found: Held, moment: datetime, *, you: str) -> bytes:
    """The zip of everything held about the student behind ``found``."""
    prefix, pseudonym = api.settings.key_prefix, found.pseudonym
    keys = await student_keys(api.redis, prefix, pseudonym)
    stored: dict[str, Any] = {}
    for key, shared in [*((k, False) for k in keys.own), *((k, True) for k in keys.shared)]:
        family = family_of(key, prefix)
        stored[key] = {
            "family": family.name if family else "unknown",
            "shared": shared,
            "value": await _value(api, key, pseudonym, shared=shared),
        }
    records = [r.model_dump(mode="json") for r in found.records]
    review = [
        item["value"] | {"key": key}
        for key, item in stored.items()
        if item["family"] == "review_item" and isinstance(item["value"], dict)
    ]
    review = [_review_row(row) for row in review]
    audit = [
        e.model_dump(mode="json") | {"who": "you" if e.who == you else e.who}
        for e in await api.audit.about(pseudonym, 100_000)
    ]
    receipt = await read_receipt(api.redis, prefix, api.settings.pseudonym_key, pseudonym)
    document = {
        "exported_at": moment.isoformat(),
        # Erased: when and why (docs/retention.md); what is held since then follows.
        "erasure": receipt.model_dump(mode="json") if receipt is not None else None,
        "pseudonym": pseudonym,
        "interventions": records,
        "review_items": review,
        "access_log": audit,
        "stored": stored,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", README.format(when=moment.isoformat()))
        archive.writestr("export.json", json.dumps(document, indent=2, sort_keys=True, default=str))
        archive.writestr(
            "interventions.csv",
            _csv(records, ["decided_at", "record_id", "nudge_id", "rule_id", "rule_version",
                           "tier", "route", "stage", "outcome", "reason", "detail", "summary",
                           "channels", "queue", "staff_id", "action", "referred_to"]),
        )  # fmt: skip
        archive.writestr(
            "review_items.csv",
            _csv(review, ["queued_at", "nudge_id", "rule_id", "tier", "route", "queue",
                          "summary", "escalated_to", "decided"]),
        )  # fmt: skip
        archive.writestr("access_log.csv", _csv(audit, ["at", "who", "role", "action", "outcome"]))
        archive.writestr(
            "stored_data.csv", _csv(_flat(stored), ["key", "family", "field", "value"])
        )
    return buffer.getvalue()


def _review_row(fields: dict[str, Any]) -> dict[str, Any]:
    """A review item hash as one row: the item as queued, with its marks."""
    item = fields.get("item")
    row = dict(item) if isinstance(item, dict) else {}
    row["escalated_to"] = fields.get("escalated_to")
    row["decided"] = fields.get("decided") == 1 or fields.get("decided") == "1"
    return row
