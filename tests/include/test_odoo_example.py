"""The Odoo example policy (examples/odoo/retention_policy.yaml) on a synthetic Odoo
schema: Odoo's own table and column names, a handful of partners built to exercise each
construct, and the exact outcome expected for every row.

On PostgreSQL the timestamps are naive UTC, as Odoo stores them (``naive_timezone: UTC``);
on SQLite, which cannot convert between zones, they are stored as Paris wall-clock time
and the policy's ``naive_timezone`` is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from engine_helpers import archive_rows, ids, run_category, schema_metadata
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    insert,
)

from include.retention.database.target import Target, connect
from include.retention.policy.load import parse_policy
from scripts.throwaway_postgres import fresh_postgres_database

POLICY_FILE = Path(__file__).resolve().parents[2] / "examples" / "odoo" / "retention_policy.yaml"
PARIS, UTC = ZoneInfo("Europe/Paris"), ZoneInfo("UTC")
AS_OF = date(2026, 11, 26)
ORDER = ("prospection", "customer_relationship", "accounting", "suppliers")  # the crons' order
INTERNAL = 100  # the partner of an internal user: never governed

# id: (customer_rank, supplier_rank, partner_share, create_date)
PARTNERS = {
    1: (0, 0, True, date(2019, 3, 1)),  # prospect, wrote on 2023-11-26 (exact boundary): archived
    2: (0, 0, True, date(2019, 3, 1)),  # prospect, wrote on 2023-11-27 (one day short): active
    3: (0, 0, True, date(2019, 3, 1)),  # prospect, commented on 2023-11-25 (one day past): archived
    4: (0, 0, True, date(2020, 2, 29)),  # prospect who never wrote; we did: clock = creation (leap day)
    5: (2, 0, True, date(2015, 1, 1)),  # customer, last posted invoice 2022-06-30: archived
    6: (1, 0, True, date(2015, 1, 1)),  # customer with a running subscription: active
    7: (0, 1, True, date(2012, 1, 1)),  # supplier, last bill 2017-01-15: expired, kept for its bill
    8: (1, 1, True, date(2012, 1, 1)),  # customer and supplier: a customer (precedence)
    9: (0, 0, True, date(2026, 1, 1)),  # recent prospect: active
    INTERNAL: (0, 0, False, date(2010, 1, 1)),
}
# id: (author_id, message_type, when (Paris wall time))
MESSAGES = {
    11: (1, "email", datetime(2023, 11, 26, 23, 30)),  # 22:30 UTC: still the 26th, in Paris and in UTC
    21: (2, "email", datetime(2023, 11, 27, 0, 30)),  # 23:30 UTC on the 26th: the 27th in Paris
    31: (3, "comment", datetime(2023, 11, 25, 9, 0)),
    41: (INTERNAL, "email", datetime(2025, 5, 5, 10, 0)),  # our e-mail to partner 4: not their contact
    42: (INTERNAL, "notification", datetime(2025, 6, 1, 10, 0)),
}
LEADS = {101: 1, 109: 9}
# id: (partner_id, date_order, state, subscription_state, end_date)
ORDERS = {
    501: (5, date(2022, 5, 1), "sale", None, None),
    601: (6, date(2016, 1, 1), "sale", "3_progress", None),
}
# id: (partner_id, move_type, state, date, lines)
MOVES = {
    51: (5, "out_invoice", "posted", date(2022, 6, 30), 2),
    52: (5, "out_invoice", "draft", date(2024, 1, 10), 1),  # a draft does not extend the relationship
    61: (6, "out_invoice", "posted", date(2015, 2, 2), 1),
    71: (7, "in_invoice", "posted", date(2017, 1, 15), 1),
    81: (8, "out_invoice", "posted", date(2019, 5, 5), 1),
    90: (None, "entry", "posted", date(2010, 1, 1), 1),  # no partner: not personal data, never touched
}


def odoo_policy(sqlite: bool):
    data = yaml.safe_load(POLICY_FILE.read_text())
    if sqlite:
        data.pop("naive_timezone", None)
    return parse_policy(data, source=str(POLICY_FILE))


def _stamp(wall: datetime | date, sqlite: bool) -> datetime:
    """A Paris wall-clock moment as Odoo would store it: naive UTC (or Paris time on SQLite)."""
    moment = wall if isinstance(wall, datetime) else datetime.combine(wall, time(10))
    return moment if sqlite else moment.replace(tzinfo=PARIS).astimezone(UTC).replace(tzinfo=None)


def create_odoo(target) -> None:
    md, prefix = schema_metadata(target, "public")
    fk = lambda ref: ForeignKey(prefix + ref)  # noqa: E731
    partner = Table(
        "res_partner",
        md,
        Column("id", Integer, primary_key=True),
        Column("name", String(80)),
        Column("email", String(120)),
        Column("phone", String(30)),
        Column("mobile", String(30)),
        Column("vat", String(20)),
        Column("zip", String(10)),
        Column("city", String(60)),
        Column("is_company", Boolean),
        Column("partner_share", Boolean),
        Column("customer_rank", Integer),
        Column("supplier_rank", Integer),
        Column("comment", Text),
        Column("create_date", DateTime),
    )
    message = Table(
        "mail_message",
        md,
        Column("id", Integer, primary_key=True),
        Column("model", String(64)),
        Column("res_id", Integer),
        Column("author_id", Integer, fk("res_partner.id")),
        Column("message_type", String(20)),
        Column("subject", String(200)),
        Column("body", Text),
        Column("date", DateTime),
    )
    lead = Table(
        "crm_lead",
        md,
        Column("id", Integer, primary_key=True),
        Column("partner_id", Integer, fk("res_partner.id")),
        Column("type", String(20)),
        Column("email_from", String(120)),
        Column("description", Text),
        Column("create_date", DateTime),
        Column("date_closed", DateTime),
    )
    order = Table(
        "sale_order",
        md,
        Column("id", Integer, primary_key=True),
        Column("name", String(20)),
        Column("partner_id", Integer, fk("res_partner.id")),
        Column("date_order", DateTime),
        Column("state", String(20)),
        Column("subscription_state", String(20)),
        Column("end_date", Date),
        Column("amount_total", Numeric(12, 2)),
    )
    move = Table(
        "account_move",
        md,
        Column("id", Integer, primary_key=True),
        Column("name", String(30)),
        Column("partner_id", Integer, fk("res_partner.id")),
        Column("move_type", String(20)),
        Column("state", String(20)),
        Column("invoice_date", Date),
        Column("date", Date),
        Column("amount_total", Numeric(12, 2)),
    )
    line = Table(
        "account_move_line",
        md,
        Column("id", Integer, primary_key=True),
        Column("move_id", Integer, fk("account_move.id")),
        Column("partner_id", Integer, fk("res_partner.id")),
        Column("name", String(80)),
        Column("price_subtotal", Numeric(12, 2)),
    )
    md.create_all(target.engine)
    sqlite = target.is_sqlite
    rows = {
        partner: [
            {
                "id": pid,
                "name": f"Partenaire {pid}",
                "email": f"contact{pid}@example.fr",
                "phone": "0102030405",
                "customer_rank": c,
                "supplier_rank": s,
                "partner_share": share,
                "is_company": False,
                "create_date": _stamp(created, sqlite),
            }
            for pid, (c, s, share, created) in PARTNERS.items()
        ],
        message: [
            {
                "id": mid,
                "model": "res.partner",
                "res_id": author if author != INTERNAL else 4,
                "author_id": author,
                "message_type": kind,
                "subject": "Re: devis",
                "date": _stamp(when, sqlite),
            }
            for mid, (author, kind, when) in MESSAGES.items()
        ],
        lead: [
            {
                "id": lid,
                "partner_id": pid,
                "type": "lead",
                "email_from": f"contact{pid}@example.fr",
                "create_date": _stamp(date(2019, 3, 2), sqlite),
            }
            for lid, pid in LEADS.items()
        ],
        order: [
            {
                "id": oid,
                "name": f"S{oid}",
                "partner_id": pid,
                "date_order": _stamp(day, sqlite),
                "state": state,
                "subscription_state": sub,
                "end_date": end,
                "amount_total": 100,
            }
            for oid, (pid, day, state, sub, end) in ORDERS.items()
        ],
        move: [
            {
                "id": mid,
                "name": f"INV/{mid}",
                "partner_id": pid,
                "move_type": kind,
                "state": state,
                "invoice_date": day if kind != "entry" else None,
                "date": day,
                "amount_total": 120,
            }
            for mid, (pid, kind, state, day, _) in MOVES.items()
        ],
        line: [
            {"id": mid * 10 + k, "move_id": mid, "partner_id": pid, "name": "Licence", "price_subtotal": 100}
            for mid, (pid, _, _, _, n) in MOVES.items()
            for k in range(n)
        ],
    }
    with target.engine.begin() as conn:
        for table, data in rows.items():
            conn.execute(insert(table), data)


@pytest.fixture
def odoo(target):
    create_odoo(target)
    return target


def _run_all(target, as_of=AS_OF, suffix=""):
    policy = odoo_policy(target.is_sqlite)
    for key in ORDER:
        run_category(target, policy, as_of=as_of, category=key, run_id=f"{key}{suffix}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def odoo_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """An Odoo database per backend after one run of every category on ``AS_OF``, shared by
    the tests that only read it: each would otherwise run the whole policy again."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('odoo') / 'odoo.db'}"
    else:
        url = fresh_postgres_database(request.getfixturevalue("postgres_server"))
    target = connect(url, "archive")
    try:
        create_odoo(target)
        _run_all(target)
        yield target
    finally:
        target.dispose()


def _archived(target, table):
    return ids(target, table, archive=True, schema="public")


def test_odoo_policy_sorts_every_partner_into_its_phase(odoo_run):
    assert ids(odoo_run, "res_partner", schema="public") == [2, 6, 9, INTERNAL]
    assert _archived(odoo_run, "prospect_partner") == [1, 3, 4]
    assert _archived(odoo_run, "customer_partner") == [5, 8]
    assert _archived(odoo_run, "supplier_partner") == [7]  # expired in 2025, kept for its bill until 2027-01-15


def test_odoo_prospect_clock_counts_only_messages_the_prospect_wrote(odoo_run):
    prospects = {r["id"]: r for r in archive_rows(odoo_run, "prospect_partner")}
    assert prospects[1]["retention_start"] == date(2023, 11, 26)
    assert prospects[3]["retention_start"] == date(2023, 11, 25)
    assert prospects[4]["retention_start"] == date(2020, 2, 29)  # our e-mail of 2025 does not count
    assert prospects[4]["retention_until"] == date(2028, 2, 28)
    assert _archived(odoo_run, "prospect_mail_message") == [11, 31]
    assert _archived(odoo_run, "prospect_crm_lead") == [101]


def test_odoo_customer_clock_is_the_last_posted_invoice_and_a_running_subscription_keeps_it_active(odoo_run):
    customers = {r["id"]: r for r in archive_rows(odoo_run, "customer_partner")}
    assert customers[5]["retention_start"] == date(2022, 6, 30)  # the 2024 draft does not count
    assert customers[8]["retention_start"] == date(2019, 5, 5)
    assert 6 in ids(odoo_run, "res_partner", schema="public")
    assert _archived(odoo_run, "customer_sale_order") == [501]


def test_odoo_accounting_documents_move_with_their_partner_on_their_own_clock(odoo_run):
    moves = {r["id"]: r for r in archive_rows(odoo_run, "account_move")}
    assert sorted(moves) == [51, 52, 71, 81]
    assert moves[51]["retention_until"] == date(2032, 6, 30)
    assert moves[71]["retention_until"] == date(2027, 1, 15)
    assert ids(odoo_run, "account_move", schema="public") == [61, 90]
    assert _archived(odoo_run, "account_move_line") == [510, 511, 520, 710, 810]


def test_odoo_supplier_leaves_the_archive_with_its_last_bill(odoo):
    _run_all(odoo)
    _run_all(odoo, as_of=date(2027, 1, 14), suffix="-2027-01-14")
    assert 7 in _archived(odoo, "supplier_partner")
    _run_all(odoo, as_of=date(2027, 1, 15), suffix="-2027-01-15")
    assert 7 not in _archived(odoo, "supplier_partner") and 71 not in _archived(odoo, "account_move")


def test_odoo_internal_users_and_partnerless_entries_are_never_touched(odoo):
    for year in (2026, 2030, 2040):
        _run_all(odoo, as_of=date(year, 11, 26), suffix=f"-{year}")
    assert INTERNAL in ids(odoo, "res_partner", schema="public")
    assert 90 in ids(odoo, "account_move", schema="public")
    assert [m for m in ids(odoo, "mail_message", schema="public") if m in (41, 42)] == [41, 42]


def test_odoo_policy_refuses_naive_utc_on_sqlite(tmp_path):
    from include.retention.database.check import check_against_database
    from include.retention.database.target import connect
    from include.retention.errors import PolicyError

    target = connect(f"sqlite:///{tmp_path / 'odoo.db'}")
    create_odoo(target)
    with target.read() as conn, pytest.raises(PolicyError, match="naive_timezone: SQLite cannot convert"):
        check_against_database(odoo_policy(sqlite=False), conn, "sqlite")
    target.dispose()


def test_the_example_file_is_a_valid_policy_and_declares_utc_storage():
    data = yaml.safe_load(POLICY_FILE.read_text())
    assert data["naive_timezone"] == "UTC"
    assert set(parse_policy(data).categories) == set(ORDER)
