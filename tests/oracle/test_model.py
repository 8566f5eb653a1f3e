"""The oracle's own rules, checked against the spec's worked examples (so that a
disagreement with the engine points at the engine, not at a slip in the oracle), and its
calendar cross-checked with the project's ``Period.add_to`` and with dateutil."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import strategies as st

from include.retention.periods import Period

from oracle.model import ACTIVE, ARCHIVE, DESTROYED, Holds, Oracle, Place, add_period, evaluate, last_due_start, local_day
from oracle.world import PARIS, PolicyKnobs, build_policy


@pytest.mark.parametrize("start, years, expected", [
    (date(2020, 2, 29), 3, date(2023, 2, 28)),   # spec: 29 Feb + whole years -> 28 Feb
    (date(2020, 2, 29), 4, date(2024, 2, 29)),   # README: plus 4 years it stays 29 February
    (date(2020, 2, 29), 8, date(2028, 2, 29)),
    (date(2023, 11, 26), 3, date(2026, 11, 26)),
])
def test_whole_years_land_on_28_february_in_a_non_leap_year(start, years, expected):
    assert add_period(start, years=years) == expected


def test_the_archive_follows_the_active_period_each_added_in_turn():
    # README: 29 Feb 2020 + 3 years + 5 years = 28 Feb 2028 (not 29 Feb 2028).
    assert add_period(add_period(date(2020, 2, 29), years=3), years=5) == date(2028, 2, 28)


def test_months_are_clamped_to_the_end_of_the_month_before_days_are_added():
    assert add_period(date(2025, 1, 31), months=1) == date(2025, 2, 28)
    assert add_period(date(2025, 1, 31), months=1, days=1) == date(2025, 3, 1)


def test_a_prospect_contacted_3_years_ago_is_due_on_the_day_not_the_day_after():
    assert last_due_start(date(2026, 11, 26), Period(years=3)) == date(2023, 11, 26)


@given(st.dates(date(1990, 1, 1), date(2060, 12, 31)), st.integers(0, 15), st.integers(0, 30), st.integers(0, 40))
def test_calendar_agrees_with_dateutil_and_with_the_project_period(start, years, months, days):
    mine = add_period(start, years, months, days)
    assert mine == start + relativedelta(years=years, months=months) + timedelta(days=days)
    assert mine == Period(years, months, days).add_to(start)


@pytest.mark.parametrize("value, day", [
    ("2024-06-16", date(2024, 6, 16)),
    ("2024-06-16 00:00:00", date(2024, 6, 16)),
    ("2024-06-16 23:59:59.999999", date(2024, 6, 16)),
    ("2024-06-16T00:00:00.000", date(2024, 6, 16)),
    ("2024-06-15T22:30:00Z", date(2024, 6, 16)),        # 00:30 in Paris (summer time)
    ("2024-12-15T23:30:00Z", date(2024, 12, 16)),       # 00:30 in Paris (winter time)
    ("2024-06-16T00:30:00+02:00", date(2024, 6, 16)),
    (datetime(2026, 11, 26, 23, 30, tzinfo=timezone.utc), date(2026, 11, 27)),  # README example
    (datetime(2026, 11, 26, 23, 30), date(2026, 11, 26)),  # naive: Paris wall clock
    (date(2026, 11, 26), date(2026, 11, 26)),
])
def test_a_stored_value_counts_as_its_day_in_paris(value, day):
    assert local_day(value, PARIS) == day


@pytest.mark.parametrize("cond, row, result", [
    ({"column": "r", "equals": 0}, {"r": None}, None),
    ({"not": {"column": "r", "equals": 0}}, {"r": None}, None),     # NULL: not matching either way
    ({"not": {"any": [{"column": "r", "equals": 0}, {"column": "r", "is_null": True}]}}, {"r": None}, False),
    ({"not": {"any": [{"column": "r", "equals": 0}, {"column": "r", "is_null": True}]}}, {"r": 2}, True),
    ({"all": [{"column": "r", "in": [1, 2]}, {"column": "s", "is_not_null": True}]}, {"r": 1, "s": None}, False),
])
def test_conditions_use_three_valued_logic(cond, row, result):
    assert evaluate(cond, row) is result


def _erp_rows(**overrides):
    rows = {"partners": [], "interactions": [], "interaction_files": [], "contracts": [], "contract_lines": [],
            "invoices": [], "invoice_lines": [], "requests": [], "visits": [], "visit_hits": []}
    rows.update(overrides)
    return rows


def test_a_customer_past_its_whole_horizon_is_released_by_its_invoices_in_the_same_night():
    policy = build_policy(PolicyKnobs())
    rows = _erp_rows(
        partners=[{"partner_id": 1, "name": "x", "email": "x", "is_prospect": False, "customer_rank": 1,
                   "created_at": None}],
        contracts=[{"contract_id": 10, "partner_id": 1}],
        contract_lines=[{"line_id": 100, "contract_id": 10, "end_date": date(2010, 1, 1)}],
        invoices=[{"invoice_id": 10, "partner_id": 1, "number": "F", "invoice_date": date(2012, 1, 1)},
                  {"invoice_id": 11, "partner_id": 1, "number": "F", "invoice_date": date(2020, 1, 1)}])
    oracle = Oracle(policy, rows)
    state = oracle.run(oracle.initial_state(), date(2026, 11, 26))
    assert state["invoices"][(10,)] == Place(DESTROYED)
    assert state["invoices"][(11,)] == Place(ARCHIVE, "invoices", date(2020, 1, 1), date(2030, 1, 1))
    assert state["partners"][(1,)] == Place(ARCHIVE, "customer_partners", date(2010, 1, 1), date(2018, 1, 1))
    later = oracle.run(state, date(2030, 1, 1))
    assert later["invoices"][(11,)] == Place(DESTROYED) and later["partners"][(1,)] == Place(DESTROYED)


def test_a_customer_with_an_open_contract_line_stays_active_and_keeps_its_invoices():
    policy = build_policy(PolicyKnobs())
    rows = _erp_rows(
        partners=[{"partner_id": 1, "name": "x", "email": "x", "is_prospect": True, "customer_rank": 1,
                   "created_at": datetime(2001, 1, 1)}],
        contracts=[{"contract_id": 10, "partner_id": 1}],
        contract_lines=[{"line_id": 100, "contract_id": 10, "end_date": date(2010, 1, 1)},
                        {"line_id": 101, "contract_id": 10, "end_date": None}],
        invoices=[{"invoice_id": 10, "partner_id": 1, "number": "F", "invoice_date": date(2001, 1, 1)}])
    oracle = Oracle(policy, rows)
    state = oracle.run(oracle.initial_state(), date(2026, 11, 26))
    assert state["partners"][(1,)] == Place(ACTIVE) and state["invoices"][(10,)] == Place(ACTIVE)


def test_precedence_decides_which_category_governs_a_prospect_who_bought():
    rows = _erp_rows(partners=[{"partner_id": 1, "name": "x", "email": "x", "is_prospect": True,
                                "customer_rank": 1, "created_at": datetime(2001, 1, 1)}])
    customers_first = Oracle(build_policy(PolicyKnobs(customers_first=True)), rows)
    prospects_first = Oracle(build_policy(PolicyKnobs(customers_first=False)), rows)
    day = date(2026, 11, 26)
    # As a customer it has no contract line: a defect, it stays. As a prospect it is long past.
    assert customers_first.run(customers_first.initial_state(), day)["partners"][(1,)] == Place(ACTIVE)
    assert prospects_first.run(prospects_first.initial_state(), day)["partners"][(1,)] == Place(DESTROYED)


def test_a_held_invoice_keeps_its_customer_where_it_is():
    """A held row never moves; an invoice held in the active base cannot point at a customer
    that left it, so the hold keeps the customer too (as a held child keeps its parent)."""
    policy = build_policy(PolicyKnobs())
    rows = _erp_rows(
        partners=[{"partner_id": 1, "name": "x", "email": "x", "is_prospect": False, "customer_rank": 1,
                   "created_at": None}],
        contracts=[{"contract_id": 10, "partner_id": 1}],
        contract_lines=[{"line_id": 100, "contract_id": 10, "end_date": date(2010, 1, 1)}],
        invoices=[{"invoice_id": 10, "partner_id": 1, "number": "F", "invoice_date": date(2012, 1, 1)}])
    oracle = Oracle(policy, rows, Holds(rows={"invoices": frozenset({(10,)})}))
    state = oracle.run(oracle.initial_state(), date(2026, 11, 26))
    assert state["partners"][(1,)] == Place(ACTIVE) and state["invoices"][(10,)] == Place(ACTIVE)


def test_a_hold_added_later_keeps_an_archived_row_past_its_horizon():
    policy = build_policy(PolicyKnobs())
    rows = _erp_rows(partners=[{"partner_id": 1, "name": "x", "email": "x", "is_prospect": True, "customer_rank": 0,
                                "created_at": datetime(2020, 1, 1)}])
    oracle = Oracle(policy, rows)
    state = oracle.run(oracle.initial_state(), date(2026, 11, 26))
    assert state["partners"][(1,)] == Place(ARCHIVE, "prospect_partners", date(2020, 1, 1), date(2028, 1, 1))
    oracle.holds = oracle.holds.union(Holds(rows={"partners": frozenset({(1,)})}).existing(state))
    assert oracle.run(state, date(2029, 11, 26))["partners"][(1,)] == state["partners"][(1,)]
