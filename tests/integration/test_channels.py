"""The delivery channels against real local servers: a signed webhook and an SMTP relay."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from multidict import CIMultiDict
from standardwebhooks import Webhook, WebhookVerificationError

from schemas.interventions import RenderedMessage
from schemas.nudges import Channel
from sinks.channels.breaker import CircuitBreaker
from sinks.channels.outbound import Outbound
from sinks.channels.smtp import FALLBACK_SUBJECT, SmtpChannel
from sinks.channels.webhook import WebhookChannel, sign, verify
from stream.dev.processes import free_port

pytestmark = pytest.mark.integration

SECRET = "s3cret-shared-with-the-service"  # noqa: S105  # a test secret
NUDGE = "n_4f0c2a7d9e1b3c5a8f6d2e0b1a9c7d3e"
SUBJECT = "Checking in about your studies"
BODY = "We noticed you have not logged in to the VLE for 7 days.\nRenée, your tutor is there."
DOCS = Path(__file__).resolve().parents[2] / "docs" / "channels.md"


def outbound(
    nudge_id: str = NUDGE,
    channel: Channel = Channel.APP,
    address: str | None = None,
    subject: str | None = SUBJECT,
) -> Outbound:
    message = RenderedMessage(channel=channel, subject=subject, body=BODY)
    payload = {
        "schema_version": 1,
        "nudge_id": nudge_id,
        "student_id": "S7654321",
        "channels": [channel.value],
        "message": {"subject": subject, "body": BODY},
    }
    return Outbound(nudge_id, channel, "S7654321", address, message, payload)


class Clock:
    """A clock the test moves by hand, so the breaker's reset needs no waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- webhook -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the fake service answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    stall: bool = False  # hold the response until the test ends


@dataclass(frozen=True)
class Seen:
    """One request as the service received it."""

    headers: CIMultiDict[str]
    body: bytes
    at: float


class Service:
    """A notification service that checks the signature and plays a script of replies."""

    def __init__(
        self,
        *script: Reply,
        then: Reply | None = None,
        secret: str = SECRET,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.clock = clock
        self.script = list(script)
        self.then = then or Reply()
        self.requests: list[Seen] = []
        self.redirected = 0
        self.release = asyncio.Event()

    async def notify(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Seen(request.headers.copy(), body, time.monotonic()))
        if not verify(self.secret, body, request.headers, now=self.clock()):
            return web.json_response({"error": "bad signature"}, status=401)
        if not request.headers.get("Idempotency-Key"):
            return web.json_response({"error": "Idempotency-Key is required"}, status=400)
        reply = self.script.pop(0) if self.script else self.then
        if reply.stall:
            await self.release.wait()
        return web.json_response(
            {"status": reply.status}, status=reply.status, headers=reply.headers
        )

    async def elsewhere(self, request: web.Request) -> web.StreamResponse:
        self.redirected += 1
        return web.json_response({"status": "accepted"})


@asynccontextmanager
async def serving(service: Service) -> AsyncIterator[str]:
    """Run ``service`` on a free loopback port; yield its /notify URL; always stop it."""
    app = web.Application()
    app.router.add_post("/notify", service.notify)
    app.router.add_post("/elsewhere", service.elsewhere)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/notify"
    finally:
        service.release.set()
        await runner.cleanup()


@asynccontextmanager
async def webhook(
    url: str, *, secret: str = SECRET, attempts: int = 3, **kwargs: Any
) -> AsyncIterator[WebhookChannel]:
    channel = WebhookChannel(
        url, secret, timeout_s=kwargs.pop("timeout_s", 0.3), attempts=attempts,
        backoff_s=kwargs.pop("backoff_s", 0.01), **kwargs,
    )  # fmt: skip
    try:
        yield channel
    finally:
        await channel.close()


@pytest.mark.asyncio
async def test_signed_delivery_is_accepted() -> None:
    service = Service()
    async with serving(service) as url, webhook(url) as channel:
        result = await channel.deliver(outbound())
    assert (result.ok, result.reason, result.attempts, result.status) == (True, "accepted", 1, 200)
    (seen,) = service.requests
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Idempotency-Key"] == NUDGE
    assert seen.headers["X-Engagement-Channel"] == "app"
    assert seen.headers["User-Agent"] == "engagement-stream"
    assert seen.headers["webhook-id"] == NUDGE
    stamp = seen.headers["webhook-timestamp"]
    assert abs(int(stamp) - time.time()) < 60  # signed at the time it was sent
    assert seen.headers["webhook-signature"] == sign(SECRET, NUDGE, int(stamp), seen.body)
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", seen.headers["webhook-signature"])
    assert json.loads(seen.body) == outbound().payload
    assert (
        seen.body == json.dumps(outbound().payload, separators=(",", ":"), sort_keys=True).encode()
    )
    assert channel.breaker.state == "closed"


@pytest.mark.asyncio
async def test_wrong_secret_is_rejected_once_and_does_not_open_the_breaker() -> None:
    service = Service()
    breaker = CircuitBreaker(failure_threshold=2)
    wrong = "not-the-secret"
    async with serving(service) as url, webhook(url, secret=wrong, breaker=breaker) as channel:
        results = [await channel.deliver(outbound()) for _ in range(3)]
    for result in results:
        assert (result.ok, result.reason, result.attempts) == (False, "http_401", 1)
        assert result.status == 401
    assert len(service.requests) == 3  # one per delivery: a 401 is not retried
    assert breaker.state == "closed"  # the service answered: it is up


@pytest.mark.asyncio
async def test_server_errors_are_retried_with_identical_bytes_until_accepted() -> None:
    service = Service(Reply(500), Reply(500))
    async with serving(service) as url, webhook(url, attempts=4) as channel:
        result = await channel.deliver(outbound())
    assert (result.ok, result.attempts, result.status) == (True, 3, 200)
    assert len(service.requests) == 3
    assert len({seen.body for seen in service.requests}) == 1
    # Each attempt is signed at its own time; the signed id is the same on every attempt.
    assert {seen.headers["webhook-id"] for seen in service.requests} == {NUDGE}
    assert all(verify(SECRET, seen.body, seen.headers) for seen in service.requests)
    assert {seen.headers["Idempotency-Key"] for seen in service.requests} == {NUDGE}


@pytest.mark.parametrize("status", [408, 425, 429, 502, 503, 504])
@pytest.mark.asyncio
async def test_transient_statuses_are_retried(status: int) -> None:
    service = Service(Reply(status))
    async with serving(service) as url, webhook(url) as channel:
        result = await channel.deliver(outbound())
    assert (result.ok, result.attempts) == (True, 2)


@pytest.mark.parametrize("status", [400, 404, 409, 422, 307])
@pytest.mark.asyncio
async def test_other_client_errors_and_redirects_are_final(status: int) -> None:
    service = Service(Reply(status, {"Location": "/elsewhere"}))
    async with serving(service) as url, webhook(url) as channel:
        result = await channel.deliver(outbound())
    assert (result.ok, result.reason, result.attempts) == (False, f"http_{status}", 1)
    assert len(service.requests) == 1
    assert service.redirected == 0  # a redirected POST could turn into a GET that "succeeds"


@pytest.mark.asyncio
async def test_a_service_that_keeps_failing_fails_the_delivery_after_all_attempts() -> None:
    service = Service(then=Reply(500))
    async with serving(service) as url, webhook(url, attempts=3) as channel:
        result = await channel.deliver(outbound())
    assert (result.ok, result.reason, result.attempts, result.status) == (False, "http_500", 3, 500)
    assert len(service.requests) == 3


@pytest.mark.asyncio
async def test_a_slow_service_times_out_on_every_attempt() -> None:
    service = Service(then=Reply(stall=True))
    started = time.monotonic()
    async with serving(service) as url, webhook(url, attempts=2, timeout_s=0.3) as channel:
        result = await channel.deliver(outbound())
        elapsed = time.monotonic() - started
    assert (result.ok, result.reason, result.attempts, result.status) == (False, "timeout", 2, None)
    assert len(service.requests) == 2
    assert 0.6 <= elapsed < 5.0  # each attempt waited its own timeout, no longer


@pytest.mark.asyncio
async def test_connection_refused_is_a_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/notify"  # nothing listens there
    async with webhook(url, attempts=2) as channel:
        result = await channel.deliver(outbound())
    assert not result.ok
    assert result.reason.startswith("connection_error:")
    assert result.attempts == 2


@pytest.mark.asyncio
async def test_retry_after_is_honoured_and_capped() -> None:
    service = Service(Reply(429, {"Retry-After": "1"}))
    async with serving(service) as url, webhook(url, backoff_s=0.01) as channel:
        result = await channel.deliver(outbound())
    assert (result.ok, result.attempts) == (True, 2)
    first, second = service.requests
    assert second.at - first.at >= 0.9  # the backoff alone would have been ~0.01 s

    service = Service(Reply(503, {"Retry-After": "3600"}))
    async with serving(service) as url, webhook(url, max_backoff_s=0.2) as channel:
        result = await channel.deliver(outbound())
    assert (result.ok, result.attempts) == (True, 2)
    first, second = service.requests
    assert second.at - first.at < 2.0


@pytest.mark.asyncio
async def test_breaker_opens_holds_without_calling_then_half_opens_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=30.0, clock=clock)
    service = Service(then=Reply(500))
    async with serving(service) as url, webhook(url, attempts=2, breaker=breaker) as channel:
        for _ in range(2):
            failed = await channel.deliver(outbound())
            assert (failed.ok, failed.reason, failed.attempts) == (False, "http_500", 2)
        assert breaker.state == "open"
        calls = len(service.requests)
        assert calls == 4

        held = await channel.deliver(outbound())
        assert (held.ok, held.reason, held.attempts, held.status) == (
            False,
            "circuit_open",
            0,
            None,
        )
        assert len(service.requests) == calls  # the service was not touched
        assert breaker.retry_in_s() == pytest.approx(30.0)

        clock.now += 30.0
        assert breaker.state == "half_open"
        service.then = Reply(200)
        trial = await channel.deliver(outbound())
        assert (trial.ok, trial.attempts) == (True, 1)
        assert breaker.state == "closed"
        assert len(service.requests) == calls + 1


@pytest.mark.asyncio
async def test_same_message_twice_is_byte_identical_with_the_same_key() -> None:
    service = Service()
    async with serving(service) as url, webhook(url) as channel:
        assert (await channel.deliver(outbound())).ok
        assert (await channel.deliver(outbound())).ok
    first, second = service.requests
    assert first.body == second.body
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == NUDGE
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == NUDGE
    assert verify(SECRET, first.body, first.headers) and verify(SECRET, second.body, second.headers)


def documented_verifier() -> Any:
    """The signature check from docs/channels.md, executed as written."""
    (snippet,) = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102  # our own documentation, to prove it works
    return namespace["verify_signature"]


@pytest.mark.asyncio
async def test_the_documented_verifier_accepts_a_real_request_and_rejects_tampering() -> None:
    service = Service()
    async with serving(service) as url, webhook(url) as channel:
        assert (await channel.deliver(outbound())).ok
    (seen,) = service.requests
    headers = {name.lower(): value for name, value in seen.headers.items()}
    header = headers["webhook-signature"]
    verify_signature = documented_verifier()
    assert verify_signature(SECRET, seen.body, headers)
    assert not verify_signature(SECRET, seen.body + b" ", headers)
    assert not verify_signature("another secret", seen.body, headers)
    assert not verify_signature(SECRET, seen.body, headers | {"webhook-id": "n_another"})
    old = int(time.time()) - 600  # validly signed, ten minutes ago: a replay
    stale = headers | {"webhook-timestamp": str(old)}
    stale["webhook-signature"] = sign(SECRET, NUDGE, old, seen.body)
    assert not verify_signature(SECRET, seen.body, stale)
    assert verify(SECRET, seen.body, headers)
    assert not verify(SECRET, seen.body, stale)
    assert verify(SECRET, seen.body, stale, now=old + 1)  # refused for its age alone
    assert not verify(SECRET, seen.body, headers | {"webhook-signature": header[3:]})
    assert not verify(SECRET, seen.body, headers | {"webhook-signature": "v1,é"})
    assert not verify(SECRET, seen.body, headers | {"webhook-signature": ""})


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookChannel("http://127.0.0.1:1/notify", "", timeout_s=1, attempts=1)


# -- Standard Webhooks: checked by its own library, an independent client -----------------

# A secret in the Standard Webhooks form: whsec_ and base64 of the key's bytes.
WHSEC = "whsec_" + base64.b64encode(bytes(range(7, 39))).decode()


def library(secret: str) -> Webhook:
    """The reference library's verifier for one of our secrets: it decodes a whsec_ secret
    itself; a raw secret is handed over as its bytes (our documented rule for raw secrets)."""
    return Webhook(secret if secret.startswith("whsec_") else secret.encode())


def as_sent(seen: Seen) -> dict[str, str]:
    return {name: value for name, value in seen.headers.items()}


@pytest.mark.parametrize("secret", [SECRET, WHSEC])
@pytest.mark.asyncio
async def test_the_standard_webhooks_library_verifies_what_we_send(secret: str) -> None:
    service = Service(secret=secret)
    async with serving(service) as url, webhook(url, secret=secret) as channel:
        assert (await channel.deliver(outbound())).ok
    (seen,) = service.requests
    headers = as_sent(seen)
    assert library(secret).verify(seen.body, headers) == outbound().payload
    forged = [
        (seen.body + b" ", headers),  # another body
        (seen.body, headers | {"webhook-id": "n_another"}),  # passed off as another message
        (seen.body, headers | {"webhook-timestamp": str(int(time.time()) + 1)}),  # re-dated
    ]
    for body, changed in forged:
        with pytest.raises(WebhookVerificationError):
            library(secret).verify(body, changed)
    with pytest.raises(WebhookVerificationError):
        library(SECRET if secret == WHSEC else WHSEC).verify(seen.body, headers)


@pytest.mark.asyncio
async def test_the_library_refuses_our_request_replayed_after_five_minutes() -> None:
    started = time.time()
    service = Service(clock=lambda: started - 600)  # accepts what we sign ten minutes ago
    async with serving(service) as url, webhook(url, clock=lambda: started - 600) as channel:
        assert (await channel.deliver(outbound())).ok
    (seen,) = service.requests
    assert int(seen.headers["webhook-timestamp"]) == int(started - 600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        library(SECRET).verify(seen.body, as_sent(seen))


@pytest.mark.asyncio
async def test_during_a_rotation_each_secret_signs_and_either_verifies() -> None:
    service = Service(secret=SECRET)  # the service still has the old secret
    rotating = f"{WHSEC} {SECRET}"  # new first, then old
    async with serving(service) as url, webhook(url, secret=rotating) as channel:
        result = await channel.deliver(outbound())
    assert result.ok
    (seen,) = service.requests
    signatures = seen.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", s) for s in signatures)
    assert library(WHSEC).verify(seen.body, as_sent(seen)) == outbound().payload
    assert library(SECRET).verify(seen.body, as_sent(seen)) == outbound().payload
    with pytest.raises(WebhookVerificationError):
        library("a-third-secret-nobody-has").verify(seen.body, as_sent(seen))


@pytest.mark.asyncio
async def test_a_retry_long_after_the_first_attempt_is_signed_afresh() -> None:
    # The first attempt fails; the retry is made 400 s later (a slow service, long timeouts).
    # Signed with the first attempt's time it would be refused as a replay; it is re-signed.
    t0 = time.time()
    times = iter([t0, t0 + 400])
    now = {"t": t0}

    def channel_clock() -> float:
        now["t"] = next(times)
        return now["t"]

    service = Service(Reply(503), clock=lambda: now["t"])
    async with serving(service) as url, webhook(url, clock=channel_clock) as channel:
        result = await channel.deliver(outbound())
    assert (result.ok, result.attempts) == (True, 2)
    first, second = service.requests
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == NUDGE
    stamps = [int(seen.headers["webhook-timestamp"]) for seen in (first, second)]
    assert stamps == [int(t0), int(t0 + 400)]
    assert not verify(SECRET, first.body, first.headers, now=t0 + 400)  # would be refused
    assert verify(SECRET, second.body, second.headers, now=t0 + 400)


@pytest.mark.parametrize("bad", ["", "   ", "whsec_not*base64!", "whsec_"])
def test_an_unusable_secret_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookChannel("http://127.0.0.1:1/notify", bad, timeout_s=1, attempts=1)


# -- SMTP ----------------------------------------------------------------------------------

SENDER = "engagement@uni.example"
STUDENT = "renee.student@uni.example"


class Relay:
    """An aiosmtpd handler that stores what it accepts and can refuse DATA from a script."""

    def __init__(self, *replies: str, then: str | None = None) -> None:
        self.replies = list(replies)
        self.then = then
        self.data_commands = 0
        self.received: list[tuple[str, list[str], EmailMessage, bool]] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.data_commands += 1
        refusal = self.replies.pop(0) if self.replies else self.then
        if refusal is not None:
            return refusal
        content = envelope.content
        assert isinstance(content, bytes)
        mail = message_from_bytes(content, policy=default_policy)
        assert isinstance(mail, EmailMessage)
        tls = session.ssl is not None
        self.received.append((str(envelope.mail_from), list(envelope.rcpt_tos), mail, tls))
        return "250 Message accepted for delivery"


@contextmanager
def relay_running(handler: Relay, **smtp_options: Any) -> Iterator[int]:
    """Run an aiosmtpd relay on a free loopback port; yield the port; always stop it."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def smtp(port: int, **kwargs: Any) -> SmtpChannel:
    options: dict[str, Any] = {
        "sender": SENDER,
        "starttls": False,
        "username": None,
        "password": None,
        "timeout_s": 2.0,
        "attempts": 3,
        "backoff_s": 0.01,
    }
    return SmtpChannel("127.0.0.1", port, **(options | kwargs))


def email_out(subject: str | None = SUBJECT) -> Outbound:
    return outbound(channel=Channel.EMAIL, address=STUDENT, subject=subject)


@pytest.mark.asyncio
async def test_the_rendered_email_arrives_with_its_headers() -> None:
    relay = Relay()
    with relay_running(relay) as port:
        result = await smtp(port).deliver(email_out())
    assert (result.ok, result.reason, result.attempts) == (True, "accepted", 1)
    ((mail_from, rcpt_tos, mail, _),) = relay.received
    assert (mail_from, rcpt_tos) == (SENDER, [STUDENT])
    assert mail["To"] == STUDENT
    assert mail["From"] == SENDER
    assert mail["Subject"] == SUBJECT
    assert mail["Message-ID"] == f"<{NUDGE}@engagement-stream>"
    assert mail["X-Engagement-Nudge-Id"] == NUDGE
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Date"] is not None
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().replace("\r\n", "\n").rstrip("\n") == BODY  # CRLF on the wire


@pytest.mark.asyncio
async def test_a_message_without_subject_gets_the_fallback() -> None:
    relay = Relay()
    with relay_running(relay) as port:
        assert (await smtp(port).deliver(email_out(subject=None))).ok
    ((_, _, mail, _),) = relay.received
    assert mail["Subject"] == FALLBACK_SUBJECT


@pytest.mark.asyncio
async def test_no_address_is_not_attempted() -> None:
    relay = Relay()
    with relay_running(relay) as port:
        result = await smtp(port).deliver(outbound(channel=Channel.EMAIL, address=None))
    assert (result.ok, result.reason, result.attempts) == (False, "no_address", 0)
    assert relay.data_commands == 0


@pytest.mark.asyncio
async def test_a_temporary_refusal_is_retried() -> None:
    relay = Relay("451 4.3.0 Try again later")
    with relay_running(relay) as port:
        result = await smtp(port).deliver(email_out())
    assert (result.ok, result.attempts) == (True, 2)
    assert relay.data_commands == 2
    assert len(relay.received) == 1


@pytest.mark.asyncio
async def test_a_permanent_refusal_is_final() -> None:
    relay = Relay(then="550 5.1.1 Mailbox unavailable")
    with relay_running(relay) as port:
        result = await smtp(port).deliver(email_out())
    assert (result.ok, result.reason, result.attempts, result.status) == (False, "smtp_550", 1, 550)
    assert relay.data_commands == 1


@pytest.mark.asyncio
async def test_repeated_temporary_refusals_fail_the_delivery_and_open_the_breaker() -> None:
    relay = Relay(then="451 4.3.0 Try again later")
    breaker = CircuitBreaker(failure_threshold=1, clock=Clock())
    with relay_running(relay) as port:
        channel = smtp(port, attempts=3, breaker=breaker)
        failed = await channel.deliver(email_out())
        held = await channel.deliver(email_out())
    assert (failed.ok, failed.reason, failed.attempts, failed.status) == (False, "smtp_451", 3, 451)
    assert (held.ok, held.reason, held.attempts) == (False, "circuit_open", 0)
    assert relay.data_commands == 3


@pytest.mark.asyncio
async def test_connection_refused_and_a_silent_server_are_transient() -> None:
    refused = await smtp(free_port(), attempts=2).deliver(email_out())
    assert (refused.ok, refused.reason, refused.attempts) == (
        False,
        "connection_error:ConnectionRefusedError",
        2,
    )
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never greets
        port = silent.getsockname()[1]
        result = await smtp(port, attempts=2, timeout_s=0.3).deliver(email_out())
    assert (result.ok, result.reason, result.attempts) == (False, "timeout", 2)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1: (cert, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command line is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


def tls_options(certificate: tuple[Path, Path]) -> dict[str, Any]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return {"tls_context": context, "require_starttls": True}


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts only the test certificate (verification stays on)."""
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.mark.asyncio
async def test_starttls_delivers_encrypted_and_clear_text_is_refused(
    certificate: tuple[Path, Path],
) -> None:
    relay = Relay()
    with relay_running(relay, **tls_options(certificate)) as port:
        ok = await smtp(port, starttls=True, ssl_context=trusting(certificate)).deliver(email_out())
        refused = await smtp(port, starttls=False).deliver(email_out())
    assert (ok.ok, ok.attempts) == (True, 1)
    ((_, _, _, tls),) = relay.received
    assert tls
    assert (refused.ok, refused.reason, refused.attempts) == (False, "smtp_530", 1)
    assert len(relay.received) == 1


@pytest.mark.asyncio
async def test_an_untrusted_certificate_is_final(certificate: tuple[Path, Path]) -> None:
    relay = Relay()
    with relay_running(relay, **tls_options(certificate)) as port:
        result = await smtp(port, starttls=True).deliver(email_out())  # system CAs only
    assert (result.ok, result.reason, result.attempts) == (False, "tls_certificate_rejected", 1)
    assert relay.received == []


@pytest.mark.asyncio
async def test_starttls_required_but_not_offered_never_sends_in_clear() -> None:
    relay = Relay()
    with relay_running(relay) as port:  # no tls_context: no STARTTLS in EHLO
        result = await smtp(port, starttls=True).deliver(email_out())
    assert (result.ok, result.reason, result.attempts) == (False, "starttls_unavailable", 1)
    assert relay.data_commands == 0


@pytest.mark.asyncio
async def test_login_after_starttls(certificate: tuple[Path, Path]) -> None:
    def authenticator(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        good = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"notifier",
            b"pa55",
        )
        return AuthResult(success=good, handled=False)  # handled=False: the server answers 535

    relay = Relay()
    options = tls_options(certificate) | {"authenticator": authenticator, "auth_required": True}
    with relay_running(relay, **options) as port:
        tls = {"starttls": True, "ssl_context": trusting(certificate), "username": "notifier"}
        good = smtp(port, **tls, password="pa55")  # noqa: S106  # a test password
        bad = smtp(port, **tls, password="wrong")  # noqa: S106  # a test password
        accepted = await good.deliver(email_out())
        rejected = await bad.deliver(email_out())
    assert (accepted.ok, accepted.attempts) == (True, 1)
    assert (rejected.ok, rejected.reason, rejected.attempts) == (False, "smtp_535", 1)
    assert len(relay.received) == 1
