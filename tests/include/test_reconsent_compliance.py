"""The DPO report's "compliance today" and the re-consent promise, on both backends.

A due row of an asked table that the promise keeps (``schedule.waiting``: its address is
usable, no ask settled the promise, and today is less than ``notice_days`` past its period end)
is counted apart as waiting for re-consent: neither overdue nor a reason to call the table not
compliant, as the plan, the archive and the post-run gate see it. A row still there once the
window is over, or that nobody can ask, or whose ask settled the promise, is overdue as before.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from html import unescape

from engine_helpers import run_category
from reconsent_crash_run import AS_OF, KEY, NOTICE_DAYS, create_prospects, prospect_policy
from sqlalchemy import insert, text

from include.retention.database import store
from include.retention.database.identity import subject_hash
from include.retention.database.target import Target
from include.retention.reports import dpo_render, dpo_report

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


def _compliance(target: Target) -> dpo_report.Compliance:
    report = dpo_report.build(target, prospect_policy(), *NOVEMBER, AS_OF)
    (prospects,) = [table for table in report.compliance if table.category == "prospection"]  # not the register's
    return prospects


def _plan_waiting(target: Target) -> int:
    """What a dry run's plan counts as waiting for re-consent today."""
    (table,) = run_category(target, prospect_policy(), AS_OF, category="prospection", dry_run=True).plan.tables
    return table.waiting_for_reconsent


def _compliance_row(page: str, heading: str) -> list[str]:
    """The cells of the prospects' row of the compliance table (the section under ``heading``;
    the other row is the rights register's)."""
    section = page.split(heading, 1)[1].split("<h2>", 1)[0]
    (row,) = [r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", section, re.S) if "<td" in r and "prospects" in r]
    return [unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def _ask(prospect: int, period_end: date, status: str, sent_at: datetime | None = None) -> dict:
    """One register row, as the campaign records it for a prospect and a period end."""
    return {
        "category": "prospection",
        "table_name": "prospects",
        "row_key": str(prospect),
        "period_end": period_end,
        "subject_hash": subject_hash(KEY, "email", f"p{prospect}@example.org"),
        "token_id": f"{prospect:032x}",
        "expires_on": period_end + timedelta(days=NOTICE_DAYS - 1),
        "status": status,
        "recorded_at": sent_at or datetime(2026, 10, 1, 10, tzinfo=UTC),
        "sent_at": sent_at,
        "run_id": "scheduled__reconsent",
        "policy_version": "prospects-1",
    }


def _record_asks(target: Target, rows: list[dict]) -> None:
    register = store.reconsent_table(target.archive_schema)
    with target.engine.begin() as conn:
        if not target.is_sqlite:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {target.archive_schema}"))
        store.ensure_table(conn, register)
        conn.execute(insert(register), rows)


def test_rows_waiting_for_the_ask_are_counted_apart_and_the_table_is_compliant(target):
    # Two prospects two and six days past their period end, with an address, no campaign yet:
    # the night's run keeps them for the ask.
    create_prospects(
        target, {1: ("a@example.org", AS_OF - timedelta(days=2)), 2: ("b@example.org", AS_OF - timedelta(days=6))}
    )
    run = run_category(target, prospect_policy(), AS_OF, category="prospection")
    assert run.summary["waiting_for_reconsent"] == 2

    prospects = _compliance(target)
    assert (prospects.overdue, prospects.waiting_for_reconsent, prospects.compliant) == (0, 2, True)

    report = dpo_report.build(target, prospect_policy(), *NOVEMBER, AS_OF)
    french, english = unescape(dpo_render.render(report)), unescape(dpo_render.render(report, "en"))
    assert "En attente de re-consentement" in french and "Waiting for re-consent" in english
    fr_row, en_row = _compliance_row(french, "3. Conformité"), _compliance_row(english, "3. Compliance")
    assert fr_row[-1] == "conforme" and en_row[-1] == "compliant"
    # Overdue, no start date, held, waiting for re-consent, expired in archive, legal hold.
    assert fr_row[4:10] == en_row[4:10] == ["0", "0", "0", "2", "0", "0"]
    assert "au plus 30 jours" in french and "at most 30 days" in english
    for page in (french, english):
        assert "@example.org" not in page


def test_a_row_the_promise_no_longer_keeps_is_overdue_as_before(target):
    day = timedelta(days=1)
    create_prospects(
        target,
        {
            1: ("p1@example.org", AS_OF - 29 * day),  # 29 days past: still waiting
            2: ("p2@example.org", AS_OF - 30 * day),  # the window is over today: tonight's run archived it
            3: ("p3@example.org", AS_OF - 31 * day),  # more than the window: overdue
            4: (None, AS_OF - 2 * day),  # nobody to ask: not kept waiting
            5: ("   ", AS_OF - 2 * day),  # a blank address neither
            6: ("p6@example.org", AS_OF + 3 * day),  # not due yet
        },
    )
    prospects = _compliance(target)
    assert (prospects.overdue, prospects.waiting_for_reconsent, prospects.compliant) == (4, 1, False)
    assert prospects.waiting_for_reconsent == _plan_waiting(target)


def test_an_ask_that_settled_the_promise_lets_the_row_be_overdue(target):
    ended = AS_OF - timedelta(days=2)
    create_prospects(target, {pid: (f"p{pid}@example.org", ended) for pid in range(1, 6)})
    _record_asks(
        target,
        [
            _ask(1, ended, "failed"),  # refused for good
            _ask(2, ended, "suppressed"),  # on the suppression list: never asked
            _ask(3, ended, "sent", datetime(2026, 10, 26, 9, tzinfo=UTC)),  # sent 31 days ago: promise kept
            _ask(4, ended, "sent", datetime(2026, 11, 16, 9, tzinfo=UTC)),  # sent 10 days ago: still waiting
            # 5: not asked yet, waits for the campaign
        ],
    )
    prospects = _compliance(target)
    assert (prospects.overdue, prospects.waiting_for_reconsent, prospects.compliant) == (3, 2, False)
    assert prospects.waiting_for_reconsent == _plan_waiting(target)
