"""``POST /import/{mapping}``: a vendor export posted to the ingest service, through a shipped
source mapping (``schemas/presets/``), with the same outcomes as ``engagement publish --mapping``.

The body is the export itself (``text/csv``, ``text/tab-separated-values`` or JSON), read row by
row in a worker thread (the event loop keeps serving), then sent as envelopes, reference
records and dead letters, and answered after the broker has acknowledged all of it.
"""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from agents.adapters.units import Outcome, Unit
from schemas.mappings import Mapping as SourceMapping
from schemas.mappings import MappingError, load_mapping
from stream.ingest.imports import prepare_export
from stream.ingest.lookups import RedisLookups
from stream.ingest.problems import problem
from stream.ingest.sender import NotAcknowledged, Outgoing
from stream.ingest.service import Ingest, reply_units
from stream.publisher.envelopes import Packer
from stream.publisher.report import InputFileError

EXPORT_TYPES = ("text/csv", "text/tab-separated-values", "application/json", "text/plain")


class Imports:
    """The import endpoint of one ingest service."""

    def __init__(self, ingest: Ingest, redis_url: str) -> None:
        import redis

        self.ingest = ingest
        self._mappings: dict[str, SourceMapping] = {}
        # The identity map and the lookup tables (the reader map), one read per batch.
        self.lookups = RedisLookups(
            redis.Redis.from_url(redis_url, socket_timeout=5), ingest.settings.key_prefix
        )

    def mapping(self, name: str) -> SourceMapping | None:
        """A shipped preset by name (never a path: senders cannot name files)."""
        if not name.replace("-", "").isalnum():
            return None
        if name not in self._mappings:
            try:
                self._mappings[name] = load_mapping(name)
            except MappingError:
                return None
        return self._mappings[name]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        endpoint = "/import"
        try:
            response = await self._handle(request)
        except Exception:  # a bug: refused with a reason, never a 500
            response = problem(400, "processing_error", "the export could not be read")
        self.ingest.metrics.requests.labels(endpoint, str(response.status)).inc()
        self.ingest.metrics.request_seconds.labels(endpoint).observe(time.perf_counter() - started)
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ingest = self.ingest
        sender = ingest.tokens.sender(request.headers)
        if sender is None:
            return problem(401, "unauthorised", "a valid bearer token for a sender is required")
        name = request.match_info.get("mapping", "")
        mapping = self.mapping(name)
        if mapping is None:
            return problem(404, "unknown_mapping", f"no shipped mapping called {name!r}")
        if request.content_type not in EXPORT_TYPES:
            return problem(415, "unsupported_media_type", "send the export as text/csv or JSON")
        max_body = ingest.settings.ingest_max_body_bytes
        body = await request.content.read(max_body + 1)
        if len(body) > max_body:
            return problem(413, "oversized", f"the body is over {max_body} bytes")
        try:
            units, messages = await asyncio.to_thread(self._prepare, body, mapping, sender, name)
        except InputFileError as exc:
            return problem(400, "unreadable_export", str(exc))
        if len(units) > ingest.settings.ingest_max_units * 100:
            return problem(413, "too_many_units", "split the export into smaller files")
        try:
            await ingest.sender.send(messages, ingest.settings.ingest_ack_timeout_s)
        except NotAcknowledged:
            return problem(503, "unavailable", "the broker is not answering; retry", retry=5)
        tally: dict[tuple[str, str], int] = {}
        for unit in units:
            key = (str(unit.outcome), unit.reason or "")
            tally[key] = tally.get(key, 0) + 1
        for (outcome, reason), n in tally.items():
            ingest.metrics.units.labels(sender, f"mapping:{name}", outcome, reason).inc(n)
        return reply_units(request, units)

    def _prepare(
        self, body: bytes, mapping: SourceMapping, sender: str, name: str
    ) -> tuple[list[Unit], list[Outgoing]]:
        ingest = self.ingest
        received = datetime.now(UTC)
        topics = ingest.topics
        lookup: Any = self.lookups
        units: list[Unit] = []
        messages: list[Outgoing] = []
        packer = None if mapping.is_reference else Packer(mapping.produces, 500, ingest.limit)
        key = f"{sender}/{mapping.produces}".encode()
        for batch in prepare_export(io.BytesIO(body), mapping, lookup, ingest.limit):
            for prepared in batch:
                units.append(prepared.unit)
                if prepared.checked is not None and packer is not None:
                    message = packer.add(prepared.checked)
                    if message is not None:
                        messages.append((topics.raw(mapping.produces), key, message[1]))
                elif prepared.reference is not None:
                    ref_key, value = prepared.reference
                    messages.append((topics.reference(mapping.produces), ref_key.encode(), value))
                elif prepared.unit.outcome is Outcome.REFUSED:
                    messages.append(ingest.dead_letter(prepared.unit, f"/import/{name}", received))
        if packer is not None:
            message = packer.finish()
            if message is not None:
                messages.append((topics.raw(mapping.produces), key, message[1]))
        return units, messages
