"""Handing a notice to an SMTP server, and reading what its refusal means for the ask.

The campaign only needs ``send(notice)``: the Airflow glue sends through the SMTP connection
of the policy (``retention_airflow.reconsent_tasks``), the tests and the demo through
``SmtpMailer`` to a local server. Both raise smtplib's exceptions, which ``classify`` reads:

* the server refused the recipient for good (5xx at RCPT): the person could not be asked
  (``failed``, which lets the archive go on);
* it refused the message for good at DATA (5xx, e.g. ``554 5.7.1`` from a content filter):
  a notice goes to one recipient only, so that refusal is about this person's message -
  ``failed`` too (a refusal of everyone is the campaign's circuit breaker's business);
* it cannot take this recipient's address at all (a non-ASCII address, the server without
  SMTPUTF8: ``send_message`` refuses before RCPT, ``sendmail`` cannot encode the RCPT line):
  ``failed`` as a ``553 5.6.7`` refusal;
* it refused the recipient for now (4xx at RCPT, or at DATA): try again on the next run;
* anything else (the sender refused, the connection lost, a server that will not speak): the
  exception goes up, the task fails and Airflow retries it; the ask stays to be sent.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.utils import parseaddr
from types import TracebackType
from typing import Protocol

from include.retention.errors import scrub
from include.retention.reconsent.notice import Notice

SMTP_TIMEOUT_SECONDS = 30
NO_SMTPUTF8 = "5.6.7 non-ASCII address, and the server does not take them (no SMTPUTF8)"


class Mailer(Protocol):
    """Something that hands one notice to a mail server, raising smtplib's exceptions."""

    def send(self, notice: Notice) -> None: ...


@dataclass(frozen=True)
class Refusal:
    """A recipient refusal: permanent (5xx) or temporary (4xx), with the server's code and words
    (addresses removed: the server may quote the one it refused)."""

    code: int
    words: str

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.code} {self.words}".strip()


def classify(exc: BaseException, address: str = "") -> Refusal:
    """What a failed send says about the recipient, or ``exc`` raised again when it says
    nothing about them (sender refused, connection lost, protocol error: fail the task)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and len(exc.recipients) == 1:
        code, reply = next(iter(exc.recipients.values()))
        return _refusal(code, reply, address)
    if isinstance(exc, (smtplib.SMTPNotSupportedError, UnicodeEncodeError)) and not address.isascii():
        return Refusal(553, NO_SMTPUTF8)
    if isinstance(exc, smtplib.SMTPDataError) and 400 <= exc.smtp_code < 600:
        return _refusal(exc.smtp_code, exc.smtp_error, address)
    raise exc


def _refusal(code: int, reply: bytes | str, address: str) -> Refusal:
    words = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return Refusal(code, scrub(" ".join(words.split()), [address])[:200])


class SmtpMailer:
    """Sends through one SMTP connection (Python's smtplib), opened on ``with`` and closed after.

    ``send`` outside a ``with`` opens a connection for that one message."""

    def __init__(self, host: str, port: int, *, timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._client: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpMailer:
        self._client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()

    def send(self, notice: Notice) -> None:
        if self._client is None:
            with self:
                self.send(notice)
            return
        self._client.send_message(notice.as_email(), from_addr=_bare(notice.sender), to_addrs=[notice.to])


def _bare(sender: str) -> str:
    """The envelope sender: the address of ``Name <address>``."""
    return parseaddr(sender)[1] or sender
