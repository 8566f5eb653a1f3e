"""Prospects to ask for re-consent, and a campaign in a process of its own that stops at an
outbox step and waits there to be killed: the re-consent crash tests' victim.

    python reconsent_crash_run.py URL SMTP_PORT POINT N MARKER

runs the ``prospection`` campaign (``PROSPECT_POLICY``) on the database at URL, sending to
127.0.0.1:SMTP_PORT. At the N-th notice it writes MARKER and sleeps, so that the test can
SIGKILL it exactly there:

* ``before_send``: the ask is recorded and marked ``sending``, the notice not yet handed over;
* ``after_send``: the server has accepted the notice, the ask is not yet marked ``sent``.

The test module imports the policy, the table and the key from here too.
"""

from __future__ import annotations

import re
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE)]

from engine_helpers import create_rights_register, with_rights_register  # noqa: E402
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, text  # noqa: E402

from include.retention.database.identity import SubjectKey  # noqa: E402
from include.retention.database.target import Target, connect  # noqa: E402
from include.retention.policy.load import parse_policy  # noqa: E402
from include.retention.policy.model import RetentionPolicy  # noqa: E402
from include.retention.reconsent import tokens  # noqa: E402
from include.retention.reconsent.campaign import CampaignResult, run_campaign  # noqa: E402
from include.retention.reconsent.mailer import SmtpMailer  # noqa: E402
from include.retention.reconsent.notice import Notice  # noqa: E402
from include.retention.records.audit import RunContext  # noqa: E402

PARIS = ZoneInfo("Europe/Paris")
AS_OF = date(2026, 11, 26)
KEY = SubjectKey("reconsent-test-key-0123456789abcdef0123456789", "the tests")
ACTIVE_YEARS = 3
NOTICE_DAYS = 30

PROSPECT_POLICY: dict[str, Any] = {
    "version": "prospects-1",
    "source_schema": "shop",
    "archive_schema": "archive",
    "rights_register": "rights_requests",  # where a 'no' is recorded, as an opposition
    "categories": {
        "prospection": {
            "label": {"fr": "Prospection commerciale", "en": "Commercial prospecting"},
            "legal_basis": "Intérêt légitime",
            "archive_purpose": "Probatoire",
            "schedule": "0 2 * * *",
            "active_period": f"P{ACTIVE_YEARS}Y",
            "archive_period": "P2Y",
            "end_action": "delete",
            "deleted_on": ["opposition"],
            "reconsent": {
                "address_column": "email",
                "notice_days": NOTICE_DAYS,
                "sender": "Service données personnelles <rgpd@example.fr>",
                "answer_url": "https://www.example.fr/consentement",
                "batch_size": 3,
            },
            "tables": [
                {
                    "table": "prospects",
                    "primary_key": "prospect_id",
                    "start_event": {"column": "last_inbound_contact_at", "when_missing": "defect"},
                    "archive_columns": ["email", "last_inbound_contact_at"],
                    "subject_identifiers": {"email": ["email"]},
                }
            ],
        }
    },
}


def prospect_policy() -> RetentionPolicy:
    return parse_policy(with_rights_register(PROSPECT_POLICY), source="prospects.yaml")


def contact_for(period_end: date) -> datetime:
    """The last contact (10:00 in Paris) whose active period ends on ``period_end``."""
    start = period_end.replace(year=period_end.year - ACTIVE_YEARS)
    return datetime(start.year, start.month, start.day, 10, tzinfo=PARIS)


def create_prospects(target: Target, rows: dict[int, tuple[str | None, date]]) -> Table:
    """``shop.prospects`` (SQLite: the main database) holding ``id: (email, period end)``."""
    schema = None if target.is_sqlite else "shop"
    with target.engine.begin() as conn:
        if schema:
            conn.execute(text("CREATE SCHEMA IF NOT EXISTS shop"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgcrypto"))
    prospects = Table(
        "prospects",
        MetaData(schema=schema),
        Column("prospect_id", Integer, primary_key=True),
        Column("email", String(200)),
        Column("last_inbound_contact_at", DateTime(timezone=True)),
    )
    prospects.create(target.engine)
    create_rights_register(target, "shop")  # where prospect_policy's "no" is recorded
    with target.engine.begin() as conn:
        conn.execute(
            insert(prospects),
            [
                {"prospect_id": pid, "email": email, "last_inbound_contact_at": contact_for(end)}
                for pid, (email, end) in rows.items()
            ],
        )
    return prospects


def window_rows(count: int) -> dict[int, tuple[str | None, date]]:
    """``count`` prospects whose period ends within the window, each with an address."""
    return {pid: (f"prospect{pid}@example.org", AS_OF + timedelta(days=pid)) for pid in range(1, count + 1)}


def campaign(
    target: Target, port: int, *, run_id: str = "campaign-1", as_of: date = AS_OF, mailer: Any = None
) -> CampaignResult:
    """One campaign of ``prospection`` as of ``as_of``, through ``mailer`` or to the local server."""
    policy = prospect_policy()
    ctx = RunContext(run_id, "retention_reconsent", as_of, policy.version)
    if mailer is not None:
        return run_campaign(target, policy, "prospection", KEY, ctx, mailer)
    with SmtpMailer("127.0.0.1", port) as smtp:
        return run_campaign(target, policy, "prospection", KEY, ctx, smtp)


class _StopAt:
    """A mailer that stops (writes the marker, sleeps until killed) at the N-th notice."""

    def __init__(self, smtp: SmtpMailer, point: str, n: int, marker: Path) -> None:
        self.smtp, self.point, self.n, self.marker, self.seen = smtp, point, n, marker, 0

    def send(self, notice: Notice) -> None:
        self.seen += 1
        if self.seen == self.n and self.point == "before_send":
            self._stop()
        self.smtp.send(notice)
        if self.seen == self.n and self.point == "after_send":
            self._stop()

    def _stop(self) -> None:
        self.marker.write_text(self.point)
        time.sleep(600)


def notice_tokens(received: Any, key: SubjectKey = KEY) -> dict[str, str]:
    """The yes and no tokens of a received notice (``mail_sink`` message), read from the links
    of its plain-text part, by the answer each stands for."""
    text = received.message.get_body(("plain",)).get_content()
    found = [parse_qs(urlsplit(url).query)["token"][0] for url in re.findall(r"https://\S+", text)]
    return {tokens.read(key, token).answer: token for token in found}


def main(url: str, port: int, point: str, n: int, marker: str) -> None:
    target = connect(url, "archive")
    with SmtpMailer("127.0.0.1", port) as smtp:
        campaign(target, port, run_id="crashing-campaign", mailer=_StopAt(smtp, point, n, Path(marker)))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5])
