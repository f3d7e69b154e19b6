"""A small local notification service for the demo and tests: accepts webhook deliveries.

It checks a request as docs/channels.md asks a real service to: the Standard Webhooks
signature over id, timestamp and body under the shared secret (one of two while a secret is
rotated), and a signed time within five minutes of its own clock, or it answers 401 with the
reason; and it acts on each ``webhook-id`` once: a repeat (a retry after a lost answer, or a
captured request replayed within the five minutes) is answered 200 ``duplicate`` and nothing
is delivered again. Every request that passes is appended to a JSON-lines file with a
``duplicate`` flag, so a test can prove that no message was ever sent twice.

It will not start without a secret unless told it is a local test (``--insecure-local-test``):
a stand-in that accepts anything would hide a notifier that signs wrongly.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from schemas.errors import ConfigError
from schemas.settings import ENV
from sinks.channels.webhook import ID_HEADER, TOLERANCE_S, refusal, secret_keys

log = logging.getLogger("engagement.receiver")

NO_SECRET = (
    "engagement receiver needs the shared secret of the webhook signature: pass --secret "
    f"(twice while rotating) or set {ENV['webhook_secret']}, the same as the notifier's; "
    "only for a local test without one, pass --insecure-local-test"
)


def make_receiver(
    out: Path,
    secrets: Sequence[str] = (),
    *,
    insecure_local_test: bool = False,
    tolerance_s: float = TOLERANCE_S,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The receiver app: POST /notify stores each new message once; GET /healthz counts.

    Refuses (ConfigError) to be built without a secret unless ``insecure_local_test``."""
    try:
        keys = secret_keys(secrets)
    except ValueError as exc:
        msg = f"engagement receiver: {exc}"
        raise ConfigError(msg) from None
    if not keys and not insecure_local_test:
        raise ConfigError(NO_SECRET)
    seen: set[str] = set()
    counts = {"refused": 0, "duplicates": 0}
    out.parent.mkdir(parents=True, exist_ok=True)

    async def notify(request: web.Request) -> web.Response:
        body = await request.read()
        if keys:
            reason = refusal(secrets, body, request.headers, now=clock(), tolerance_s=tolerance_s)
            if reason is not None:
                counts["refused"] += 1
                return web.json_response({"error": reason}, status=401)
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"error": "Idempotency-Key header is required"}, status=400)
        # The signed id decides what is a repeat: the Idempotency-Key header is not signed.
        msg_id = request.headers.get(ID_HEADER) or key
        if msg_id != key:
            return web.json_response(
                {"error": f"Idempotency-Key must equal {ID_HEADER}, the signed id"}, status=400
            )
        try:
            payload: Any = json.loads(body)
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        duplicate = msg_id in seen
        seen.add(msg_id)
        counts["duplicates"] += duplicate
        record = {"idempotency_key": key, "duplicate": duplicate, "payload": payload}
        with out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        return web.json_response({"status": "duplicate" if duplicate else "accepted"})

    async def health(request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "received": len(seen), "signed": bool(keys), **counts}
        )

    app = web.Application()
    app.router.add_post("/notify", notify)
    app.router.add_get("/healthz", health)
    return app


def serve(
    host: str,
    port: int,
    out: Path,
    secrets: Sequence[str] = (),
    *,
    insecure_local_test: bool = False,
) -> None:
    """Run the receiver until interrupted; stop at once (ConfigError) without a secret."""
    app = make_receiver(out, secrets, insecure_local_test=insecure_local_test)
    if not secret_keys(secrets):
        log.warning("no secret: accepting unsigned requests (--insecure-local-test)")
    web.run_app(app, host=host, port=port, print=None)
