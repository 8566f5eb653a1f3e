"""A real SMTP server on 127.0.0.1 that keeps what it receives: the test suite's and the demo's mail box.

The re-consent campaign is tested against a real server, not a mock, so that what is checked is
what an SMTP client actually sends (envelope recipients, headers, MIME parts). ``MailSink`` wraps
aiosmtpd's ``Controller`` (a server in its own thread) on a free port:

    with MailSink() as sink:
        SmtpMailer(sink.host, sink.port) ...
        sink.messages  # [Received(sender, recipients, message: EmailMessage), ...]

It can be told to refuse recipients at RCPT, permanently (``refuse``: 550) or temporarily
(``defer``: 451), the two answers a real relay gives that the campaign must tell apart; to
refuse one recipient's message at DATA (``refuse_content``: 554, a content rejection); or to
refuse every recipient (``deny_relay``: 554 relay denied, a server-wide fault).

aiosmtpd logs every envelope (recipients included) on its ``mail.log`` logger at INFO: the
sink sets it to WARNING, so that no address reaches a test's or the demo's log.

Run it on its own (``python scripts/mail_sink.py --port 2525``) to point Airflow's
``smtp_default`` connection at it and watch what a campaign or an alert sends: it prints each
message's number of recipients and its subject (``shown``), never an address - its output is a
container's log, kept and read like any other.
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

PERMANENT_REFUSAL = "550 5.1.1 Mailbox unavailable"
TEMPORARY_REFUSAL = "451 4.3.0 Mailbox temporarily unavailable, try again later"
CONTENT_REFUSAL = "554 5.7.1 Message rejected by recipient policy"
RELAY_DENIED = "554 5.7.1 Relay access denied"

logging.getLogger("mail.log").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Received:
    """One message as the server took it: the envelope (sender, recipients) and the parsed message."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage


class _Handler:
    """aiosmtpd handler: answers RCPT from the sink's refusal lists and keeps each message."""

    def __init__(self, sink: MailSink) -> None:
        self._sink = sink

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd calls
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self._sink.refusal_for(address)
        if refusal is None and self._sink.relay_denied:
            refusal = RELAY_DENIED
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if any(self._sink.content_refused(a) for a in envelope.rcpt_tos):
            return CONTENT_REFUSAL
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        self._sink.keep(Received(envelope.mail_from, tuple(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class MailSink:
    """An SMTP server that keeps every message; a context manager (started on enter, stopped on exit)."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, smtputf8: bool = True) -> None:
        """``smtputf8=False``: a server that does not take non-ASCII addresses, as many relays."""
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._refusals: dict[str, str] = {}
        self._content_refusals: set[str] = set()
        self.relay_denied = False
        self._controller = Controller(_Handler(self), hostname=host, port=self.port, enable_SMTPUTF8=smtputf8)

    # --- what the server answers -------------------------------------------------------------
    def refuse(self, *addresses: str) -> None:
        """Refuse these recipients permanently (550 at RCPT), as a relay does for an unknown mailbox."""
        self._set_refusal(addresses, PERMANENT_REFUSAL)

    def defer(self, *addresses: str) -> None:
        """Refuse these recipients for now (451 at RCPT): the sender should try again later."""
        self._set_refusal(addresses, TEMPORARY_REFUSAL)

    def refuse_content(self, *addresses: str) -> None:
        """Accept these recipients at RCPT but refuse their message at DATA (554), as a relay
        does when its content filter rejects a message for one recipient."""
        with self._lock:
            self._content_refusals.update(a.lower() for a in addresses)

    def deny_relay(self, denied: bool = True) -> None:
        """Refuse every recipient (554 relay denied at RCPT): a misconfigured relay, not the people."""
        self.relay_denied = denied

    def accept(self, *addresses: str) -> None:
        """Accept these recipients again (undo ``refuse``, ``defer`` or ``refuse_content``)."""
        with self._lock:
            for address in addresses:
                self._refusals.pop(address.lower(), None)
                self._content_refusals.discard(address.lower())

    def content_refused(self, address: str) -> bool:
        with self._lock:
            return address.lower() in self._content_refusals

    def refusal_for(self, address: str) -> str | None:
        with self._lock:
            return self._refusals.get(address.lower())

    def _set_refusal(self, addresses: tuple[str, ...], reply: str) -> None:
        with self._lock:
            self._refusals.update({a.lower(): reply for a in addresses})

    # --- what it received --------------------------------------------------------------------
    def keep(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    @property
    def messages(self) -> list[Received]:
        """Every message received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    def to(self, address: str) -> list[Received]:
        """The messages whose envelope names this recipient."""
        wanted = address.lower()
        return [r for r in self.messages if wanted in (a.lower() for a in r.recipients)]

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    # --- lifetime ----------------------------------------------------------------------------
    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def shown(number: int, received: Received) -> str:
    """The line printed for the ``number``-th message: how many recipients and the subject, no
    address (the envelope's recipients are people's addresses)."""
    count = len(received.recipients)
    return f"-- message {number}, {count} recipient{'s' if count != 1 else ''}: {received.message['Subject']}"


def main() -> None:
    parser = argparse.ArgumentParser(description="Run an SMTP sink that prints what it receives.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args()
    with MailSink(args.host, args.port) as sink:
        print(f"SMTP sink listening on {sink.host}:{sink.port} (Ctrl-C to stop)", flush=True)
        printed = 0
        try:
            while True:
                time.sleep(0.5)
                received = sink.messages
                for number, one in enumerate(received[printed:], start=printed + 1):
                    print(shown(number, one), flush=True)
                printed = len(received)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
