"""Real CRM/ERP shapes: one partner table for several categories, clocks derived from
related tables, fallbacks, and rows kept ongoing by an open related row.

The schema is an ERP's in miniature: ``partners`` flags prospects, customers and
suppliers; ``interactions`` record contacts in both directions; a customer's clock ends
with the last line of its last contract.
"""

from __future__ import annotations

import copy
from datetime import date, datetime

import pytest
from sqlalchemy import Boolean, Column, Date, DateTime, ForeignKey, Integer, MetaData, String, Table, insert, text

from engine_helpers import PARIS, archive_rows, audit_events, ids, run_category
from include.retention.errors import PolicyError
from include.retention.policy import parse_policy

INBOUND_ONLY = {"column": "direction", "equals": "inbound"}
INTERACTIONS_CHILD = {"table": "interactions", "primary_key": "interaction_id", "foreign_key": "partner_id",
                      "archive_columns": ["occurred_at", "direction"]}
CONTRACT_LINES = [{"table": "contracts", "foreign_key": "partner_id"},
                  {"table": "contract_lines", "foreign_key": "contract_id"}]

ERP_POLICY = {
    "version": "erp-1",
    "source_schema": "erp",
    "precedence": ["customer_relationship", "prospection"],  # a converted prospect is a customer
    "categories": {
        "prospection": {
            "label": {"fr": "Prospects", "en": "Prospects"}, "legal_basis": "Intérêt légitime",
            "archive_purpose": "Probatoire", "schedule": "0 2 * * *",
            "active_period": "P3Y", "archive_period": "P5Y", "end_action": "delete",
            "tables": [{
                "table": "partners", "archive_table": "prospect_partners", "primary_key": "partner_id",
                "scope": {"column": "is_prospect", "equals": True},
                "start_event": {
                    "when_missing": "defect",
                    "first_of": [
                        {"latest": {"column": "occurred_at", "path": [{"table": "interactions",
                                                                       "foreign_key": "partner_id"}],
                                    "where": INBOUND_ONLY}},
                        {"column": "created_at"},
                    ],
                },
                "archive_columns": ["name", "email"],
                "children": [{**INTERACTIONS_CHILD, "archive_table": "prospect_interactions"}],
            }],
        },
        "customer_relationship": {
            "label": {"fr": "Clients", "en": "Customers"}, "legal_basis": "Contrat",
            "archive_purpose": "Probatoire", "schedule": "0 3 * * *",
            "active_period": "P3Y", "archive_period": "P5Y", "end_action": "delete",
            "tables": [{
                "table": "partners", "archive_table": "customer_partners", "primary_key": "partner_id",
                "scope": {"column": "is_customer", "equals": True},
                "start_event": {
                    "when_missing": "defect",
                    "latest": {"column": "end_date", "path": CONTRACT_LINES},
                    "ongoing_if_open": {"column": "end_date", "path": CONTRACT_LINES},
                },
                "archive_columns": ["name", "email"],
                "children": [{**INTERACTIONS_CHILD, "archive_table": "customer_interactions"}],
            }],
        },
    },
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
    schema = None if target.is_sqlite else "erp"
    if schema:
        with target.engine.begin() as conn:
            conn.execute(text("CREATE SCHEMA IF NOT EXISTS erp"))
    md = MetaData(schema=schema)
    prefix = f"{schema}." if schema else ""
    partners = Table("partners", md, Column("partner_id", Integer, primary_key=True), Column("name", String(50)),
                     Column("email", String(100)), Column("is_prospect", Boolean), Column("is_customer", Boolean),
                     Column("created_at", DateTime(timezone=True)))
    interactions = Table("interactions", md, Column("interaction_id", Integer, primary_key=True),
                         Column("partner_id", Integer, ForeignKey(prefix + "partners.partner_id")),
                         Column("occurred_at", DateTime(timezone=True)), Column("direction", String(10)))
    # Contracts are not governed here: no foreign key, the policy only reads them.
    contracts = Table("contracts", md, Column("contract_id", Integer, primary_key=True),
                      Column("partner_id", Integer))
    lines = Table("contract_lines", md, Column("line_id", Integer, primary_key=True),
                  Column("contract_id", Integer, ForeignKey(prefix + "contracts.contract_id")),
                  Column("end_date", Date))
    md.create_all(target.engine)
    rows: dict[str, list[dict]] = {"partners": [], "interactions": [], "contracts": [], "contract_lines": []}
    for pid, (prospect, customer, created, contacts, contract_list) in PARTNERS.items():
        rows["partners"].append({"partner_id": pid, "name": f"Partenaire {pid}", "email": f"p{pid}@example.fr",
                                 "is_prospect": prospect, "is_customer": customer,
                                 "created_at": datetime(created.year, created.month, created.day, 9, tzinfo=PARIS)})
        for k, (day, direction) in enumerate(contacts):
            rows["interactions"].append({"interaction_id": pid * 10 + k, "partner_id": pid, "direction": direction,
                                         "occurred_at": datetime(day.year, day.month, day.day, 15, tzinfo=PARIS)})
        for c, line_ends in enumerate(contract_list):
            rows["contracts"].append({"contract_id": pid * 10 + c, "partner_id": pid})
            for k, end in enumerate(line_ends):
                rows["contract_lines"].append({"line_id": pid * 100 + c * 10 + k, "contract_id": pid * 10 + c,
                                               "end_date": end})
    with target.engine.begin() as conn:
        for table in (partners, interactions, contracts, lines):
            if rows[table.name]:
                conn.execute(insert(table), rows[table.name])


@pytest.fixture
def erp(target):
    create_erp(target)
    return target


def _run_both(target, policy):
    return [run_category(target, policy, category=key, run_id=f"run-{key}")
            for key in ("customer_relationship", "prospection")]


def _archived(target, table):
    return ids(target, table, archive=True, schema="erp")


def test_prospects_and_customers_of_one_partner_table_follow_their_own_rules(erp):
    _run_both(erp, parse_policy(ERP_POLICY))
    assert ids(erp, "partners", schema="erp") == [2, 7, 9, 10]
    assert _archived(erp, "prospect_partners") == [1, 3, 4, 5]
    assert _archived(erp, "customer_partners") == [6]  # 8 was archived and destroyed in the same run


def test_a_converted_prospect_is_treated_as_a_customer(erp):
    policy = parse_policy(ERP_POLICY)
    prospection = run_category(erp, policy, category="prospection")
    (plan,) = prospection.plan.tables
    assert plan.active_rows == 5  # partners 1-5: partner 6 is claimed by customer_relationship
    assert 6 in ids(erp, "partners", schema="erp")
    run_category(erp, policy, category="customer_relationship", run_id="run-2")
    assert _archived(erp, "customer_partners") == [6]


@pytest.mark.parametrize("partner, archived", [
    pytest.param(1, True, id="inbound_contact_exactly_3_years_ago"),
    pytest.param(2, False, id="one_day_short"),
    pytest.param(3, True, id="one_day_past"),
])
def test_prospect_clock_is_the_latest_inbound_contact(erp, partner, archived):
    run_category(erp, parse_policy(ERP_POLICY), category="prospection")
    assert (partner in _archived(erp, "prospect_partners")) is archived


def test_an_email_we_sent_does_not_restart_a_prospects_clock(erp):
    """Partner 1 got our e-mail in June 2025; its clock still starts at its own contact of 26 Nov 2023."""
    run_category(erp, parse_policy(ERP_POLICY), category="prospection")
    row = next(r for r in archive_rows(erp, "prospect_partners") if r["partner_id"] == 1)
    assert row["retention_start"] == date(2023, 11, 26)
    assert row["retention_until"] == date(2031, 11, 26)


def test_fallback_to_creation_date_when_the_prospect_never_wrote(erp):
    run_category(erp, parse_policy(ERP_POLICY), category="prospection")
    rows = {r["partner_id"]: r for r in archive_rows(erp, "prospect_partners")}
    assert rows[4]["retention_start"] == date(2020, 2, 29)
    assert rows[4]["retention_until"] == date(2028, 2, 28)  # leap day start
    assert rows[5]["retention_start"] == date(2019, 1, 1)   # only our outbound e-mails: creation date


def test_customer_clock_is_the_last_line_of_its_last_contract(erp):
    result = run_category(erp, parse_policy(ERP_POLICY), category="customer_relationship")
    rows = {r["partner_id"]: r for r in archive_rows(erp, "customer_partners")}
    assert rows[6]["retention_start"] == date(2022, 6, 30)
    assert 8 not in rows and 8 not in ids(erp, "partners", schema="erp")  # 2016-12-31 + 8 years has passed
    assert result.purged == {"deleted": {"partners": 1}}  # counts name the source table


def test_an_open_contract_line_keeps_the_customer_active(erp):
    result = run_category(erp, parse_policy(ERP_POLICY), category="customer_relationship")
    assert 7 in ids(erp, "partners", schema="erp")
    (plan,) = result.plan.tables
    assert plan.held_open == 1
    assert (plan.missing_start, plan.missing_start_means) == (1, "defect")  # partner 10: no contract at all
    findings = audit_events(erp, parse_policy(ERP_POLICY), action="quality_finding")
    assert [(f["category"], f["row_count"]) for f in findings] == [("customer_relationship", 1)]


def test_children_follow_the_category_of_their_parent(erp):
    _run_both(erp, parse_policy(ERP_POLICY))
    assert _archived(erp, "prospect_interactions") == [10, 11, 30, 50]
    assert _archived(erp, "customer_interactions") == [60]
    assert ids(erp, "interactions", schema="erp") == [20, 90]


def test_a_partner_in_no_category_is_never_touched(erp):
    _run_both(erp, parse_policy(ERP_POLICY))
    _run_both(erp, parse_policy(ERP_POLICY))
    assert 9 in ids(erp, "partners", schema="erp") and 90 in ids(erp, "interactions", schema="erp")


def test_overlapping_scopes_without_precedence_fail_at_load_time_naming_both_categories():
    with pytest.raises(PolicyError, match=r"categories 'prospection' and 'customer_relationship' may both match a "
                                          r"row of table partners"):
        parse_policy(erp_policy(precedence=[]))


def test_exclusive_scopes_need_no_precedence():
    data = erp_policy(precedence=[])
    data["categories"]["prospection"]["tables"][0]["scope"] = {"column": "kind", "equals": "prospect"}
    data["categories"]["customer_relationship"]["tables"][0]["scope"] = {"column": "kind", "in": ["customer"]}
    parse_policy(data)


def test_condition_values_are_bound_parameters_not_sql(erp):
    data = erp_policy()
    data["categories"]["prospection"]["tables"][0]["scope"] = {
        "any": [{"column": "name", "equals": "x' OR '1'='1"}, {"column": "is_prospect", "equals": True}]}
    run_category(erp, parse_policy(data), category="prospection")
    assert _archived(erp, "prospect_partners") == [1, 3, 4, 5]


@pytest.mark.parametrize("mutate, key_path, message", [
    pytest.param(lambda t: t["start_event"]["first_of"][0]["latest"]["path"][0].update(table="contacts"),
                 r"first_of\[0\]\.latest\.path\[0\]\.table", "does not exist", id="unknown_table_in_derived_clock"),
    pytest.param(lambda t: t["start_event"]["first_of"][0]["latest"].update(column="direction"),
                 r"first_of\[0\]\.latest\.column", "not a date or timestamp", id="aggregate_of_text"),
    pytest.param(lambda t: t["start_event"]["first_of"][1].update(column="birthday"),
                 r"first_of\[1\]\.column", "not in table", id="unknown_fallback_column"),
    pytest.param(lambda t: t["start_event"]["first_of"][0]["latest"].update(where={"column": "channel",
                                                                                    "equals": "x"}),
                 r"first_of\[0\]\.latest\.where", "'channel' not in table", id="unknown_filter_column"),
    pytest.param(lambda t: t.update(scope={"column": "is_lead", "equals": True}),
                 r"tables\[0\]\.scope", "'is_lead' not in table", id="unknown_scope_column"),
])
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
