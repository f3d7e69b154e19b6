"""`engagement receiver`, the stand-in notification service, refuses replays over real HTTP.

A request is signed over its id, its time and its body (Standard Webhooks). The receiver
answers 401 to a request signed more than five minutes away from its clock, acts on each id
once, cannot be made to take a captured signature for another id, accepts either secret while
one is rotated, and does not start without a secret unless told it is a local test.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from schemas.errors import ConfigError
from schemas.interventions import RenderedMessage
from schemas.nudges import Channel
from sinks.channels.outbound import Outbound
from sinks.channels.webhook import WebhookChannel, sign
from stream.dev.processes import Child, free_port
from stream.dev.receiver import make_receiver
from stream.probes import http_get

pytestmark = pytest.mark.integration

SECRET = "receiver-test-secret-0123456789"  # noqa: S105  # a test secret
NEW_SECRET = "receiver-test-new-secret-abcdef"  # noqa: S105  # a test secret
NUDGE = "n_0a1b2c3d4e5f60718293a4b5c6d7e8f9"


class Clock:
    """The receiver's clock, moved by the test (real time plus an offset)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@asynccontextmanager
async def receiver(
    out: Path, secrets: tuple[str, ...] = (SECRET,), clock: Clock | None = None
) -> AsyncIterator[str]:
    """The receiver app on a free loopback port; yields its /notify URL; always stops it."""
    app = make_receiver(out, secrets, clock=clock or Clock())
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/notify"
    finally:
        await runner.cleanup()


def signed(
    msg_id: str = NUDGE, *, secret: str = SECRET, at: float | None = None, body: bytes = b"{}"
) -> tuple[dict[str, str], bytes]:
    """A request as the notifier signs it: headers and body."""
    stamp = int(time.time() if at is None else at)
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": msg_id,
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, msg_id, stamp, body),
    }
    return headers, body


async def post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def received(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def message(nudge_id: str = NUDGE) -> Outbound:
    text = RenderedMessage(channel=Channel.APP, subject="Checking in", body="Hello")
    payload = {"schema_version": 1, "nudge_id": nudge_id, "message": {"body": "Hello"}}
    return Outbound(nudge_id, Channel.APP, "S7654321", None, text, payload)


@pytest.mark.asyncio
async def test_our_delivery_is_accepted_and_a_repeat_is_not_delivered_again(
    tmp_path: Path,
) -> None:
    out = tmp_path / "received.jsonl"
    async with receiver(out) as url:
        channel = WebhookChannel(url, SECRET, timeout_s=2, attempts=1)
        try:
            first = await channel.deliver(message())
            again = await channel.deliver(message())  # e.g. after a lost answer
        finally:
            await channel.close()
    assert (first.ok, first.status) == (True, 200)
    assert (again.ok, again.status) == (True, 200)  # acknowledged, so recorded as delivered
    assert [(r["idempotency_key"], r["duplicate"]) for r in received(out)] == [
        (NUDGE, False),
        (NUDGE, True),
    ]


@pytest.mark.asyncio
async def test_a_captured_request_replayed_is_never_delivered_again(tmp_path: Path) -> None:
    out = tmp_path / "received.jsonl"
    clock = Clock()
    headers, body = signed()
    async with receiver(out, clock=clock) as url:
        assert await post(url, headers, body) == (200, {"status": "accepted"})
        clock.offset = 60  # replayed a minute later: the id has been seen
        assert await post(url, headers, body) == (200, {"status": "duplicate"})
        clock.offset = 301  # replayed after the five minutes: refused outright
        status, answer = await post(url, headers, body)
    assert status == 401
    assert "old" in answer["error"]
    assert [r["duplicate"] for r in received(out)] == [False, True]


@pytest.mark.asyncio
async def test_a_request_signed_in_the_future_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "received.jsonl"
    headers, body = signed(at=time.time() + 400)
    async with receiver(out) as url:
        status, answer = await post(url, headers, body)
    assert status == 401
    assert "future" in answer["error"]
    assert received(out) == []


@pytest.mark.asyncio
async def test_a_captured_signature_cannot_carry_another_message(tmp_path: Path) -> None:
    # The old scheme signed the body alone: the same body and signature under a new
    # Idempotency-Key was a new message. Now the id is signed.
    out = tmp_path / "received.jsonl"
    headers, body = signed()
    async with receiver(out) as url:
        assert (await post(url, headers, body))[0] == 200
        other = "n_ffffffffffffffffffffffffffffffff"
        renamed = headers | {"webhook-id": other, "Idempotency-Key": other}
        assert (await post(url, renamed, body))[0] == 401
        redated = headers | {"webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}
        assert (await post(url, redated, body))[0] == 401
        unsigned_key = headers | {"Idempotency-Key": other}  # the unsigned copy of the id
        assert (await post(url, unsigned_key, body))[0] == 400
        assert (await post(url, headers, b'{"changed": true}'))[0] == 401
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            missing = {k: v for k, v in headers.items() if k != name}
            assert (await post(url, missing, body))[0] == 401
    assert [r["idempotency_key"] for r in received(out)] == [NUDGE]


@pytest.mark.asyncio
async def test_either_secret_is_accepted_during_a_rotation(tmp_path: Path) -> None:
    out = tmp_path / "received.jsonl"
    async with receiver(out, secrets=(NEW_SECRET, SECRET)) as url:
        assert (await post(url, *signed("n_old", secret=SECRET)))[0] == 200
        assert (await post(url, *signed("n_new", secret=NEW_SECRET)))[0] == 200
        both = signed("n_both", secret=f"{NEW_SECRET} {SECRET}")
        assert (await post(url, *both))[0] == 200
        stranger = "someone-else-entirely"  # a test secret
        assert (await post(url, *signed("n_other", secret=stranger)))[0] == 401
    assert [r["idempotency_key"] for r in received(out)] == ["n_old", "n_new", "n_both"]


def test_the_receiver_is_not_built_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--insecure-local-test"):
        make_receiver(tmp_path / "r.jsonl")
    with pytest.raises(ConfigError, match="whsec_"):
        make_receiver(tmp_path / "r.jsonl", ("whsec_***",))
    make_receiver(tmp_path / "r.jsonl", insecure_local_test=True)  # told it is a local test


def _environment() -> dict[str, str]:
    """This process's environment without any engagement setting (no secret)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}


def test_engagement_receiver_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    port = free_port()
    child = Child("receiver", ["receiver", "--port", str(port)], {}, tmp_path)
    child.env = _environment()
    child.start()
    try:
        deadline = time.monotonic() + 60
        while child.alive() and time.monotonic() < deadline:
            answered = http_get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)[0]
            assert answered == 0, "the receiver started without a secret"
            time.sleep(0.1)
        assert not child.alive(), "the receiver neither started nor stopped"
    finally:
        child.stop()
    assert child.proc is not None
    assert child.proc.returncode == 2
    said = child.tail()
    assert "ENGAGEMENT_WEBHOOK_SECRET" in said
    assert "--insecure-local-test" in said


@pytest.mark.asyncio
async def test_engagement_receiver_as_a_local_test_accepts_unsigned_requests(
    tmp_path: Path,
) -> None:
    port = free_port()
    out = tmp_path / "received.jsonl"
    args = ["receiver", "--port", str(port), "--out", str(out), "--insecure-local-test"]
    child = Child("receiver", args, {}, tmp_path)
    child.env = _environment()
    child.start()
    try:
        child.wait_http(port)
        headers = {"Content-Type": "application/json", "Idempotency-Key": "n_local"}
        status, answer = await post(f"http://127.0.0.1:{port}/notify", headers, b"{}")
    finally:
        child.stop()
    assert (status, answer) == (200, {"status": "accepted"})
    assert [r["idempotency_key"] for r in received(out)] == ["n_local"]
