"""The SMTP channel: send the rendered e-mail through the institution's mail relay.

Stdlib ``smtplib`` in a worker thread (no extra dependency). Every message carries a
deterministic ``Message-ID: <nudge id@engagement-stream>`` so a repeat can be spotted, an
``X-Engagement-Nudge-Id`` header and ``Auto-Submitted: auto-generated`` (RFC 3834). With
``starttls=True`` the connection is upgraded before anything else is sent, and a server that
does not offer STARTTLS is a final failure: we never fall back to clear text. Connection
errors, timeouts and 4xx replies are retried with backoff and jitter; 5xx replies are final.
"""

from __future__ import annotations

import asyncio
import random
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from schemas.errors import EngagementError
from sinks.channels.breaker import CircuitBreaker
from sinks.channels.outbound import CIRCUIT_OPEN, DeliveryResult, Outbound, backoff_delay

FALLBACK_SUBJECT = "A message from your university"
MESSAGE_ID_DOMAIN = "engagement-stream"


class _NoStartTls(EngagementError):
    """The server did not offer STARTTLS although it was required."""


@dataclass(frozen=True)
class _Attempt:
    """How one attempt ended: accepted, or failed finally or transiently."""

    ok: bool
    reason: str
    code: int | None
    final: bool


def _reply(code: int) -> _Attempt:
    """An SMTP error reply: 5xx is final, anything else (4xx, no code) is worth retrying."""
    if code <= 0:  # smtplib's -1: the server sent no parsable reply
        return _Attempt(False, "smtp_no_reply", None, final=False)
    return _Attempt(False, f"smtp_{code}", code, final=500 <= code < 600)


def _failure(exc: Exception) -> _Attempt:
    """What an exception from one attempt means for the delivery."""
    if isinstance(exc, _NoStartTls):
        return _Attempt(False, "starttls_unavailable", None, final=True)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return _reply(min((code for code, _ in exc.recipients.values()), default=-1))
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply(exc.smtp_code)
    if isinstance(exc, smtplib.SMTPNotSupportedError):  # e.g. AUTH not offered
        return _Attempt(False, "smtp_not_supported", None, final=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _Attempt(False, "tls_certificate_rejected", None, final=True)
    # smtplib turns a read timeout into SMTPServerDisconnected; the cause survives only as
    # the exception's context.
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return _Attempt(False, "timeout", None, final=False)
    return _Attempt(False, f"connection_error:{type(exc).__name__}", None, final=False)


def compose(out: Outbound, sender: str) -> EmailMessage:
    """The e-mail for ``out``: plain text, deterministic Message-ID, marked as automated."""
    if out.address is None:
        msg = "an e-mail needs an address"
        raise ValueError(msg)
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = out.address
    mail["Subject"] = out.message.subject or FALLBACK_SUBJECT
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = f"<{out.nudge_id}@{MESSAGE_ID_DOMAIN}>"
    mail["X-Engagement-Nudge-Id"] = out.nudge_id
    mail["Auto-Submitted"] = "auto-generated"
    # Asks Exchange/Outlook not to send out-of-office and similar automatic replies.
    mail["X-Auto-Response-Suppress"] = "All"
    mail.set_content(out.message.body)
    return mail


class SmtpChannel:
    """Sends one e-mail per delivery, with bounded retries, behind a circuit breaker."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        starttls: bool,
        username: str | None,
        password: str | None,
        timeout_s: float,
        attempts: int,
        backoff_s: float = 0.25,
        max_backoff_s: float = 5.0,
        breaker: CircuitBreaker | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if attempts < 1:
            msg = f"attempts must be at least 1, got {attempts}"
            raise ValueError(msg)
        self.host = host
        self.port = port
        self.sender = sender
        self.starttls = starttls
        self.username = username
        self._password = password
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.ssl_context = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._jitter = random.Random()  # noqa: S311  # jitter, not security

    async def close(self) -> None:
        """Nothing to release: each delivery opens and closes its own connection."""

    async def deliver(self, out: Outbound) -> DeliveryResult:
        """Send ``out`` as an e-mail to ``out.address``; never raise for a delivery failure."""
        if out.address is None:
            return DeliveryResult(False, "no_address", 0)
        try:
            mail = compose(out, self.sender)
        except ValueError as exc:  # e.g. a line break in a header value
            return DeliveryResult(False, f"invalid_message:{exc}", 0)
        if not self.breaker.allow():
            return DeliveryResult(False, CIRCUIT_OPEN, 0)
        result, service_down = await self._attempt_all(mail, out.address)
        # A final 5xx proves the relay is up: it counts as an answer, not as an outage.
        if service_down:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        return result

    async def _attempt_all(self, mail: EmailMessage, to: str) -> tuple[DeliveryResult, bool]:
        """The result, and whether it failed on a transient error (i.e. the relay looks down)."""
        last = _Attempt(False, "not_attempted", None, final=False)
        for attempt in range(1, self.attempts + 1):
            last = await asyncio.to_thread(self._attempt, mail, to)
            if last.ok or last.final:
                return DeliveryResult(last.ok, last.reason, attempt, last.code), False
            if attempt < self.attempts:
                delay = backoff_delay(attempt, self.backoff_s, self.max_backoff_s, self._jitter)
                await asyncio.sleep(delay)
        return DeliveryResult(False, last.reason, self.attempts, last.code), True

    def _attempt(self, mail: EmailMessage, to: str) -> _Attempt:
        """One attempt, in a worker thread."""
        try:
            self._session(mail, to)
        except (_NoStartTls, smtplib.SMTPException, OSError) as exc:
            return _failure(exc)
        return _Attempt(True, "accepted", 250, final=True)

    def _session(self, mail: EmailMessage, to: str) -> None:
        """Connect, upgrade, log in, send, quit; raises what smtplib raises."""
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        try:
            smtp.ehlo_or_helo_if_needed()
            if self.starttls:
                if not smtp.has_extn("starttls"):
                    raise _NoStartTls
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
            if self.username is not None:
                smtp.login(self.username, self._password or "")
            smtp.send_message(mail, from_addr=self.sender, to_addrs=[to])
        except BaseException:
            smtp.close()
            raise
        # Accepted. A failing QUIT must not turn this into a failure (and then a repeat).
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
