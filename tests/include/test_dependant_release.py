"""Dependants that leave the active base on their parent's start event
(``archived_with.leaves_active: on_parent_event``).

The schedule: invoices kept for the accounting obligation leave the active base as soon as
the relationship that justified them ends (the purpose "manage the customer" is over), and
stay in billing's archive until their own horizon, 10 years from the invoice date. While one
is retained, the customer row it points at stays in the archive too. A row already past its
whole horizon is destroyed in the same run, whatever the order in which categories run.

The schema is an ERP's in miniature (as ``test_real_schemas``): one ``partners`` table for
prospects and customers (scopes, customers win), a customer's relationship ends with the
last line of its contracts (a line without an end keeps it ongoing), invoices point at
partners. Every expected place below comes from the schedule, worked out by hand on
2026-11-26, never from the engine.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import date, datetime
from html import unescape

import pytest
from engine_helpers import PARIS, archive_rows, audit_events, ids, run_whole, schema_metadata
from sqlalchemy import Boolean, Column, Date, DateTime, ForeignKey, Integer, String, Table, insert, text
from table_checksums import checksum

from include.retention.database.identity import SubjectKey
from include.retention.database.target import Target, connect
from include.retention.errors import PolicyError
from include.retention.policy.load import parse_policy
from include.retention.records.audit import RunContext
from scripts.throwaway_postgres import fresh_postgres_database

AS_OF = date(2026, 11, 26)
KEY = SubjectKey("k" * 40, "test")
CONTRACT_LINES = [
    {"table": "contracts", "foreign_key": "partner_id"},
    {"table": "contract_lines", "foreign_key": "contract_id"},
]

POLICY = {
    "version": "release-1",
    "source_schema": "rel",
    "precedence": ["customer_relationship", "prospection"],
    "categories": {
        "prospection": {
            "label": {"fr": "Prospects", "en": "Prospects"},
            "legal_basis": "Intérêt légitime",
            "archive_purpose": "Probatoire",
            "schedule": "0 2 * * *",
            "counted_from": {"fr": "la date du dernier contact du prospect", "en": "the prospect's last contact"},
            "active_period": "P3Y",
            "archive_period": "P5Y",
            "end_action": "delete",
            "tables": [
                {
                    "table": "partners",
                    "archive_table": "prospect_partners",
                    "primary_key": "partner_id",
                    "scope": {"column": "is_prospect", "equals": True},
                    "start_event": {"column": "created_at", "when_missing": "defect"},
                    "archive_columns": ["name"],
                    "subject_identifiers": {"email": ["email"]},
                }
            ],
        },
        "customer_relationship": {
            "label": {"fr": "Clients", "en": "Customers"},
            "legal_basis": "Contrat",
            "archive_purpose": "Probatoire",
            "schedule": "0 3 * * *",
            "counted_from": {"fr": "la fin de la relation contractuelle", "en": "the end of the relationship"},
            "active_period": "P3Y",
            "archive_period": "P5Y",
            "end_action": "delete",
            "tables": [
                {
                    "table": "partners",
                    "archive_table": "customer_partners",
                    "primary_key": "partner_id",
                    "scope": {"column": "is_customer", "equals": True},
                    "start_event": {
                        "when_missing": "defect",
                        "latest": {"column": "end_date", "path": CONTRACT_LINES},
                        "ongoing_if_open": {"column": "end_date", "path": CONTRACT_LINES},
                    },
                    "archive_columns": ["name"],
                    "subject_identifiers": {"email": ["email"]},
                    "children": [
                        {
                            "table": "contracts",
                            "primary_key": "contract_id",
                            "foreign_key": "partner_id",
                            "children": [
                                {
                                    "table": "contract_lines",
                                    "primary_key": "line_id",
                                    "foreign_key": "contract_id",
                                    "archive_columns": ["end_date"],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
        "billing": {
            "label": {"fr": "Facturation", "en": "Billing"},
            "legal_basis": "Obligation légale",
            "archive_purpose": "Obligation comptable (10 ans)",
            "schedule": "0 4 * * *",
            "counted_from": {"fr": "la date de la facture", "en": "the invoice date"},
            "active_period": "P0D",
            "archive_period": "P10Y",
            "end_action": "delete",
            "on_erasure": "keep",
            "tables": [
                {
                    "table": "invoices",
                    "primary_key": "invoice_id",
                    "start_event": {"column": "invoice_date", "when_missing": "defect"},
                    "archived_with": {
                        "table": "partners",
                        "foreign_key": "partner_id",
                        "leaves_active": "on_parent_event",
                    },
                    "archive_columns": ["number", "invoice_date"],
                    "children": [
                        {
                            "table": "invoice_lines",
                            "primary_key": "line_id",
                            "foreign_key": "invoice_id",
                            "archive_columns": ["amount"],
                        }
                    ],
                }
            ],
        },
    },
}

# partner_id: (is_prospect, is_customer, created_at, end dates of the lines of its one contract)
PARTNERS = {
    1: (False, True, date(2015, 1, 1), [date(2026, 11, 25)]),  # ended yesterday
    2: (False, True, date(2015, 1, 1), [date(2020, 1, 1), date(2026, 11, 26)]),  # ends today
    3: (False, True, date(2015, 1, 1), [date(2026, 11, 27)]),  # ends tomorrow
    4: (False, True, date(2015, 1, 1), [date(2020, 1, 1), None]),  # an open line: ongoing
    5: (False, True, date(2015, 1, 1), [date(2026, 1, 10)]),  # ended this year
    6: (False, True, date(2008, 1, 1), [date(2018, 6, 30)]),  # its own horizon reached 2026-06-30
    7: (False, True, date(2008, 1, 1), [date(2018, 6, 30)]),  # same, but an invoice is retained
    8: (False, True, date(2015, 1, 1), [date(2025, 1, 1)]),  # ended; its invoice is undated
    9: (False, True, date(2015, 1, 1), [date(2025, 1, 1)]),  # ended (held in some tests)
    10: (False, True, date(2015, 1, 1), [date(2025, 1, 1)]),  # ended (one invoice held in some tests)
    12: (True, True, date(2019, 1, 1), [None]),  # prospect and customer: ongoing customer
    13: (True, False, date(2025, 1, 1), []),  # a prospect only, since 2025-01-01
    14: (False, True, date(2015, 1, 1), []),  # a customer with no line: a defect
}
# invoice_id: (partner_id, invoice date, number of lines)
INVOICES = {
    11: (1, date(2024, 5, 2), 2),
    21: (2, date(2025, 1, 15), 1),
    31: (3, date(2025, 1, 15), 1),
    41: (4, date(2015, 1, 1), 1),  # past its 10 years, but its relationship is ongoing
    51: (5, date(2016, 6, 30), 1),  # horizon 2026-06-30: destroyed the run it leaves
    52: (5, date(2020, 1, 1), 1),  # kept until 2030-01-01
    61: (6, date(2016, 1, 15), 1),  # horizon 2026-01-15: destroyed; customer 6 with it
    71: (7, date(2018, 3, 1), 1),  # kept until 2028-03-01: keeps customer 7 in the archive
    81: (8, None, 1),  # no date: moves undated, reported
    91: (9, date(2024, 1, 1), 1),
    101: (10, date(2024, 1, 1), 1),
    102: (10, date(2024, 2, 1), 1),
    121: (12, date(2020, 1, 1), 1),
    131: (13, date(2025, 6, 1), 1),
    141: (14, date(2024, 1, 1), 1),
}

# Where every partner and invoice is after one run of every category on AS_OF, by the schedule.
ACTIVE, GONE = "active", "gone"
EXPECTED_PARTNERS = {
    1: ACTIVE,
    2: ACTIVE,
    3: ACTIVE,
    4: ACTIVE,
    5: ACTIVE,
    6: GONE,
    7: "customer_partners",
    8: ACTIVE,
    9: ACTIVE,
    10: ACTIVE,
    12: ACTIVE,
    13: ACTIVE,
    14: ACTIVE,
}
EXPECTED_INVOICES = {
    11: "invoices",
    21: "invoices",
    31: ACTIVE,
    41: ACTIVE,
    51: GONE,
    52: "invoices",
    61: GONE,
    71: "invoices",
    81: "invoices",
    91: "invoices",
    101: "invoices",
    102: "invoices",
    121: ACTIVE,
    131: "invoices",
    141: ACTIVE,
}


def release_policy(leaves_active: str | None = "on_parent_event", **billing_changes) -> dict:
    data = copy.deepcopy(POLICY)
    link = data["categories"]["billing"]["tables"][0]["archived_with"]
    if leaves_active is None:
        del link["leaves_active"]
    else:
        link["leaves_active"] = leaves_active
    data["categories"]["billing"].update(billing_changes)
    return data


def create_schema(target, parent_schema: str = "rel") -> None:
    """The ERP's tables in ``rel``; partners and their contracts in ``parent_schema``."""
    md, prefix = schema_metadata(target, "rel")
    parent_prefix, there = prefix, {}
    if parent_schema != "rel":  # PostgreSQL only: SQLite has one schema
        parent_prefix, there = schema_metadata(target, parent_schema)[1], {"schema": parent_schema}
    partners = Table(
        "partners",
        md,
        Column("partner_id", Integer, primary_key=True),
        Column("name", String(50)),
        Column("email", String(100)),
        Column("is_prospect", Boolean),
        Column("is_customer", Boolean),
        Column("created_at", DateTime(timezone=True)),
        **there,
    )
    # No foreign key: the policy declares the link (prospects share the table and have no contracts).
    contracts = Table(
        "contracts", md, Column("contract_id", Integer, primary_key=True), Column("partner_id", Integer), **there
    )
    lines = Table(
        "contract_lines",
        md,
        Column("line_id", Integer, primary_key=True),
        Column("contract_id", Integer, ForeignKey(parent_prefix + "contracts.contract_id")),
        Column("end_date", Date),
        **there,
    )
    invoices = Table(
        "invoices",
        md,
        Column("invoice_id", Integer, primary_key=True),
        Column("partner_id", Integer, ForeignKey(parent_prefix + "partners.partner_id"), nullable=False),
        Column("number", String(20)),
        Column("invoice_date", Date),
    )
    invoice_lines = Table(
        "invoice_lines",
        md,
        Column("line_id", Integer, primary_key=True),
        Column("invoice_id", Integer, ForeignKey(prefix + "invoices.invoice_id"), nullable=False),
        Column("amount", Integer),
    )
    md.create_all(target.engine)
    with target.engine.begin() as conn:
        for pid, (prospect, customer, created, ends) in PARTNERS.items():
            conn.execute(
                insert(partners).values(
                    partner_id=pid,
                    name=f"Partenaire {pid}",
                    email=f"p{pid}@example.fr",
                    is_prospect=prospect,
                    is_customer=customer,
                    created_at=datetime(created.year, created.month, created.day, 9, tzinfo=PARIS),
                )
            )
            if ends:
                conn.execute(insert(contracts).values(contract_id=pid * 10, partner_id=pid))
            for k, end in enumerate(ends):
                conn.execute(insert(lines).values(line_id=pid * 100 + k, contract_id=pid * 10, end_date=end))
        for invoice_id, (pid, day, count) in INVOICES.items():
            conn.execute(
                insert(invoices).values(
                    invoice_id=invoice_id, partner_id=pid, number=f"F-{invoice_id}", invoice_date=day
                )
            )
            conn.execute(
                insert(invoice_lines),
                [{"line_id": invoice_id * 10 + k, "invoice_id": invoice_id, "amount": 100} for k in range(count)],
            )


@pytest.fixture
def rel(target):
    create_schema(target)
    return target


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rel_after_billing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The schema after one billing run on ``AS_OF`` with ``release_policy()`` (run id
    ``billing-<AS_OF>``), per backend, shared by the tests that only read what that run left:
    each would otherwise seed the schema and run billing again."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('rel') / 'rel.db'}"
    else:
        url = fresh_postgres_database(request.getfixturevalue("postgres_server"))
    target = connect(url, "archive")
    try:
        create_schema(target)
        _run(target, parse_policy(release_policy()), "billing")
        yield target
    finally:
        target.dispose()


def _active(target, table):
    return ids(target, table, schema="rel")


def _archived(target, table):
    try:
        return ids(target, table, archive=True, schema="rel")
    except Exception:  # noqa: BLE001 - no archive table yet: nothing archived
        return []


def _hold(target, policy, table, keys, reference):
    from include.retention.records.holds import NewHold, add_hold

    add_hold(
        target,
        policy,
        NewHold(
            reference=reference, scope="rows", reason="litige en cours", created_by="juriste", table=table, keys=keys
        ),
        KEY,
        RunContext("manual__hold", "legal_hold", AS_OF, policy.version),
        date.today(),
    )


def _run(target, policy, category, as_of=AS_OF, run_id=None):
    return run_whole(target, policy, category, as_of, run_id or f"{category}-{as_of}", KEY)


def _places(target, table, archives):
    active = set(_active(target, table))
    archived = {name: set(_archived(target, name)) for name in archives}
    return active, archived


def _place_of(key, active, archived):
    found = ([ACTIVE] if key in active else []) + [name for name, keys in archived.items() if key in keys]
    return GONE if not found else (found[0] if len(found) == 1 else found)


# --- Invoices leave when the relationship ends ----------------------------------------------


def test_invoice_of_a_customer_whose_relationship_ended_yesterday_moves_to_billings_archive_today(rel_after_billing):
    rel = rel_after_billing
    assert 11 in _archived(rel, "invoices") and 11 not in _active(rel, "invoices")
    assert [k for k in _archived(rel, "invoice_lines") if k in (110, 111)] == [110, 111]
    (row,) = [r for r in archive_rows(rel, "invoices") if r["invoice_id"] == 11]
    # Its retention is its own: 10 years from the invoice date.
    assert (row["retention_start"], row["retention_until"]) == (date(2024, 5, 2), date(2034, 5, 2))
    assert 1 in _active(rel, "partners")  # the customer stays active: its own 3 years run
    assert _archived(rel, "customer_partners") == []


def test_relationship_ending_today_releases_its_invoices_and_one_ending_tomorrow_does_not(rel):
    policy = parse_policy(release_policy())
    _run(rel, policy, "billing")
    assert 21 in _archived(rel, "invoices")
    assert 31 in _active(rel, "invoices") and 31 not in _archived(rel, "invoices")
    _run(rel, policy, "billing", as_of=date(2026, 11, 27))
    assert 31 in _archived(rel, "invoices")


def test_an_invoice_stays_active_while_the_relationship_is_ongoing_or_its_end_unknown(rel_after_billing):
    """An open contract line keeps customer 4 ongoing: its invoice stays, even past its 10
    years (the relationship has not ended). Customer 14 has no line at all: its end is a
    defect, reported by the customer run; its invoice waits with it."""
    rel = rel_after_billing
    assert {41, 141} <= set(_active(rel, "invoices"))
    assert not {41, 141} & set(_archived(rel, "invoices"))


def test_an_invoice_past_its_ten_years_when_the_relationship_ends_is_destroyed_in_that_run(rel_after_billing):
    rel, policy = rel_after_billing, parse_policy(release_policy())
    assert 51 not in _active(rel, "invoices") + _archived(rel, "invoices")
    assert 52 in _archived(rel, "invoices") and 5 in _active(rel, "partners")
    deleted = [
        e
        for e in audit_events(rel, policy, run_id=f"billing-{AS_OF}")
        if e["action"] == "delete" and e["table_name"] == "invoices"
    ]
    assert [(e["category"], e["row_count"], e["details"]["same_run"]) for e in deleted] == [("billing", 2, 2)]


ORDERS = [
    ("billing", "customer_relationship", "prospection"),
    ("customer_relationship", "prospection", "billing"),
    ("prospection", "billing", "customer_relationship"),
]
# ``make test``: invoices first on SQLite, last on PostgreSQL; the convergence test of the ERP's
# released invoices (tests/include/test_convergence.py) runs them the other way round on each,
# so each backend sees both. Every other (backend, order) is marked ``deep`` (``make test-deep``).
QUICK_ORDERS = {("sqlite", ORDERS[0]), ("postgresql", ORDERS[1])}


@pytest.mark.parametrize(
    ("target_url", "order"),
    [
        pytest.param(
            backend,
            order,
            id=f"{backend}-{'>'.join(order)}",
            marks=() if (backend, order) in QUICK_ORDERS else pytest.mark.deep,
        )
        for backend in ("sqlite", "postgresql")
        for order in ORDERS
    ],
    indirect=["target_url"],
)
def test_one_run_of_every_category_reaches_the_schedule_in_any_order_and_a_second_changes_nothing(rel, order):
    """Customer 6 reached its own horizon and its only invoice too: both go in this run,
    whichever category runs first. Customer 7 also reached its own, but invoice 71 is
    retained until 2028-03-01: the customer stays in the archive with it."""
    policy = parse_policy(release_policy())
    for key in order:
        _run(rel, policy, key, run_id=f"first-{key}")
    active, archived = _places(rel, "partners", ["customer_partners", "prospect_partners"])
    assert {k: _place_of(k, active, archived) for k in PARTNERS} == EXPECTED_PARTNERS
    active, archived = _places(rel, "invoices", ["invoices"])
    assert {k: _place_of(k, active, archived) for k in INVOICES} == EXPECTED_INVOICES
    before = checksum(rel)
    for key in order:
        _run(rel, policy, key, run_id=f"again-{key}")
    assert checksum(rel) == before
    moved = [
        e
        for key in order
        for e in audit_events(rel, policy, run_id=f"again-{key}")
        if e["action"] in ("archive", "delete", "anonymize")
    ]
    assert moved == []


def test_a_customer_stays_in_the_archive_while_an_invoice_is_retained(rel):
    policy = parse_policy(release_policy())
    for key in ("billing", "customer_relationship"):
        _run(rel, policy, key)
    assert 7 in _archived(rel, "customer_partners") and 71 in _archived(rel, "invoices")
    for day, customers in [(date(2028, 2, 29), [7]), (date(2028, 3, 1), [])]:
        for key in ("customer_relationship", "billing"):
            _run(rel, policy, key, as_of=day)
        assert [c for c in _archived(rel, "customer_partners") if c == 7] == customers
    assert 71 not in _archived(rel, "invoices")


def test_an_undated_invoice_moves_undated_keeps_its_customer_and_is_reported(rel):
    policy = parse_policy(release_policy())
    _run(rel, policy, "billing")
    (row,) = [r for r in archive_rows(rel, "invoices") if r["invoice_id"] == 81]
    assert (row["retention_start"], row["retention_until"]) == (None, None)
    reported = [
        e
        for e in audit_events(rel, policy, run_id=f"billing-{AS_OF}", action="validation")
        if e["details"]["expectation"] == "archive_rows_have_a_start_date"
    ]
    assert [(e["table_name"], e["row_count"], e["details"]["success"]) for e in reported] == [("invoices", 1, False)]
    # Customer 8's own time comes (2028-01-01): it goes to the archive, where the undated invoice keeps it.
    later = date(2036, 1, 1)
    for key in ("customer_relationship", "billing"):
        _run(rel, policy, key, as_of=later)
    assert 8 in _archived(rel, "customer_partners") and 81 in _archived(rel, "invoices")


# --- Legal holds ----------------------------------------------------------------------------


def test_a_held_customer_keeps_its_invoices_active(rel):
    policy = parse_policy(release_policy())
    _hold(rel, policy, "partners", [9], "LIT-9")
    _run(rel, policy, "billing")
    assert 91 in _active(rel, "invoices") and 91 not in _archived(rel, "invoices")
    assert 11 in _archived(rel, "invoices")  # the others go as usual


def test_a_held_invoice_stays_active_and_its_sibling_leaves(rel):
    policy = parse_policy(release_policy())
    _hold(rel, policy, "invoices", [101], "LIT-101")
    _run(rel, policy, "billing")  # its post-run gate passes: a held invoice is not overdue
    assert 101 in _active(rel, "invoices") and 102 in _archived(rel, "invoices")


# --- A parent table several categories share ------------------------------------------------


def test_the_category_that_governs_the_parent_row_decides_when_its_invoices_leave(rel_after_billing):
    """Partner 12 is a prospect since 2019 and a customer whose relationship is ongoing: the
    customer category governs it (precedence), so its invoice stays. Partner 13 is only a
    prospect, whose clock started 2025-01-01: its invoice leaves, the prospect stays."""
    rel = rel_after_billing
    assert 121 in _active(rel, "invoices")
    assert 131 in _archived(rel, "invoices") and 13 in _active(rel, "partners")


# --- The default is today's behaviour ------------------------------------------------------


def test_by_default_an_invoice_waits_for_its_customer(rel):
    policy = parse_policy(release_policy(leaves_active=None))
    assert policy.categories["billing"].tables[0].archived_with.leaves_active == "with_parent"
    _run(rel, policy, "billing")
    assert _archived(rel, "invoices") == []


# --- Plan, gates, certificate, DPO report ----------------------------------------------------

RELEASED = {11, 21, 52, 71, 81, 91, 101, 102, 131}  # leave tonight and stay in the archive
DESTROYED = {51, 61}  # leave tonight past their horizon


def test_the_plan_counts_the_invoices_the_relationship_releases(rel):
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.plan import plan_category

    policy = parse_policy(release_policy())
    ctx = RunContext("plan-only", "retention_billing", AS_OF, policy.version, dry_run=True)
    plan = plan_category(StepContext.build(rel, policy, "billing", ctx))
    (table,) = plan.tables
    assert table.due_for_archive == len(RELEASED | DESTROYED)
    assert table.due_for_end_of_life == len(DESTROYED)
    assert table.children == {"invoice_lines": len(RELEASED | DESTROYED) + 1}  # invoice 11 has two lines
    assert table.held_open == 2  # 41 (open line) and 121 (ongoing customer): kept by an open related row
    assert _active(rel, "invoices") == sorted(INVOICES)  # a dry run moves nothing


def test_the_post_run_gate_fails_while_a_released_invoice_is_still_active(rel):
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.postflight import post_run_gate
    from include.retention.schedule.quality import QualityGateFailed

    policy = parse_policy(release_policy())
    ctx = RunContext("gate-only", "retention_billing", AS_OF, policy.version, dry_run=False)
    with pytest.raises(QualityGateFailed, match="no_overdue_active_rows"):
        post_run_gate(StepContext.build(rel, policy, "billing", ctx))
    overdue = [
        e
        for e in audit_events(rel, policy, run_id="gate-only", action="validation")
        if e["details"]["expectation"] == "no_overdue_active_rows"
    ]
    assert [(e["table_name"], e["row_count"]) for e in overdue] == [("invoices", len(RELEASED | DESTROYED))]


def test_the_pre_archive_gate_checks_the_parent_clock_the_release_reads(rel):
    """Billing's run reads the customers' contract lines: a line end far in the future (a
    typo) would release nothing today but is a wrong clock - billing's gate stops too."""
    from sqlalchemy import MetaData, update

    from include.retention.schedule.context import StepContext
    from include.retention.schedule.quality import QualityGateFailed, pre_archive_gate

    lines = Table("contract_lines", MetaData(), schema=None if rel.is_sqlite else "rel", autoload_with=rel.engine)
    with rel.engine.begin() as conn:
        conn.execute(update(lines).where(lines.c.line_id == 300).values(end_date=date(2999, 1, 1)))
    policy = parse_policy(release_policy())
    ctx = RunContext("gate-pre", "retention_billing", AS_OF, policy.version, dry_run=False)
    with pytest.raises(QualityGateFailed, match="no_future_end_date"):
        pre_archive_gate(StepContext.build(rel, policy, "billing", ctx))


def test_the_certificate_counts_released_and_destroyed_invoices(rel):
    from include.retention.database.store import audit_table
    from include.retention.reports import certificate

    policy = parse_policy(release_policy())
    _run(rel, policy, "billing", run_id="billing-cert")
    with rel.read() as conn:
        issued = certificate.build(conn, audit_table("archive", policy.audit_table), policy, "billing-cert")
    tables = {t.table: t for t in issued.tables}
    assert (tables["invoices"].archived, tables["invoices"].deleted) == (len(RELEASED | DESTROYED), len(DESTROYED))
    assert tables["invoices"].held == 2


def test_the_dpo_reports_schedule_says_until_the_relationship_ends_then_ten_years_from_the_invoice_date():
    from include.retention.reports.dpo_render import schedule_table

    policy = parse_policy(release_policy())
    english = unescape(schedule_table(policy, "en"))
    assert "until the prospect's last contact or the end of the relationship" in english
    assert "10 years from the invoice date" in english
    french = unescape(schedule_table(policy, "fr"))
    assert "jusqu'à la date du dernier contact du prospect ou la fin de la relation contractuelle" in french
    assert "10 ans à compter de la date de la facture" in french


def test_the_dpo_report_counts_released_invoices_still_active_as_overdue_until_the_run(rel):
    """Invoice 21's relationship ended today: tonight's run moves it, it is not overdue yet.
    The others released before today are; invoice 91, whose customer is held, is kept by the
    hold, not overdue. After billing's run nothing is overdue."""
    from include.retention.reports import dpo_report

    policy = parse_policy(release_policy())
    _hold(rel, policy, "partners", [9], "LIT-9")

    def billing():
        report = dpo_report.build(rel, policy, date(2026, 11, 1), date(2026, 11, 26), AS_OF)
        (row,) = [c for c in report.compliance if c.category == "billing"]
        return row

    before = billing()
    assert (before.overdue, before.legal_hold, before.held_open) == (len(RELEASED | DESTROYED) - 2, 1, 2)
    _run(rel, policy, "billing")
    after = billing()
    assert (after.overdue, after.legal_hold, after.expired_in_archive) == (0, 1, 0)


def test_the_dag_doc_says_when_an_invoice_leaves():
    from include.retention.reports.describe import category_doc

    policy = parse_policy(release_policy())
    doc = category_doc(policy, policy.categories["billing"], "en")
    assert "leaves the active base when the start event of its `partners` row has passed" in doc
    assert (
        "kept active until the start event of its `partners` row, then in the archive until 10 years from "
        "`invoice_date`, then deleted."
    ) in doc


# --- Erasure ---------------------------------------------------------------------------------


def test_erasing_an_active_customer_whose_invoices_sit_in_billings_archive_keeps_the_customer(rel):
    """Customer 1's invoice is in billing's archive (kept 10 years, on_erasure: keep): deleting
    the customer row would leave it pointing at nothing, so the row is kept and said why."""
    from include.retention.database.identity import Subject
    from include.retention.rights.erasure import erase

    policy = parse_policy(release_policy())
    _run(rel, policy, "billing")
    ctx = RunContext("manual__erase", "subject_request", AS_OF, policy.version)
    result = erase(rel, policy, Subject.of({"email": "p1@example.fr"}), KEY, ctx)
    (partner,) = [t for t in result.tables if t.table == "partners"]
    assert (partner.archive, partner.found, partner.erased) == (False, 1, 0)
    assert partner.kept_because.startswith("needed by kept rows")
    assert 1 in _active(rel, "partners") and 11 in _archived(rel, "invoices")
    # Customer 13 (a prospect) has its invoice archived too: kept; customer 3, whose invoice is
    # still active, is kept as before (the active invoice needs it).
    erased = erase(rel, policy, Subject.of({"email": "p3@example.fr"}), KEY, ctx)
    assert 3 in _active(rel, "partners") and [t.erased for t in erased.tables if t.table == "partners"] == [0]
    invoices = {r["invoice_id"]: r["partner_id"] for r in archive_rows(rel, "invoices")}
    assert set(invoices.values()) <= set(_active(rel, "partners")) | set(_archived(rel, "customer_partners"))


# --- Refusals ----------------------------------------------------------------------------------


def test_on_parent_event_from_a_table_with_no_start_event_is_refused_with_its_key_path():
    data = release_policy()
    data["categories"]["billing"]["tables"][0]["archived_with"]["table"] = "contracts"  # a child: no clock
    with pytest.raises(PolicyError, match=r"categories\.billing\.tables\[0\]\.archived_with\.leaves_active") as info:
        parse_policy(data)
    assert "contracts is not a root table (tables[]) of any other category" in str(info.value)


def test_an_unknown_leaves_active_value_is_refused_with_its_key_path():
    with pytest.raises(PolicyError, match=r"categories\.billing\.tables\[0\]\.archived_with\.leaves_active"):
        parse_policy(release_policy(leaves_active="when_parent_ends"))


def test_was_erased_lists_the_invoices_an_active_customer_has_in_billings_archive(rel):
    """The answer to "was X erased?" names every record kept about the person: an active
    customer's invoices already in billing's archive, with their own horizon."""
    from include.retention.rights.erased import was_erased

    policy = parse_policy(release_policy())
    _run(rel, policy, "billing")
    answer = was_erased(rel, policy, KEY, "email", "p1@example.fr")
    found = {
        (p.category, p.table, p.kind): (p.active, p.archived, p.horizon.until if p.horizon else None)
        for p in answer.presence
    }
    assert found[("billing", "invoices", "retained_dependant")] == (0, 1, date(2034, 5, 2))
    assert found[("billing", "invoice_lines", "retained_dependant")] == (0, 2, date(2034, 5, 2))
    assert found[("customer_relationship", "partners", "personal_data")][:2] == (1, 0)
    assert answer.verdict == "active"


def test_the_customer_plan_counts_what_invoices_released_earlier_keep_or_let_go(rel):
    """Billing released the invoices of customers 6 and 7 on an earlier night. Today both
    customers leave, past their own horizon: customer 7 is kept by invoice 71 (retained until
    2028), customer 6 goes, and so does invoice 61 under it (past its horizon since
    2026-01-15) - in the customer run, which must plan exactly that."""
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.plan import plan_category

    policy = parse_policy(release_policy())
    _run(rel, policy, "billing", as_of=date(2025, 12, 1))
    assert {61, 71} <= set(_archived(rel, "invoices")) and {6, 7} <= set(_active(rel, "partners"))
    ctx = RunContext("plan-customers", "retention_customer_relationship", AS_OF, policy.version, dry_run=True)
    (table,) = plan_category(StepContext.build(rel, policy, "customer_relationship", ctx)).tables
    assert table.due_for_end_of_life == 1  # customer 6 only
    assert table.dependants_end_of_life["invoices"]["rows"] == 1  # invoice 61
    _run(rel, policy, "customer_relationship")  # approved as planned: the deletion limit holds
    assert 6 not in _active(rel, "partners") + _archived(rel, "customer_partners")
    assert 61 not in _archived(rel, "invoices")
    assert 7 in _archived(rel, "customer_partners") and 71 in _archived(rel, "invoices")


# --- A parent in another schema ----------------------------------------------------------------


def _partners_in_crm(leaves_active: str = "on_parent_event") -> dict:
    """The release policy with prospects' and customers' tables declared in schema ``crm``."""
    data = release_policy(leaves_active)
    for key in ("prospection", "customer_relationship"):
        (root,) = data["categories"][key]["tables"]
        root["schema"] = "crm"
        for child in root.get("children", []):
            child["schema"] = "crm"
            for grandchild in child.get("children", []):
                grandchild["schema"] = "crm"
    return data


@pytest.mark.parametrize("target_url", ["postgresql"], indirect=True)
def test_invoices_follow_their_customers_clock_in_the_customers_schema_not_same_named_tables_beside_them(target):
    """Customers live in ``crm``, invoices in ``rel``; ``rel`` also holds empty tables named
    like the customer's (a stale copy). The release reads the customer's clock where the
    policy declares it: invoice 41, past its 10 years but whose relationship is ongoing,
    stays active - it was destroyed when the clock was read in the invoices' schema."""
    create_schema(target, parent_schema="crm")
    with target.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE rel.partners (partner_id integer primary key, name varchar(50), "
                "email varchar(100), is_prospect boolean, is_customer boolean, created_at timestamptz)"
            )
        )
        conn.execute(text("CREATE TABLE rel.contracts (contract_id integer primary key, partner_id integer)"))
        conn.execute(
            text("CREATE TABLE rel.contract_lines (line_id integer primary key, contract_id integer, end_date date)")
        )
    policy = parse_policy(_partners_in_crm())
    _run(target, policy, "billing")
    assert sorted(_active(target, "invoices")) == [31, 41, 121, 141]
    assert set(_archived(target, "invoices")) == RELEASED
    _run(target, policy, "customer_relationship")
    assert 7 in _archived(target, "customer_partners") and 6 not in ids(target, "partners", schema="crm")


@pytest.mark.parametrize("target_url", ["postgresql"], indirect=True)
def test_an_invoice_waiting_for_its_customer_in_another_schema_moves_with_it(target):
    """``with_parent``: billing's own run finds the customer in ``crm`` (it failed with
    NoSuchTableError) and moves nothing; the customer run carries the invoices."""
    create_schema(target, parent_schema="crm")
    policy = parse_policy(_partners_in_crm("with_parent"))
    _run(target, policy, "billing")
    assert _archived(target, "invoices") == []
    _run(target, policy, "customer_relationship")
    assert 71 in _archived(target, "invoices") and 7 in _archived(target, "customer_partners")


# --- A parent row no category governs --------------------------------------------------------


def _add_partner_of_no_category(target) -> None:
    """Partner 15: neither prospect nor customer any more (the application cleared both flags),
    with an invoice past its 10 years (151) and one within them (152)."""
    md, _ = schema_metadata(target, "rel")
    with target.engine.begin() as conn:
        partners = Table("partners", md, autoload_with=conn)
        invoices = Table("invoices", md, autoload_with=conn)
        conn.execute(
            insert(partners).values(
                partner_id=15,
                name="Partenaire 15",
                email="p15@example.fr",
                is_prospect=False,
                is_customer=False,
                created_at=datetime(2005, 1, 1, 9, tzinfo=PARIS),
            )
        )
        conn.execute(
            insert(invoices),
            [
                {"invoice_id": 151, "partner_id": 15, "number": "F-151", "invoice_date": date(2010, 1, 1)},
                {"invoice_id": 152, "partner_id": 15, "number": "F-152", "invoice_date": date(2020, 1, 1)},
            ],
        )


def test_an_invoice_whose_customer_no_category_governs_follows_its_own_ten_years(rel):
    """No category's clock runs on partner 15: nothing will ever release its invoices, so they
    follow their own clock as if they had no parent - 151 (2010) is destroyed tonight, 152
    (2020) waits in the archive until 2030 - instead of staying active for ever, overdue for
    no one. The DPO report counted them as compliant (overdue 0) before the run."""
    from include.retention.reports import dpo_report

    _add_partner_of_no_category(rel)
    policy = parse_policy(release_policy())
    report = dpo_report.build(rel, policy, date(2026, 11, 1), date(2026, 11, 26), AS_OF)
    (billing,) = [c for c in report.compliance if c.category == "billing"]
    assert billing.overdue == len(RELEASED | DESTROYED) - 1 + 2  # 21 is due tonight only; 151 and 152
    _run(rel, policy, "billing")
    assert not {151, 152} & set(_active(rel, "invoices"))
    assert 151 not in _archived(rel, "invoices")
    (row,) = [r for r in archive_rows(rel, "invoices") if r["invoice_id"] == 152]
    assert row["retention_until"] == date(2030, 1, 1)
    assert 15 in _active(rel, "partners")


def test_with_parent_an_invoice_whose_customer_no_category_governs_waits_for_it(rel):
    """``with_parent`` (the default) is unchanged: the invoice waits for its parent row."""
    _add_partner_of_no_category(rel)
    _run(rel, parse_policy(release_policy("with_parent")), "billing")
    assert {151, 152} <= set(_active(rel, "invoices"))


def test_the_dpo_report_dates_and_counts_undated_released_invoices_still_active(rel):
    """The oldest invoice date among active invoices nothing keeps open (61, 2016-01-15: 41's
    and 121's relationships are ongoing), and undated invoice 81 counted as missing its start
    before it moves - both were blank because "parent still active" counted as ongoing."""
    from include.retention.reports import dpo_report

    policy = parse_policy(release_policy())
    report = dpo_report.build(rel, policy, date(2026, 11, 1), date(2026, 11, 26), AS_OF)
    (billing,) = [c for c in report.compliance if c.category == "billing"]
    assert (billing.oldest_start, billing.missing_start, billing.held_open) == (date(2016, 1, 15), 1, 2)


def test_the_dpo_reports_schedule_says_a_year_after_the_relationship_ends_for_a_non_zero_active_period():
    from include.retention.reports.dpo_render import schedule_table

    policy = parse_policy(release_policy(active_period="P1Y"))
    english = unescape(schedule_table(policy, "en"))
    assert "1 year after the prospect's last contact or the end of the relationship" in english
    assert "11 years from the invoice date" in english
    french = unescape(schedule_table(policy, "fr"))
    assert "1 an après la date du dernier contact du prospect ou la fin de la relation contractuelle" in french


def test_was_erased_keeps_a_kept_customer_until_its_latest_retained_invoice(rel):
    """Customer 10 asks for erasure: its row is kept, its invoices need it - 101 and 102 in
    billing's archive (to 2034), 103 issued last week (its own 10 years: 2036-11-20). A parent
    row is never destroyed while a dependant stays, so the answer keeps the customer until
    2036-11-20, not its own 2033-01-01 (relationship ended 2025-01-01 + 3 + 5 years)."""
    from include.retention.database.identity import Subject
    from include.retention.rights.erased import was_erased
    from include.retention.rights.erasure import erase

    policy = parse_policy(release_policy())
    _run(rel, policy, "billing")
    md, _ = schema_metadata(rel, "rel")
    with rel.engine.begin() as conn:
        conn.execute(
            insert(Table("invoices", md, autoload_with=conn)).values(
                invoice_id=103, partner_id=10, number="F-103", invoice_date=date(2026, 11, 20)
            )
        )
    erase(
        rel,
        policy,
        Subject.of({"email": "p10@example.fr"}),
        KEY,
        RunContext("manual__erase", "subject_request", AS_OF, policy.version),
    )
    assert 10 in _active(rel, "partners")
    answer = was_erased(rel, policy, KEY, "email", "p10@example.fr")
    found = {(p.category, p.table): p.horizon.until for p in answer.presence}
    assert found[("billing", "invoices")] == date(2036, 11, 20)
    assert found[("customer_relationship", "partners")] == date(2036, 11, 20)
