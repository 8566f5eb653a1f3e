"""``scripts/mail_sink.py`` run on its own (the compose stack's ``mail-sink``) prints what it
receives without an address: its output is a container's log. Against the real server, with a
message sent over SMTP."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from scripts.mail_sink import MailSink, shown


def test_a_received_message_is_shown_by_its_count_of_recipients_and_subject() -> None:
    message = EmailMessage()
    message["From"] = "retention@example.fr"
    message["To"] = "alice.martin@example.fr"
    message["Subject"] = "[retention] task failed: retention_prospection"
    message.set_content("body")
    with MailSink() as sink:
        with smtplib.SMTP(sink.host, sink.port) as client:
            client.send_message(message, to_addrs=["alice.martin@example.fr", "bob.durand@example.fr"])
        (received,) = sink.messages
    line = shown(1, received)
    assert line == "-- message 1, 2 recipients: [retention] task failed: retention_prospection"
    assert "@" not in line
