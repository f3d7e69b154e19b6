"""The pages read and change data through the API's own ``/v1`` routes, in process.

A page asks ``/v1`` what it shows, with the browser's own session cookie (and, for a change,
the CSRF token its form echoed), so the pages see exactly what the JSON API would show this
person, every read is audited by the route that makes it, and no access rule is written twice.
The call goes through the app in memory (httpx's ASGI transport): no socket, no second
process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request

from stream.api.pages.common import hooks

INTERNAL_BASE = "http://pages.internal"


@dataclass(frozen=True)
class Answer:
    """What a ``/v1`` route answered: status, the JSON body (or None) and, for a refusal,
    its problem detail in words."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def missing(self) -> bool:
        """The route is not there (or the thing asked for is not one this person may see)."""
        return self.status in (404, 405)

    @property
    def detail(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("detail"), str):
            return str(self.body["detail"])
        return f"the request was refused ({self.status})"


async def call(
    request: Request,
    method: str,
    path: str,
    *,
    json: Any = None,
    csrf: str | None = None,
    params: dict[str, str] | None = None,
) -> Answer:
    """``method path`` on this app, as the browser behind ``request``."""
    headers = {"accept": "application/json"}
    cookie = request.headers.get("cookie")
    if cookie:
        headers["cookie"] = cookie
    if csrf is not None:
        headers[hooks(request).csrf_header] = csrf
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url=INTERNAL_BASE) as client:
        response = await client.request(method, path, json=json, headers=headers, params=params)
    try:
        body = response.json()
    except ValueError:
        body = None
    return Answer(response.status_code, body)
