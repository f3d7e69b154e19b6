"""``engagement ingest``: the HTTP front door for systems that cannot run a Kafka client.

Every request goes the same way: who sends it (a bearer token bound to a sender), is it JSON of
an allowed size, one outcome per unit from the format's adapter, the identity step, the
product's own checks on each accepted event, then the accepted events in envelopes on their raw
topics and the refused ones on the dead-letter topic. The reply is written only after the
broker has acknowledged all of it; when it cannot, the answer is 503 with ``Retry-After`` (a
retry counts nothing twice: events are de-duplicated by feed and id). No input gives a 5xx
other than that 503.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from agents.adapters.identity import Policy, wanted
from agents.adapters.units import Outcome, Unit
from ops.ingest_metrics import IngestMetrics
from schemas.common import Reason
from schemas.deadletter import DeadLetter
from schemas.settings import Settings
from stream.ingest.formats import Format, statement_ids, with_statement_ids
from stream.ingest.prepare import adapt, finish
from stream.ingest.problems import problem
from stream.ingest.sender import NotAcknowledged, Outgoing, Sender
from stream.ingest.tokens import Tokens
from stream.publisher.envelopes import MAX_REQUEST_BYTES, RECORD_HEADROOM, Packer

log = logging.getLogger("engagement.ingest")

XAPI_VERSION = "1.0.3"
JSON_TYPES = ("application/json",)


@dataclass
class Outcomes:
    """What one request's units came to, ready to send."""

    units: list[Unit]
    messages: list[Outgoing]


class Ingest:
    """The service: its settings, producer, identity map and metrics."""

    def __init__(
        self,
        settings: Settings,
        tokens: Tokens,
        sender: Sender,
        redis: Any,
        metrics: IngestMetrics,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.sender = sender
        self.redis = redis
        self.metrics = metrics
        self.topics = settings.topics
        self.bootstrap = settings.kafka_bootstrap_servers or ""  # set by the runner
        self.actors_key = f"{settings.key_prefix}:actors"
        self.limit = min(settings.max_message_bytes, MAX_REQUEST_BYTES - RECORD_HEADROOM)

    # -- one request --------------------------------------------------------------------------
    async def handle(
        self, request: web.Request, fmt: Format, endpoint: str, *, xapi: str | None = None
    ) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await self._handle(request, fmt, endpoint, xapi)
        except Exception:  # a bug: the input is refused with a reason, never a 500
            log.exception("ingest: unexpected failure on %s", endpoint)
            response = problem(400, Reason.PROCESSING_ERROR, "the request could not be read")
        if xapi is not None:
            response.headers["X-Experience-API-Version"] = XAPI_VERSION
        self.metrics.requests.labels(endpoint, str(response.status)).inc()
        self.metrics.request_seconds.labels(endpoint).observe(time.perf_counter() - started)
        return response

    async def _handle(
        self, request: web.Request, fmt: Format, endpoint: str, xapi: str | None
    ) -> web.StreamResponse:
        sender = self.tokens.sender(request.headers)
        if sender is None:
            return problem(401, "unauthorised", "a valid bearer token for a sender is required")
        payload = await self._read(request, fmt, xapi)
        if isinstance(payload, web.StreamResponse):
            return payload
        try:
            outcomes = await self._outcomes(payload, fmt, sender, endpoint)
            await self.sender.send(outcomes.messages, self.settings.ingest_ack_timeout_s)
        except NotAcknowledged as exc:
            log.warning("ingest: %s; answered 503", exc)
            detail = "the broker or Redis is not answering; retry"
            return problem(503, "unavailable", detail, retry=5)
        self._count(sender, fmt.name, outcomes.units)
        return _reply(request, outcomes.units, payload, xapi)

    async def _read(self, request: web.Request, fmt: Format, xapi: str | None) -> Any:
        """The request's JSON payload, or the reply refusing it as a whole."""
        if xapi is not None and "X-Experience-API-Version" not in request.headers:
            return problem(
                400, "missing_version", "the X-Experience-API-Version header is required"
            )
        if request.content_type not in JSON_TYPES:
            return problem(415, "unsupported_media_type", "send the body as application/json")
        max_body = self.settings.ingest_max_body_bytes
        too_large = problem(413, Reason.OVERSIZED, f"the body is over {max_body} bytes")
        if request.content_length is not None and request.content_length > max_body:
            return too_large
        body = await request.content.read(max_body + 1)
        if len(body) > max_body:
            return too_large
        payload = _parse(body)
        if isinstance(payload, _Unparsed):
            return problem(400, Reason.MALFORMED_JSON, payload.why)
        count = fmt.units_in(payload)
        if count > self.settings.ingest_max_units:
            limit = self.settings.ingest_max_units
            return problem(413, "too_many_units", f"{count} units; at most {limit} per request")
        if xapi == "put":
            wanted_id = request.query.get("statementId", "")
            if not isinstance(payload, dict):
                return problem(400, Reason.NOT_AN_OBJECT, "PUT takes one statement")
            if not wanted_id or payload.get("id", wanted_id) != wanted_id:
                detail = "statementId is missing or differs from the statement's id"
                return problem(400, Reason.INVALID_VALUE, detail)
            payload["id"] = wanted_id
        elif xapi is not None:
            payload = with_statement_ids(payload)
        return payload

    async def _outcomes(self, payload: Any, fmt: Format, sender: str, endpoint: str) -> Outcomes:
        received = datetime.now(UTC)
        units = adapt(fmt, payload, received)
        policy = Policy(self.settings.identity_policy_for(sender))
        found: dict[str, str] = {}
        keys = wanted(units) if policy is Policy.MAP else []
        if keys:
            try:
                values = await self.redis.hmget(self.actors_key, keys)
            except Exception as exc:
                msg = f"the identity map cannot be read ({type(exc).__name__})"
                raise NotAcknowledged(msg) from exc
            found = {k: _text(v) for k, v in zip(keys, values, strict=True) if v is not None}
        packers: dict[str, Packer] = {}
        messages: list[Outgoing] = []
        done: list[Unit] = []
        for unit, checked in finish(units, policy, found, self.limit):
            if checked is not None and unit.source:
                source = unit.source
                packer = packers.setdefault(source, Packer(source, 500, self.limit))
                message = packer.add(checked)
                if message is not None:
                    messages.append(
                        (self.topics.raw(source), self._key(sender, source), message[1])
                    )
            elif unit.outcome is Outcome.REFUSED:
                messages.append(self.dead_letter(unit, endpoint, received))
            done.append(unit)
        for source, packer in packers.items():
            message = packer.finish()
            if message is not None:
                messages.append((self.topics.raw(source), self._key(sender, source), message[1]))
        return Outcomes(done, messages)

    @staticmethod
    def _key(sender: str, source: str) -> bytes:
        # Envelopes from one sender share a key, so they stay in order on one raw partition.
        return f"{sender}/{source}".encode()

    def dead_letter(self, unit: Unit, endpoint: str, received: datetime) -> Outgoing:
        """A refused unit's dead letter: its reason, sentence and index, nothing of the input."""
        try:
            reason = Reason(unit.reason or "")
        except ValueError:
            reason = Reason.INVALID_VALUE
        letter = DeadLetter(
            reason=reason,
            detail=unit.detail or f"refused as {reason.value}",
            topic=f"http {endpoint}",
            partition=-1,
            offset=-1,
            index=unit.index,
            received_at=received,
            payload_excerpt="",  # native payloads are full of identifiers: none is kept
        )
        return self.topics.deadletter, None, letter.model_dump_json().encode()

    def _count(self, sender: str, fmt: str, units: list[Unit]) -> None:
        tally = Counter((str(u.outcome), u.reason or "") for u in units)
        for (outcome, reason), n in tally.items():
            self.metrics.units.labels(sender, fmt, outcome, reason).inc(n)


# -- parsing and replies ----------------------------------------------------------------------
class _Unparsed:
    def __init__(self, why: str) -> None:
        self.why = why


def _no_constants(name: str) -> Any:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_no_constants)
    except UnicodeDecodeError:
        return _Unparsed("the body is not UTF-8")
    except RecursionError:
        return _Unparsed("the body nests too deeply")
    except ValueError as exc:
        return _Unparsed(f"the body is not JSON ({str(exc)[:120]})")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def reply_units(request: web.Request, units: list[Unit]) -> web.StreamResponse:
    """The reply to a request whose units are decided: counts, or ``?report=units``."""
    return _reply(request, units, None, None)


def _reply(
    request: web.Request, units: list[Unit], payload: Any, xapi: str | None
) -> web.StreamResponse:
    tally = Counter(str(u.outcome) for u in units)
    report = request.query.get("report") == "units"
    if units and tally["refused"] == len(units):
        detail = f"all {len(units)} units were refused"
        if report:
            return problem(400, "refused", detail, units=[u.report() for u in units])
        return problem(400, "refused", detail)
    if xapi == "put":
        return web.Response(status=204)
    body: Any
    if report:
        body = {"units": [u.report() for u in units]}
    elif xapi is not None:
        refused = {u.index for u in units if u.outcome is Outcome.REFUSED}
        body = [i for n, i in statement_ids(payload) if n not in refused]
    else:
        body = {k: tally[k] for k in ("accepted", "ignored", "refused")}
    return web.json_response(body)
