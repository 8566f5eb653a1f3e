"""Real CRM/ERP shapes: one partner table for several categories, clocks derived from
related tables, fallbacks, rows kept ongoing by an open related row, and invoices that
follow billing's clock while their customer is archived.

The schema is an ERP's in miniature: ``partners`` flags prospects and customers;
``interactions`` record contacts in both directions; a customer's clock ends with the
last line of its last contract; ``invoices`` (with ``invoice_lines``) point at partners.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import date, datetime

import pytest
from engine_helpers import PARIS, archive_rows, audit_events, ids, run_category, schema_metadata
from sqlalchemy import Boolean, Column, Date, DateTime, ForeignKey, Integer, String, Table, insert

from include.retention.database.store import audit_table
from include.retention.database.target import Target, connect
from include.retention.errors import PolicyError
from include.retention.policy.load import parse_policy
from include.retention.reports import certificate
from scripts.throwaway_postgres import fresh_postgres_database

INBOUND_ONLY = {"column": "direction", "equals": "inbound"}
INTERACTIONS_CHILD = {
    "table": "interactions",
    "primary_key": "interaction_id",
    "foreign_key": "partner_id",
    "archive_columns": ["occurred_at", "direction"],
}
CONTRACT_LINES = [
    {"table": "contracts", "foreign_key": "partner_id"},
    {"table": "contract_lines", "foreign_key": "contract_id"},
]

ERP_POLICY = {
    "version": "erp-1",
    "source_schema": "erp",
    "precedence": ["customer_relationship", "prospection"],  # a converted prospect is a customer
    "categories": {
        "prospection": {
            "label": {"fr": "Prospects", "en": "Prospects"},
            "legal_basis": "Intérêt légitime",
            "archive_purpose": "Probatoire",
            "schedule": "0 2 * * *",
            "active_period": "P3Y",
            "archive_period": "P5Y",
            "end_action": "delete",
            "tables": [
                {
                    "table": "partners",
                    "archive_table": "prospect_partners",
                    "primary_key": "partner_id",
                    "scope": {"column": "is_prospect", "equals": True},
                    "start_event": {
                        "when_missing": "defect",
                        "first_of": [
                            {
                                "latest": {
                                    "column": "occurred_at",
                                    "path": [{"table": "interactions", "foreign_key": "partner_id"}],
                                    "where": INBOUND_ONLY,
                                }
                            },
                            {"column": "created_at"},
                        ],
                    },
                    "archive_columns": ["name", "email"],
                    "children": [{**INTERACTIONS_CHILD, "archive_table": "prospect_interactions"}],
                }
            ],
        },
        "customer_relationship": {
            "label": {"fr": "Clients", "en": "Customers"},
            "legal_basis": "Contrat",
            "archive_purpose": "Probatoire",
            "schedule": "0 3 * * *",
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
                    "archive_columns": ["name", "email"],
                    "children": [
                        {**INTERACTIONS_CHILD, "archive_table": "customer_interactions"},
                        # Declared in the policy only: the database has no foreign key here.
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
                        },
                    ],
                }
            ],
        },
        "billing": {
            "label": {"fr": "Facturation", "en": "Billing"},
            "legal_basis": "Obligation légale",
            "archive_purpose": "Obligation comptable (10 ans)",
            "schedule": "0 4 * * *",
            "active_period": "P0D",
            "archive_period": "P10Y",
            "end_action": "delete",
            "tables": [
                {
                    "table": "invoices",
                    "primary_key": "invoice_id",
                    "start_event": {"column": "invoice_date", "when_missing": "defect"},
                    "archived_with": {"table": "partners", "foreign_key": "partner_id"},
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

# invoice_id: (partner_id, invoice date, number of lines)
INVOICES = {
    61: (6, date(2021, 3, 31), 2),  # customer 6 archived today: invoice kept until 2031-03-31
    71: (7, date(2024, 5, 2), 1),  # customer 7 still active: its invoice waits with it
    81: (8, date(2016, 6, 30), 1),  # kept until 2026-06-30: destroyed today, in the customer's run
    82: (8, date(2019, 3, 31), 2),  # kept until 2029-03-31: keeps customer 8 in the archive until then
}

# partner_id: (is_prospect, is_customer, created_at, [(interaction day, direction)], [[line end dates per contract]])
PARTNERS = {
    1: (True, False, date(2020, 1, 10), [(date(2023, 11, 26), "inbound"), (date(2025, 6, 1), "outbound")], []),
    2: (True, False, date(2020, 1, 10), [(date(2023, 11, 27), "inbound")], []),
    3: (True, False, date(2020, 1, 10), [(date(2023, 11, 25), "inbound")], []),
    4: (True, False, date(2020, 2, 29), [], []),
    5: (True, False, date(2019, 1, 1), [(date(2026, 1, 1), "outbound")], []),
    6: (True, True, date(2015, 1, 1), [(date(2021, 1, 5), "inbound")], [[date(2022, 6, 30)]]),
    7: (False, True, date(2010, 1, 1), [], [[date(2015, 1, 1), None]]),
    8: (False, True, date(2010, 1, 1), [], [[date(2015, 3, 31)], [date(2016, 12, 31), date(2014, 1, 1)]]),
    9: (False, False, date(2010, 1, 1), [(date(2012, 1, 1), "inbound")], []),
    10: (False, True, date(2010, 1, 1), [], []),
}


def erp_policy(**changes) -> dict:
    data = copy.deepcopy(ERP_POLICY)
    data.update(changes)
    return data


def create_erp(target) -> None:
    md, prefix = schema_metadata(target, "erp")
    partners = Table(
        "partners",
        md,
        Column("partner_id", Integer, primary_key=True),
        Column("name", String(50)),
        Column("email", String(100)),
        Column("is_prospect", Boolean),
        Column("is_customer", Boolean),
        Column("created_at", DateTime(timezone=True)),
    )
    interactions = Table(
        "interactions",
        md,
        Column("interaction_id", Integer, primary_key=True),
        Column("partner_id", Integer, ForeignKey(prefix + "partners.partner_id")),
        Column("occurred_at", DateTime(timezone=True)),
        Column("direction", String(10)),
    )
    # Contracts are not governed here: no foreign key, the policy only reads them.
    contracts = Table("contracts", md, Column("contract_id", Integer, primary_key=True), Column("partner_id", Integer))
    lines = Table(
        "contract_lines",
        md,
        Column("line_id", Integer, primary_key=True),
        Column("contract_id", Integer, ForeignKey(prefix + "contracts.contract_id")),
        Column("end_date", Date),
    )
    invoices = Table(
        "invoices",
        md,
        Column("invoice_id", Integer, primary_key=True),
        Column("partner_id", Integer, ForeignKey(prefix + "partners.partner_id"), nullable=False),
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
    rows: dict[str, list[dict]] = {
        t: [] for t in ("partners", "interactions", "contracts", "contract_lines", "invoices", "invoice_lines")
    }
    for invoice_id, (partner_id, day, line_count) in INVOICES.items():
        rows["invoices"].append(
            {"invoice_id": invoice_id, "partner_id": partner_id, "number": f"F-{invoice_id}", "invoice_date": day}
        )
        rows["invoice_lines"] += [
            {"line_id": invoice_id * 10 + k, "invoice_id": invoice_id, "amount": 100} for k in range(line_count)
        ]
    for pid, (prospect, customer, created, contacts, contract_list) in PARTNERS.items():
        rows["partners"].append(
            {
                "partner_id": pid,
                "name": f"Partenaire {pid}",
                "email": f"p{pid}@example.fr",
                "is_prospect": prospect,
                "is_customer": customer,
                "created_at": datetime(created.year, created.month, created.day, 9, tzinfo=PARIS),
            }
        )
        for k, (day, direction) in enumerate(contacts):
            rows["interactions"].append(
                {
                    "interaction_id": pid * 10 + k,
                    "partner_id": pid,
                    "direction": direction,
                    "occurred_at": datetime(day.year, day.month, day.day, 15, tzinfo=PARIS),
                }
            )
        for c, line_ends in enumerate(contract_list):
            rows["contracts"].append({"contract_id": pid * 10 + c, "partner_id": pid})
            for k, end in enumerate(line_ends):
                rows["contract_lines"].append(
                    {"line_id": pid * 100 + c * 10 + k, "contract_id": pid * 10 + c, "end_date": end}
                )
    with target.engine.begin() as conn:
        for table in (partners, interactions, contracts, lines, invoices, invoice_lines):
            if rows[table.name]:
                conn.execute(insert(table), rows[table.name])


@pytest.fixture
def erp(target):
    create_erp(target)
    return target


def _shared_erp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, run: Callable) -> Iterator:
    """A seeded ERP database on the module fixture's backend, after ``run(target)``; yields
    ``(target, what run returned)``. For the tests that only read what one run left: each
    would otherwise seed the ERP and run the same categories again."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('erp') / 'erp.db'}"
    else:
        url = fresh_postgres_database(request.getfixturevalue("postgres_server"))
    target = connect(url, "archive")
    try:
        create_erp(target)
        yield target, run(target)
    finally:
        target.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def erp_after_prospection(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The ERP after one prospection run on ``AS_OF`` (run id ``run-1``)."""
    for target, _ in _shared_erp(
        request, tmp_path_factory, lambda t: run_category(t, parse_policy(ERP_POLICY), category="prospection")
    ):
        yield target


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def erp_after_customers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """The ERP after one customer_relationship run on ``AS_OF`` (run id ``run-1``), and its result."""
    yield from _shared_erp(
        request,
        tmp_path_factory,
        lambda t: run_category(t, parse_policy(ERP_POLICY), category="customer_relationship"),
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def erp_after_both(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The ERP after customer_relationship then prospection ran on ``AS_OF`` (``_run_both``)."""
    for target, _ in _shared_erp(request, tmp_path_factory, lambda t: _run_both(t, parse_policy(ERP_POLICY))):
        yield target


def _run_both(target, policy):
    return [
        run_category(target, policy, category=key, run_id=f"run-{key}")
        for key in ("customer_relationship", "prospection")
    ]


def _archived(target, table):
    return ids(target, table, archive=True, schema="erp")


def test_prospects_and_customers_of_one_partner_table_follow_their_own_rules(erp_after_both):
    assert ids(erp_after_both, "partners", schema="erp") == [2, 7, 9, 10]
    assert _archived(erp_after_both, "prospect_partners") == [1, 3, 4, 5]
    assert _archived(erp_after_both, "customer_partners") == [6, 8]  # 8 has expired, but its invoices are retained


def test_a_converted_prospect_is_treated_as_a_customer(erp):
    policy = parse_policy(ERP_POLICY)
    prospection = run_category(erp, policy, category="prospection")
    (plan,) = prospection.plan.tables
    assert plan.active_rows == 5  # partners 1-5: partner 6 is claimed by customer_relationship
    assert 6 in ids(erp, "partners", schema="erp")
    run_category(erp, policy, category="customer_relationship", run_id="run-2")
    assert _archived(erp, "customer_partners") == [6, 8]


@pytest.mark.parametrize(
    "partner, archived",
    [
        pytest.param(1, True, id="inbound_contact_exactly_3_years_ago"),
        pytest.param(2, False, id="one_day_short"),
        pytest.param(3, True, id="one_day_past"),
    ],
)
def test_prospect_clock_is_the_latest_inbound_contact(erp_after_prospection, partner, archived):
    assert (partner in _archived(erp_after_prospection, "prospect_partners")) is archived


def test_an_email_we_sent_does_not_restart_a_prospects_clock(erp_after_prospection):
    """Partner 1 got our e-mail in June 2025; its clock still starts at its own contact of 26 Nov 2023."""
    row = next(r for r in archive_rows(erp_after_prospection, "prospect_partners") if r["partner_id"] == 1)
    assert row["retention_start"] == date(2023, 11, 26)
    assert row["retention_until"] == date(2031, 11, 26)


def test_fallback_to_creation_date_when_the_prospect_never_wrote(erp_after_prospection):
    rows = {r["partner_id"]: r for r in archive_rows(erp_after_prospection, "prospect_partners")}
    assert rows[4]["retention_start"] == date(2020, 2, 29)
    assert rows[4]["retention_until"] == date(2028, 2, 28)  # leap day start
    assert rows[5]["retention_start"] == date(2019, 1, 1)  # only our outbound e-mails: creation date


def test_customer_clock_is_the_last_line_of_its_last_contract(erp_after_customers):
    erp, result = erp_after_customers
    rows = {r["partner_id"]: r for r in archive_rows(erp, "customer_partners")}
    assert rows[6]["retention_start"] == date(2022, 6, 30)
    assert rows[8]["retention_start"] == date(2016, 12, 31)  # latest of 2015-03-31, 2016-12-31, 2014-01-01
    assert rows[8]["retention_until"] == date(2024, 12, 31)  # expired, kept for its invoices (see below)
    # Only invoice 81, past its own horizon, goes: customer 8 waits for invoice 82.
    assert result.purged == {"deleted": {"invoices": 1, "invoice_lines": 1}}


def test_an_open_contract_line_keeps_the_customer_active(erp_after_customers):
    erp, result = erp_after_customers
    assert 7 in ids(erp, "partners", schema="erp")
    (plan,) = result.plan.tables
    assert plan.held_open == 1
    assert (plan.missing_start, plan.missing_start_means) == (1, "defect")  # partner 10: no contract at all
    partners = _certified(erp, parse_policy(ERP_POLICY), "run-1")["partners"]
    assert (partners.held, partners.quarantined) == (1, 1)
    findings = audit_events(erp, parse_policy(ERP_POLICY), action="quality_finding")
    assert [(f["category"], f["row_count"]) for f in findings] == [("customer_relationship", 1)]


def test_children_follow_the_category_of_their_parent(erp_after_both):
    assert _archived(erp_after_both, "prospect_interactions") == [10, 11, 30, 50]
    assert _archived(erp_after_both, "customer_interactions") == [60]
    assert ids(erp_after_both, "interactions", schema="erp") == [20, 90]


def test_a_partner_in_no_category_is_never_touched(erp):
    _run_both(erp, parse_policy(ERP_POLICY))
    _run_both(erp, parse_policy(ERP_POLICY))
    assert 9 in ids(erp, "partners", schema="erp") and 90 in ids(erp, "interactions", schema="erp")


def test_overlapping_scopes_without_precedence_fail_at_load_time_naming_both_categories():
    with pytest.raises(
        PolicyError,
        match=r"categories 'prospection' and 'customer_relationship' may both match a "
        r"row of table partners",
    ):
        parse_policy(erp_policy(precedence=[]))


def test_exclusive_scopes_need_no_precedence():
    data = erp_policy(precedence=[])
    data["categories"]["prospection"]["tables"][0]["scope"] = {"column": "kind", "equals": "prospect"}
    data["categories"]["customer_relationship"]["tables"][0]["scope"] = {"column": "kind", "in": ["customer"]}
    parse_policy(data)


def test_condition_values_are_bound_parameters_not_sql(erp):
    data = erp_policy()
    data["categories"]["prospection"]["tables"][0]["scope"] = {
        "any": [{"column": "name", "equals": "x' OR '1'='1"}, {"column": "is_prospect", "equals": True}]
    }
    run_category(erp, parse_policy(data), category="prospection")
    assert _archived(erp, "prospect_partners") == [1, 3, 4, 5]


@pytest.mark.parametrize(
    "mutate, key_path, message",
    [
        pytest.param(
            lambda t: t["start_event"]["first_of"][0]["latest"]["path"][0].update(table="contacts"),
            r"first_of\[0\]\.latest\.path\[0\]\.table",
            "does not exist",
            id="unknown_table_in_derived_clock",
        ),
        pytest.param(
            lambda t: t["start_event"]["first_of"][0]["latest"].update(column="direction"),
            r"first_of\[0\]\.latest\.column",
            "not a date or timestamp",
            id="aggregate_of_text",
        ),
        pytest.param(
            lambda t: t["start_event"]["first_of"][1].update(column="birthday"),
            r"first_of\[1\]\.column",
            "not in table",
            id="unknown_fallback_column",
        ),
        pytest.param(
            lambda t: t["start_event"]["first_of"][0]["latest"].update(where={"column": "channel", "equals": "x"}),
            r"first_of\[0\]\.latest\.where",
            "'channel' not in table",
            id="unknown_filter_column",
        ),
        pytest.param(
            lambda t: t.update(scope={"column": "is_lead", "equals": True}),
            r"tables\[0\]\.scope",
            "'is_lead' not in table",
            id="unknown_scope_column",
        ),
    ],
)
def test_a_policy_that_cannot_be_evaluated_fails_before_any_sql(erp, mutate, key_path, message):
    data = erp_policy()
    mutate(data["categories"]["prospection"]["tables"][0])
    with pytest.raises(PolicyError, match=key_path) as info:
        run_category(erp, parse_policy(data), category="prospection")
    assert message in str(info.value)
    assert ids(erp, "partners", schema="erp") == sorted(PARTNERS)


def test_fallbacks_of_different_types_are_refused(erp):
    data = erp_policy()
    first_of = data["categories"]["prospection"]["tables"][0]["start_event"]["first_of"]
    first_of[1] = {"latest": {"column": "end_date", "path": CONTRACT_LINES}}
    with pytest.raises(PolicyError, match=r"start_event\.first_of: fallbacks must all be dates or all be timestamps"):
        run_category(erp, parse_policy(data), category="prospection")


def test_invoices_move_with_their_customer_but_keep_billings_clock(erp):
    policy = parse_policy(ERP_POLICY)
    run_category(erp, policy, category="customer_relationship")
    invoices = {r["invoice_id"]: r for r in archive_rows(erp, "invoices")}
    assert sorted(invoices) == [61, 82]
    assert invoices[61]["retention_until"] == date(2031, 3, 31)  # invoice date + 10 years, not the customer's
    assert invoices[82]["retention_until"] == date(2029, 3, 31)
    assert ids(erp, "invoice_lines", archive=True, schema="erp") == [610, 611, 820, 821]
    assert ids(erp, "invoices", schema="erp") == [71]
    archived = {(e["category"], e["table_name"]): e["row_count"] for e in audit_events(erp, policy, action="archive")}
    assert archived[("billing", "invoices")] == 3 and archived[("customer_relationship", "partners")] == 2


def test_an_invoice_past_its_own_horizon_is_destroyed_in_its_customers_run_under_billing(erp):
    """Invoice 81 (2016-06-30, kept until 2026-06-30) leaves with customer 8: archived and
    destroyed in the same run, both audited under billing, the deletion counted as same-run."""
    policy = parse_policy(ERP_POLICY)
    result = run_category(erp, policy, category="customer_relationship")
    assert 81 not in ids(erp, "invoices", schema="erp") + _archived(erp, "invoices")
    deleted = {
        (e["category"], e["table_name"]): (e["row_count"], e["details"]["same_run"])
        for e in audit_events(erp, policy, action="delete")
    }
    assert deleted == {("billing", "invoices"): (1, 1), ("billing", "invoice_lines"): (1, 1)}
    (plan,) = result.plan.tables
    assert plan.dependants_end_of_life == {"invoices": {"rows": 1, "archive_rows": 3, "category": "billing"}}
    assert _certified(erp, policy, "run-1")["invoices"].deleted == 1


def test_a_customer_whose_invoices_are_all_past_their_horizon_goes_with_them_in_one_run(erp):
    """Customer 8's last invoice is retained until 2029-03-31: on that day one customer run,
    before billing's, destroys the invoice and releases the customer."""
    policy = parse_policy(ERP_POLICY)
    run_category(erp, policy, category="customer_relationship")
    result = run_category(erp, policy, as_of=date(2029, 3, 31), category="customer_relationship", run_id="run-2")
    assert 8 not in _archived(erp, "customer_partners") and 82 not in _archived(erp, "invoices")
    (plan,) = result.plan.tables
    assert (plan.due_for_end_of_life, plan.dependants_end_of_life["invoices"]["rows"]) == (1, 1)
    assert plan.kept_for_dependants == {}


def test_an_invoice_waits_in_the_active_base_while_its_customer_is_active(erp):
    result = run_category(erp, parse_policy(ERP_POLICY), category="billing")
    assert ids(erp, "invoices", schema="erp") == sorted(INVOICES)
    (plan,) = result.plan.tables
    assert (plan.due_for_archive, plan.held_open) == (0, 4)


def test_a_customer_stays_in_the_archive_until_its_last_retained_invoice_goes(erp):
    policy = parse_policy(ERP_POLICY)
    run_category(erp, policy, category="customer_relationship")
    assert _archived(erp, "customer_partners") == [6, 8]  # 8 expired on 2024-12-31, but its invoices are kept
    run_category(erp, policy, category="billing", run_id="billing-1")
    assert sorted(r["invoice_id"] for r in archive_rows(erp, "invoices")) == [61, 82]  # 81 went with customer 8's run
    second = run_category(erp, policy, category="customer_relationship", run_id="customer-2")
    (plan,) = second.plan.tables
    assert plan.reasons() == ["1 partners kept because 1 invoices are retained until 2029-03-31"]
    assert _archived(erp, "customer_partners") == [6, 8]
    # The certificate counts both: partner 7 (open contract line) and partner 8 (kept for its invoice).
    assert _certified(erp, policy, "customer-2")["partners"].held == 2
    for day, customers in [(date(2029, 3, 30), [6, 8]), (date(2029, 3, 31), [6])]:
        run_category(erp, policy, as_of=day, category="billing", run_id=f"billing-{day}")
        run_category(erp, policy, as_of=day, category="customer_relationship", run_id=f"customer-{day}")
        assert _archived(erp, "customer_partners") == customers


def test_no_archived_invoice_ever_points_at_a_destroyed_customer(erp):
    policy = parse_policy(ERP_POLICY)
    for day in (date(2026, 11, 26), date(2029, 3, 31), date(2031, 3, 30), date(2031, 3, 31), date(2035, 1, 1)):
        for key in ("customer_relationship", "billing", "prospection"):
            run_category(erp, policy, as_of=day, category=key, run_id=f"{key}-{day}")
        customers = set(_archived(erp, "customer_partners")) | set(_archived(erp, "prospect_partners"))
        assert {r["partner_id"] for r in archive_rows(erp, "invoices")} <= customers
        lines_parents = {r["invoice_id"] for r in archive_rows(erp, "invoice_lines")}
        assert lines_parents <= {r["invoice_id"] for r in archive_rows(erp, "invoices")}
    assert archive_rows(erp, "invoices") == [] and _archived(erp, "customer_partners") == []


@pytest.mark.parametrize(
    "change, message",
    [
        pytest.param(
            {"table": "contracts"}, "must be a table with its own clock in another category", id="parent_without_clock"
        ),
        pytest.param(
            {"foreign_key": ["partner_id", "number"]},
            "has 2 column(s) but the primary key of partners has 1",
            id="key_width",
        ),
    ],
)
def test_archived_with_mistakes_fail_at_load_time(change, message):
    data = erp_policy()
    data["categories"]["billing"]["tables"][0]["archived_with"].update(change)
    with pytest.raises(PolicyError, match=r"categories\.billing\.tables\[0\]\.archived_with") as info:
        parse_policy(data)
    assert message in str(info.value)


def test_a_relation_declared_only_in_the_policy_moves_children_to_any_depth(erp):
    """Contracts have no foreign key to partners; the policy declares the link. The
    customer's clock is read from those same contract lines, which move with it."""
    run_category(erp, parse_policy(ERP_POLICY), category="customer_relationship")
    assert _archived(erp, "contracts") == [60, 80, 81]
    assert _archived(erp, "contract_lines") == [600, 800, 810, 811]
    assert ids(erp, "contracts", schema="erp") == [70]
    assert ids(erp, "contract_lines", schema="erp") == [700, 701]


def test_a_run_checks_the_categories_its_sql_reads(erp):
    """Billing's invoices move with customers: a customer run must refuse a broken billing entry."""
    data = erp_policy()
    data["categories"]["billing"]["tables"][0]["archive_columns"] = ["number", "invoice_total"]
    with pytest.raises(PolicyError, match=r"categories\.billing\.tables\[0\]\.archive_columns: column 'invoice_total'"):
        run_category(erp, parse_policy(data), category="customer_relationship")
    assert ids(erp, "partners", schema="erp") == sorted(PARTNERS)


def test_a_future_date_among_related_rows_stops_the_gate(erp):
    """The prospect clock reads interactions: a contact dated next year there is a wrong clock."""
    from datetime import datetime as dt

    from sqlalchemy import MetaData as Md
    from sqlalchemy import Table as Tb
    from sqlalchemy import update as upd

    from include.retention.records.audit import RunContext
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.quality import QualityGateFailed, pre_archive_gate

    interactions = Tb("interactions", Md(), schema=None if erp.is_sqlite else "erp", autoload_with=erp.engine)
    with erp.engine.begin() as conn:
        conn.execute(
            upd(interactions)
            .where(interactions.c.interaction_id == 20)
            .values(occurred_at=dt(2027, 6, 1, 10, tzinfo=PARIS))
        )
    policy = parse_policy(ERP_POLICY)
    ctx = RunContext(
        run_id="gate", dag_id="retention_prospection", as_of=date(2026, 11, 26), policy_version=policy.version
    )
    with pytest.raises(QualityGateFailed, match=r"no_future_occurred_at on interactions: 1 row"):
        pre_archive_gate(StepContext.build(erp, policy, "prospection", ctx), now=dt(2026, 11, 26, 12, tzinfo=PARIS))


def _certified(target, policy, run_id):
    """The run's deletion certificate, per table."""
    with target.read() as conn:
        issued = certificate.build(conn, audit_table("archive", policy.audit_table), policy, run_id)
    return {t.table: t for t in issued.tables}


def _erp_with_identifiers() -> dict:
    data = copy.deepcopy(ERP_POLICY)
    for key in ("prospection", "customer_relationship"):
        data["categories"][key]["tables"][0]["subject_identifiers"] = {"email": ["email"]}
    data["categories"]["billing"]["on_erasure"] = "keep"
    return data


def test_an_erasure_keeps_a_customer_whose_invoices_are_kept_and_erases_one_without(erp):
    from include.retention.database.identity import Subject, SubjectKey
    from include.retention.records.audit import RunContext
    from include.retention.rights.erasure import erase

    policy = parse_policy(_erp_with_identifiers())
    run_category(erp, policy, category="customer_relationship")  # customer 8 archived with its invoices
    key, ctx = SubjectKey("k" * 40, "test"), RunContext("manual__erp", "subject_request", date(2026, 11, 26), "erp-1")
    kept = erase(erp, policy, Subject.of({"email": "P8@example.fr"}), key, ctx)
    (partner,) = [t for t in kept.tables if t.table == "partners"]
    assert (partner.archive, partner.found, partner.erased) == (True, 1, 0)
    assert partner.kept_because.startswith("needed by kept rows")
    assert 8 in _archived(erp, "customer_partners")
    erased = erase(erp, policy, Subject.of({"email": "p10@example.fr"}), key, ctx)  # no contract, no invoice
    assert [(t.table, t.archive, t.found, t.erased) for t in erased.tables] == [("partners", False, 1, 1)]
    assert 10 not in ids(erp, "partners", schema="erp")


def test_the_deletion_limit_counts_the_invoices_a_customer_run_destroys(erp):
    """Invoice 81 leaves with customer 8 and is past its horizon: the customer run destroys it,
    so its plan counts it on the invoices' archive side, and the purge refuses, before any row
    goes, when the approval does not cover it."""
    from include.retention.records.audit import RunContext
    from include.retention.schedule.archive import archive_category
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.limits import DeletionLimitExceeded, approved_counts, excesses
    from include.retention.schedule.plan import plan_category
    from include.retention.schedule.purge import purge_category

    data = erp_policy()
    data["categories"]["customer_relationship"]["deletion_limit"] = {"rows": 0}
    policy = parse_policy(data)
    ctx = RunContext("run-1", "retention_customer_relationship", date(2026, 11, 26), policy.version)
    step = StepContext.build(erp, policy, "customer_relationship", ctx)
    plan = plan_category(step)
    over = {(e.table, e.side): (e.rows, e.base) for e in excesses(plan, policy)}
    assert over[("invoices", "archive")] == (1, 3)  # 3 invoices arrive tonight, 1 of them past its horizon
    approved = approved_counts(plan)
    assert approved["invoices:archive"] == 1
    archive_category(step, None, approved)
    del approved["invoices:archive"]
    with pytest.raises(DeletionLimitExceeded, match=r"1 of 3 rows of invoices \(33.3%\) would leave the archive"):
        purge_category(step, None, approved)
    assert 81 in _archived(erp, "invoices")  # nothing went


def test_an_invoice_past_its_horizon_is_anonymised_when_billing_anonymises_and_releases_its_customer(erp):
    """Billing's end action is anonymise: the customer run anonymises invoice 81 (past its
    horizon) by billing's rules, unlinked from its customer, audited under billing; on the
    day invoice 82 reaches its horizon, one customer run anonymises it and destroys customer 8."""
    data = erp_policy()
    billing = data["categories"]["billing"]
    billing["end_action"] = "anonymize"
    billing["tables"][0]["anonymize"] = {"number": "null", "invoice_date": "year"}
    billing["tables"][0]["children"][0]["anonymize"] = {"amount": {"round": 1000}}
    policy = parse_policy(data)
    run_category(erp, policy, category="customer_relationship")
    invoices = {r["invoice_id"]: r for r in archive_rows(erp, "invoices")}
    assert (invoices[81]["anonymized"], invoices[81]["partner_id"], invoices[81]["number"]) == (True, None, None)
    assert invoices[81]["invoice_date"] == date(2016, 1, 1)
    events = [
        (e["category"], e["table_name"], e["row_count"], e["details"]["same_run"])
        for e in audit_events(erp, policy, action="anonymize")
    ]
    assert events == [("billing", "invoice_lines", 1, 1), ("billing", "invoices", 1, 1)]
    assert 8 in _archived(erp, "customer_partners")  # invoice 82 is retained until 2029-03-31
    run_category(erp, policy, as_of=date(2029, 3, 31), category="customer_relationship", run_id="run-2")
    assert 8 not in _archived(erp, "customer_partners")
    assert {r["invoice_id"]: r["anonymized"] for r in archive_rows(erp, "invoices")}[82] is True


def _make_archive_deletes_fail(target, table: str) -> None:
    """Any DELETE on the archive's ``table`` fails with 'boom': a failure half-way through."""
    from sqlalchemy import text

    with target.engine.begin() as conn:
        if target.is_sqlite:
            conn.execute(
                text(f"CREATE TRIGGER archive.boom BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, 'boom'); END")
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION archive.boom() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'boom'; END $$"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER boom BEFORE DELETE ON archive.{table} FOR EACH ROW EXECUTE FUNCTION archive.boom()"
                )
            )


def test_a_failure_while_destroying_invoices_leaves_the_archive_as_it_was_and_a_rerun_finishes(erp):
    """The customer run's purge destroys invoice 81 (its line first) before any customer: if the
    invoice's delete fails after its line's, the batch rolls back whole - no invoice, line or
    customer gone, no audit event - and the same run, once the fault is gone, completes and
    passes its gate."""
    from sqlalchemy import text
    from table_checksums import checksum

    from include.retention.records.audit import RunContext
    from include.retention.schedule.archive import archive_category
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.limits import approved_counts
    from include.retention.schedule.plan import plan_category
    from include.retention.schedule.postflight import post_run_gate
    from include.retention.schedule.purge import purge_category

    policy = parse_policy(ERP_POLICY)
    step = StepContext.build(
        erp,
        policy,
        "customer_relationship",
        RunContext("run-1", "retention_customer_relationship", date(2026, 11, 26), policy.version),
    )
    approved = approved_counts(plan_category(step))
    archive_category(step, None, approved)
    _make_archive_deletes_fail(erp, "invoices")
    before = checksum(erp)
    with pytest.raises(Exception, match="boom"):
        purge_category(step, None, approved)
    assert checksum(erp) == before
    assert audit_events(erp, policy, run_id="run-1", action="delete") == []
    with erp.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER archive.boom" if erp.is_sqlite else "DROP TRIGGER boom ON archive.invoices"))
    purge_category(step, None, approved)
    assert sorted(r["invoice_id"] for r in archive_rows(erp, "invoices")) == [61, 82]
    assert _archived(erp, "customer_partners") == [6, 8]
    assert all(r.success for r in post_run_gate(step))


# --- A legal hold on a parent holds its retained dependants --------------------------------

HOLD_KEY_VALUE = "k" * 40
LATER = date(2029, 4, 2)  # invoice 82 (kept until 2029-03-31) is past its horizon


def _hold_customer_8(target, policy, scope: str) -> None:
    """A hold on customer 8 as the legal team writes it: on the person (by e-mail), or on the
    whole customer category."""
    from include.retention.database.identity import Subject, SubjectKey
    from include.retention.records.audit import RunContext
    from include.retention.records.holds import NewHold, add_hold

    if not target.is_sqlite:  # keyed hashes in SQL (a hold on a person) use pgcrypto there
        with target.engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    new = (
        NewHold(
            reference="LIT-8",
            scope="subject",
            reason="litige client",
            created_by="juriste",
            subject=Subject.of({"email": "p8@example.fr"}),
        )
        if scope == "subject"
        else NewHold(
            reference="LIT-8",
            scope="category",
            reason="audit des clients",
            created_by="juriste",
            category="customer_relationship",
        )
    )
    add_hold(
        target,
        policy,
        new,
        SubjectKey(HOLD_KEY_VALUE, "test"),
        RunContext("manual__hold", "legal_hold", date(2026, 11, 27), policy.version),
        date.today(),
    )


def _hold_variants() -> list:
    """(backend, category that runs, hold scope): ``make test`` runs each scope and each category
    on each backend, in two of the four pairs (swapped between backends); the other pairs are
    marked ``deep`` (``make test-deep``)."""
    quick = {
        ("sqlite", "customer_relationship", "subject"),
        ("sqlite", "billing", "category"),
        ("postgresql", "customer_relationship", "category"),
        ("postgresql", "billing", "subject"),
    }
    return [
        pytest.param(b, c, s, id=f"{b}-{c}-{s}", marks=() if (b, c, s) in quick else pytest.mark.deep)
        for b in ("sqlite", "postgresql")
        for c in ("customer_relationship", "billing")
        for s in ("subject", "category")
    ]


@pytest.mark.parametrize(("target_url", "category", "scope"), _hold_variants(), indirect=["target_url"])
def test_a_hold_on_a_customer_keeps_its_invoices_past_their_horizon(erp, category, scope):
    """Records under a hold are not destroyed, and a hold on a person covers every row about
    that person: customer 8's invoice 82 (and its lines) stay in the archive past its horizon,
    whichever category runs, and both runs pass their post-run gate."""
    from engine_helpers import run_whole

    from include.retention.database.identity import SubjectKey

    key = SubjectKey(HOLD_KEY_VALUE, "test")
    policy = parse_policy(_erp_with_identifiers())
    run_category(erp, policy, category="customer_relationship", subject_key=key)
    _hold_customer_8(erp, policy, scope)
    run_whole(erp, policy, category, LATER, f"{category}-later", key)  # its post-run gate passes
    assert 82 in _archived(erp, "invoices") and [i for i in _archived(erp, "invoice_lines") if i > 800] == [820, 821]
    assert 8 in _archived(erp, "customer_partners")
    assert [e for e in audit_events(erp, policy, run_id=f"{category}-later") if e["action"] == "delete"] == []


def test_a_held_customers_invoices_are_not_counted_as_destroyed_and_go_once_the_hold_is_lifted(erp):
    from include.retention.database.identity import SubjectKey
    from include.retention.records.audit import RunContext
    from include.retention.records.holds import lift_hold

    key = SubjectKey(HOLD_KEY_VALUE, "test")
    policy = parse_policy(_erp_with_identifiers())
    run_category(erp, policy, category="customer_relationship", subject_key=key)
    _hold_customer_8(erp, policy, "subject")
    customers = run_category(erp, policy, as_of=LATER, category="customer_relationship", run_id="c-2", subject_key=key)
    (plan,) = customers.plan.tables
    assert (plan.dependants_end_of_life, plan.legal_hold_end_of_life) == ({}, 1)
    billing = run_category(erp, policy, as_of=LATER, category="billing", run_id="b-2", subject_key=key)
    (plan,) = billing.plan.tables
    assert (plan.due_for_end_of_life, plan.legal_hold_end_of_life) == (0, 1)
    lift_hold(
        erp,
        policy,
        "LIT-8",
        "juriste",
        "affaire close",
        RunContext("manual__lift", "legal_hold", LATER, policy.version),
        date.today(),
    )
    run_category(erp, policy, as_of=LATER, category="customer_relationship", run_id="c-3", subject_key=key)
    assert 82 not in _archived(erp, "invoices") and 8 not in _archived(erp, "customer_partners")


# --- An anonymised dependant loses its link: the link cannot be part of a key ----------------


def _anonymising_billing(primary_key: list[str]) -> dict:
    data = erp_policy()
    billing = data["categories"]["billing"]
    billing["end_action"] = "anonymize"
    billing["tables"][0]["primary_key"] = primary_key
    billing["tables"][0]["anonymize"] = {"number": "null", "invoice_date": "year"}
    billing["tables"][0]["children"][0]["foreign_key"] = primary_key
    billing["tables"][0]["children"][0]["anonymize"] = {"amount": {"round": 1000}}
    return data


def test_an_anonymising_dependant_linked_through_its_primary_key_fails_at_load_time():
    """Anonymising an invoice sets its link to the customer to NULL; a key column cannot hold
    NULL (and its lines carry the key): every run would fail, so the policy is refused."""
    with pytest.raises(PolicyError, match=r"categories\.billing\.tables\[0\]\.archived_with\.foreign_key") as info:
        parse_policy(_anonymising_billing(["partner_id", "invoice_id"]))
    assert "'partner_id' is part of the primary key of invoices" in str(info.value)
    data = _anonymising_billing(["partner_id", "invoice_id"])
    billing = data["categories"]["billing"]
    billing["end_action"] = "delete"  # deleting needs no NULL: accepted
    del billing["tables"][0]["anonymize"], billing["tables"][0]["children"][0]["anonymize"]
    parse_policy(data)


def test_an_existing_archive_whose_link_column_is_not_null_is_refused_before_anything_is_anonymised(erp):
    """An archive table made by hand (or by an older version) with the link NOT NULL: the purge
    refuses before its first row, naming the table and the column, instead of failing each night."""
    from sqlalchemy import MetaData, Table
    from table_checksums import checksum

    from include.retention.records.audit import RunContext
    from include.retention.schedule.archive import archive_category
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.limits import approved_counts
    from include.retention.schedule.plan import plan_category
    from include.retention.schedule.purge import purge_category

    data = _anonymising_billing(["invoice_id"])
    policy = parse_policy(data)
    erp.ensure_archive_schema()
    Table(
        "invoices",
        MetaData(schema="archive"),
        Column("invoice_id", Integer, primary_key=True),
        Column("partner_id", Integer, nullable=False),
        Column("number", String(20)),
        Column("invoice_date", Date),
        Column("retention_start", Date),
        Column("retention_until", Date),
        Column("archived_at", DateTime(timezone=True)),
        Column("policy_version", String(64)),
        Column("run_id", String(250)),
        Column("anonymized", Boolean, nullable=False),
    ).create(erp.engine)
    step = StepContext.build(
        erp,
        policy,
        "customer_relationship",
        RunContext("run-1", "retention_customer_relationship", date(2026, 11, 26), policy.version),
    )
    approved = approved_counts(plan_category(step))
    archive_category(step, None, approved)
    before = checksum(erp)
    with pytest.raises(PolicyError, match=r"archive\.invoices\.partner_id is NOT NULL"):
        purge_category(step, None, approved)
    assert checksum(erp) == before


# --- The dependant category's own deletion limit holds in its parent's run --------------------


def test_billings_own_deletion_limit_holds_when_the_customer_run_destroys_invoices(erp):
    """Billing needs an approval for any removal (rows: 0); the customer category's limit is
    loose. The customer run destroys invoice 81 (past its horizon): that needs billing's
    approval too - asked in the customer run's plan, and honoured by its purge."""
    from include.retention.records.audit import RunContext
    from include.retention.schedule.archive import archive_category
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.limits import DeletionLimitExceeded, approved_counts, excesses
    from include.retention.schedule.plan import plan_category
    from include.retention.schedule.purge import purge_category

    data = erp_policy()
    data["categories"]["billing"]["deletion_limit"] = {"rows": 0}
    data["categories"]["customer_relationship"]["deletion_limit"] = {"rows": 100000, "fraction": 1.0}
    policy = parse_policy(data)
    step = StepContext.build(
        erp,
        policy,
        "customer_relationship",
        RunContext("run-1", "retention_customer_relationship", date(2026, 11, 26), policy.version),
    )
    plan = plan_category(step)
    over = [(e.table, e.side, e.rows, e.base, e.limit_rows, e.limit_fraction) for e in excesses(plan, policy)]
    assert over == [("invoices", "archive", 1, 3, 0, 1.0)]  # the stricter of both limits
    archive_category(step, None, None)  # customers leaving the active base: within the customer limit
    with pytest.raises(
        DeletionLimitExceeded,
        match=r"1 of 3 rows of invoices \(33.3%\) would leave the archive; "
        r"the limit is 0 rows and 100%: this needs an approval",
    ):
        purge_category(step, None, None)
    assert 81 in _archived(erp, "invoices") and audit_events(erp, policy, run_id="run-1", action="delete") == []
    purge_category(step, None, approved_counts(plan))
    assert 81 not in _archived(erp, "invoices")
