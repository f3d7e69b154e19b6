"""Error replies as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    503: "Service Unavailable",
}


def problem(
    status: int, reason: str, detail: str, *, retry: int | None = None, **extra: Any
) -> web.Response:
    """A problem-details reply: ``type`` names the reason (``…/problems/<reason>``, described in
    docs/ingest.md), ``detail`` says what to fix; ``extra`` members are added (e.g. units)."""
    body = {
        "type": f"https://engagement-stream.example/problems/{reason}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "reason": str(reason),
        **extra,
    }
    headers = {"Retry-After": str(retry)} if retry is not None else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="engagement-ingest"'
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/problem+json",
        headers=headers,
    )
