"""A small local notification service for the demo and tests: accepts webhook deliveries.

It honours the channel contract: a repeated ``Idempotency-Key`` is acknowledged but not
stored again. Each accepted message is appended to a JSON-lines file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web


def make_receiver(out: Path) -> web.Application:
    """The receiver app: POST /notify stores each new message once."""
    seen: set[str] = set()
    out.parent.mkdir(parents=True, exist_ok=True)

    async def notify(request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"error": "Idempotency-Key header is required"}, status=400)
        try:
            payload: Any = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        if key in seen:
            return web.json_response({"status": "duplicate"})
        seen.add(key)
        with out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"idempotency_key": key, "payload": payload}) + "\n")
        return web.json_response({"status": "accepted"})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "received": len(seen)})

    app = web.Application()
    app.router.add_post("/notify", notify)
    app.router.add_get("/healthz", health)
    return app


def serve(host: str, port: int, out: Path) -> None:
    """Run the receiver until interrupted."""
    web.run_app(make_receiver(out), host=host, port=port, print=None)
