"""Errors as RFC 9457 problem details (``application/problem+json``), for every refusal.

An HTTPException keeps its status and says why in ``detail``; a request that does not
validate is a 400 naming the fields (never their values: a path may hold a student id); any
unexpected exception is a 500 with no trace, logged by its type only. A 5xx is never the
answer to bad input: what the routes cannot take is refused before it reaches them.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.errors import EngagementError

log = logging.getLogger("engagement.api")

PROBLEM_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem: ``type`` names the kind of refusal, ``detail`` what to do."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None


def problem(
    status: int,
    kind: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
) -> JSONResponse:
    """A problem-details response."""
    body = Problem(
        type=f"urn:engagement:problem:{kind}",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_TYPE,
        headers=headers,
    )


def responses(*statuses: int, description: str | None = None) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI description of problem answers with these statuses."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "model": Problem,
            "description": description or HTTPStatus(status).phrase,
            "content": {PROBLEM_TYPE: {"schema": schema}},
        }
        for status in statuses
    }


_KINDS = {
    400: "bad_request",
    401: "unauthorised",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "oversized",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101  # registered for it only
    if request.scope.get(OVERSIZED):
        return _oversized()
    status = exc.status_code
    if status == 404 and exc.detail == HTTPStatus.NOT_FOUND.phrase:
        detail = "no such resource"
    else:
        detail = str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    return problem(status, _KINDS.get(status, "http_error"), detail, headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101  # registered for it only
    # Field names and what was wrong, never the value given (it may be a student id).
    errors = [
        {"field": _location(error.get("loc", ())), "problem": str(error.get("msg", "invalid"))}
        for error in exc.errors()
    ]
    fields = ", ".join(e["field"] for e in errors) or "the request"
    return problem(400, "invalid", f"the request is not valid: check {fields}", errors=errors)


OVERSIZED = "engagement.oversized"
MAX_BODY_BYTES = 64 * 1024  # the largest body a route takes (preferences) is a few bytes


class _Oversized(EngagementError):  # a signal inside the middleware only
    """A request body went over MAX_BODY_BYTES while a route read it."""


def _oversized() -> JSONResponse:
    return problem(413, "oversized", f"the body is over {MAX_BODY_BYTES} bytes")


class CatchAll:
    """ASGI middleware: a body over MAX_BODY_BYTES is a 413; any exception a route did not
    expect becomes a 500 problem, logged by its type and route template only (its message or
    trace could carry a student id), and never re-raised to the server, which would print
    the trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            await _oversized()(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                scope[OVERSIZED] = True  # FastAPI turns a failed body read into its own 400
                raise _Oversized
            return message

        try:
            await self.app(scope, counted, tracked)
        except _Oversized:
            if not started:
                await _oversized()(scope, receive, send)
        except Exception as exc:  # the one place that turns any failure into an answer
            answer = _failure(exc, scope)  # logged either way
            if not started:
                await answer(scope, receive, send)


def _failure(exc: Exception, scope: Scope) -> JSONResponse:
    """Log an unexpected failure by its type and route template only (its message or trace
    could carry a student id) and say what it means: storage that did not answer is a 503 to
    retry, anything else a 500."""
    route = getattr(scope.get("route"), "path", "(no route)")
    method = scope["method"]
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        log.error("api: Redis did not answer (%s) on %s %s", type(exc).__name__, method, route)
        detail = "the service's storage did not answer; try again shortly"
        return problem(503, "unavailable", detail, headers={"Retry-After": "5"})
    log.error("api: unexpected %s on %s %s", type(exc).__name__, method, route)
    return problem(500, "internal", "something went wrong on our side")


def install(app: FastAPI) -> None:
    """Answer every refusal of ``app`` as problem details."""
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(CatchAll)
