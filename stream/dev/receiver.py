"""A small local notification service for the demo and tests: accepts webhook deliveries.

It honours the channel contract: with a shared secret it refuses (401) a request whose
``X-Engagement-Signature`` does not sign the body, and a repeated ``Idempotency-Key`` is
acknowledged as a duplicate. Every accepted request is appended to a JSON-lines file with a
``duplicate`` flag, so a test can prove that no message was ever sent twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from sinks.channels.webhook import SIGNATURE_HEADER, verify


def make_receiver(out: Path, secret: str | None = None) -> web.Application:
    """The receiver app: POST /notify stores each new message once."""
    seen: set[str] = set()
    out.parent.mkdir(parents=True, exist_ok=True)

    async def notify(request: web.Request) -> web.Response:
        body = await request.read()
        if secret is not None and not verify(
            secret, body, request.headers.get(SIGNATURE_HEADER, "")
        ):
            return web.json_response({"error": "signature does not match the body"}, status=401)
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"error": "Idempotency-Key header is required"}, status=400)
        try:
            payload: Any = json.loads(body)
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        duplicate = key in seen
        seen.add(key)
        record = {"idempotency_key": key, "duplicate": duplicate, "payload": payload}
        with out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        return web.json_response({"status": "duplicate" if duplicate else "accepted"})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "received": len(seen)})

    app = web.Application()
    app.router.add_post("/notify", notify)
    app.router.add_get("/healthz", health)
    return app


def serve(host: str, port: int, out: Path, secret: str | None = None) -> None:
    """Run the receiver until interrupted."""
    web.run_app(make_receiver(out, secret), host=host, port=port, print=None)
